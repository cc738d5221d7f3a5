#!/usr/bin/env node
// Packs every published package (packages/*) once, with `pnpm pack` (so `workspace:` ranges
// become real ones and `publishConfig` applies), into one folder. Used by the attw check
// (scripts/attw-packages.mjs) and the consumer-project test (scripts/consumer-project.test.ts).
// Needs the build (`pnpm build`): a package without `dist` is refused rather than packed empty.
//
//   node scripts/pack-packages.mjs <folder>   # prints one `<name> <tarball>` line per package
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The packages that are published: every `packages/<folder>` whose package.json is not private.
 * @returns {{ name: string, folder: string, manifest: Record<string, any> }[]}
 */
export function publishedPackages() {
  const found = [];
  for (const folder of readdirSync(path.join(ROOT, 'packages')).sort()) {
    const file = path.join(ROOT, 'packages', folder, 'package.json');
    if (!existsSync(file)) continue;
    const manifest = JSON.parse(readFileSync(file, 'utf8'));
    if (manifest.private) continue;
    found.push({ name: manifest.name, folder, manifest });
  }
  return found;
}

/** The tarball name `pnpm pack` gives a package: `@scope/name@1.0.0` → `scope-name-1.0.0.tgz`. */
export function tarballName(name, version) {
  return `${name.replace(/^@/, '').replace('/', '-')}-${version}.tgz`;
}

/**
 * Packs every published package (or only the named ones) into `destination` with one
 * `pnpm pack` run.
 * @param {string} destination an existing or new folder
 * @param {string[]} [only] package names to pack; default every published package
 * @returns {Map<string, string>} package name → absolute tarball path
 */
export function packPackages(destination, only) {
  mkdirSync(destination, { recursive: true });
  const packages = publishedPackages().filter(({ name }) => !only || only.includes(name));
  const missing = (only ?? []).filter((name) => !packages.some((entry) => entry.name === name));
  if (missing.length > 0) throw new Error(`not published packages: ${missing.join(', ')}`);
  const unbuilt = packages.filter(
    ({ folder }) => !existsSync(path.join(ROOT, 'packages', folder, 'dist', 'index.js')),
  );
  if (unbuilt.length > 0) {
    throw new Error(
      `not built (run \`pnpm build\` first): ${unbuilt.map(({ name }) => name).join(', ')}`,
    );
  }
  execFileSync(
    'pnpm',
    [
      '-r',
      ...(only ? packages.flatMap(({ name }) => ['--filter', name]) : ['--filter', './packages/*']),
      'pack',
      '--pack-destination',
      destination,
    ],
    { cwd: ROOT, stdio: 'ignore' },
  );
  const tarballs = new Map();
  for (const { name, manifest } of packages) {
    const file = path.join(destination, tarballName(name, manifest.version));
    if (!existsSync(file)) throw new Error(`pnpm pack wrote no ${path.basename(file)}`);
    tarballs.set(name, file);
  }
  return tarballs;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const destination = process.argv[2];
  if (!destination) {
    console.error('usage: node scripts/pack-packages.mjs <folder>');
    process.exit(2);
  }
  for (const [name, file] of packPackages(path.resolve(destination))) console.log(name, file);
}
