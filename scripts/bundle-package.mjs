#!/usr/bin/env node
// Bundles the JavaScript of the package in the current directory: one module per entry point of
// its `exports` map (plus shared chunks when there are several), built from `src` by esbuild, with
// every bare import (other packages, Node's modules) left external. tsc still writes the `.d.ts`
// files (`emitDeclarationOnly` in the package's tsconfig.build.json).
//
// Why: Node's ESM loader resolves, reads, parses and links every module on its own, and a
// package of forty small modules cost a cold process more in loading than in running. The
// packages on every app's import path (core, runtime, stores-memory, driver-llmsim) ship bundled;
// `bench/RESULTS.md` has the cold start before and after.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const manifest = JSON.parse(readFileSync('package.json', 'utf8'));
const entryPoints = {};
for (const [subpath, target] of Object.entries(manifest.exports ?? {})) {
  if (typeof target !== 'object' || target === null) continue;
  const source = target['@everruns-ts/source'];
  const output = target.default;
  if (typeof source !== 'string' || typeof output !== 'string') continue;
  if (!output.startsWith('./dist/') || !output.endsWith('.js')) {
    throw new Error(`${manifest.name}: export ${subpath} points outside dist: ${output}`);
  }
  entryPoints[output.slice('./dist/'.length, -'.js'.length)] = source;
}
if (Object.keys(entryPoints).length === 0) {
  throw new Error(`${manifest.name}: no export has both a source and a dist entry to bundle`);
}

// Chunks are named by content hash: those of an earlier build would otherwise stay in `dist`.
rmSync(path.resolve('dist/chunks'), { recursive: true, force: true });

const { outputFiles } = await build({
  entryPoints,
  outdir: 'dist',
  bundle: true,
  // Several entry points share their modules through chunks, so a class exists once however the
  // package is imported (`instanceof` holds across `.` and `./host`).
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  // No `keepNames`: it wraps every named function, closures made per call included, in a
  // `__name` helper that redefines its `name` each time (11 % of a math turn's CPU, 20 % of its
  // median in bench/profile-turns.mjs). Errors set their `name` themselves; what the bundle
  // renames is internal (an exported class keeps its name, aliases are on the export).
  keepNames: false,
  legalComments: 'none',
  logLevel: 'warning',
  absWorkingDir: path.resolve('.'),
  write: false,
});

// esbuild escapes non-ASCII characters in strings, templates and regular expressions (its default
// `charset: 'ascii'`) but copies the comments it keeps (JSDoc in classes and object literals) as
// written, and one `…` or `→` there makes the whole module a two-byte string for Node to decode
// and V8 to scan: ~2 ms of a cold import of core and runtime. Those are the only non-ASCII
// characters left, so they are written as `\u` escapes, which read the same in a comment.
for (const file of outputFiles) {
  mkdirSync(path.dirname(file.path), { recursive: true });
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the range is what is matched
  const ascii = file.text.replace(/[^\x00-\x7f]/g, (char) => {
    return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
  writeFileSync(file.path, ascii);
}
