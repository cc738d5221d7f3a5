// Every guide page tells the reader to install what its code imports. The pages are read in
// order from an empty folder (docs/README.md), so the packages installed on the getting-started
// page count for every later page; anything else a page imports must be on one of its own
// `npm install` lines. With pnpm's strict layout a package nobody installed is
// `ERR_MODULE_NOT_FOUND`, whatever else depends on it.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DOCS = join(ROOT, 'docs');
const GUIDE = join(DOCS, 'guide');

/** Names of the workspace packages that are not published (apps run from the repository). */
function privatePackages(): Set<string> {
  const names = new Set<string>();
  for (const directory of ['apps', 'apps/examples']) {
    for (const entry of readdirSync(join(ROOT, directory), { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      try {
        const manifest = JSON.parse(
          readFileSync(join(ROOT, directory, entry.name, 'package.json'), 'utf8'),
        );
        if (manifest.private) names.add(manifest.name);
      } catch {}
    }
  }
  return names;
}

/** The package an import specifier names: `@scope/name/sub` → `@scope/name`, `zod/v4` → `zod`. */
function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
}

/** The packages a page's ```ts blocks import (relative and `node:` imports left out). */
function importedPackages(markdown: string): Set<string> {
  const found = new Set<string>();
  for (const block of markdown.matchAll(/^```ts[^\n]*\n([\s\S]*?)^```/gm)) {
    const code = block[1] ?? '';
    for (const match of code.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)) {
      const specifier = match[1] ?? '';
      if (specifier.startsWith('.') || specifier.startsWith('node:')) continue;
      found.add(packageOf(specifier));
    }
  }
  return found;
}

/** The packages a page's `npm install` lines name, without their version ranges. */
function installedPackages(markdown: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const line of markdown.matchAll(/^npm install ([^\n]+)$/gm)) {
    for (const word of (line[1] ?? '').split(/\s+/)) {
      if (word === '' || word.startsWith('-')) continue;
      const at = word.indexOf('@', 1);
      found.set(at === -1 ? word : word.slice(0, at), at === -1 ? '' : word.slice(at + 1));
    }
  }
  return found;
}

const pages = [
  ...readdirSync(GUIDE)
    .filter((name) => name.endsWith('.md'))
    .map((name) => join('guide', name)),
  ...readdirSync(DOCS).filter((name) => name.endsWith('.md')),
].sort();
const firstPage = readFileSync(join(GUIDE, 'getting-started.md'), 'utf8');
const fromGettingStarted = installedPackages(firstPage);
const unpublished = privatePackages();

describe('guide install lines', () => {
  it('the getting-started page installs the runtime, core, the math capability and zod', () => {
    expect([...fromGettingStarted.keys()]).toEqual(
      expect.arrayContaining([
        '@everruns-ts/runtime',
        '@everruns-ts/core',
        '@everruns-ts/capabilities-test-math',
        'zod',
      ]),
    );
  });

  for (const page of pages) {
    it(`docs/${page} installs every package it imports`, () => {
      const markdown = readFileSync(join(DOCS, page), 'utf8');
      const installed = installedPackages(markdown);
      const missing = [...importedPackages(markdown)].filter(
        (name) => !installed.has(name) && !fromGettingStarted.has(name) && !unpublished.has(name),
      );
      expect(missing).toEqual([]);
    });
  }

  it('the store-backend page installs the vitest major that store-conformance peers on', () => {
    const peer = JSON.parse(
      readFileSync(join(ROOT, 'packages/store-conformance/package.json'), 'utf8'),
    ).peerDependencies.vitest as string;
    const installed = installedPackages(readFileSync(join(GUIDE, 'store-backend.md'), 'utf8'));
    const range = installed.get('vitest');
    // A bare `vitest` installs the newest major, which the suite's peer range refuses.
    expect(range).toMatch(/^\^\d+\.\d+/);
    const major = (spec: string) => spec.replace(/^\D*/, '').split('.')[0];
    expect(major(range ?? '')).toBe(major(peer));
  });
});
