#!/usr/bin/env node
// `pnpm bench:size`: what a math-only app installs from npm. Builds and packs runtime, core,
// stores-memory, driver-llmsim and capabilities-test-math, installs them with npm (zod as the
// peer) into a fresh folder, and prints the size of node_modules and the number of distinct
// installed packages. Exits 1 when the set is over the budget of issue 12 (10,000 KiB, 10 packages).
//
//   pnpm bench:size
//   SIZE_KEEP=1 pnpm bench:size   # keeps the install folder for a look
import { execFileSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// The budget counts `du -sk` KiB, the unit of the peer benchmark's size table (and of issue 12's
// "zod alone is 8.4 MB": zod 4 takes 8,380 KiB on disk).
const BUDGET_KIB = 10_000;
const BUDGET_PACKAGES = 10;
const PACKAGES = ['runtime', 'core', 'stores-memory', 'driver-llmsim', 'capabilities-test-math'];

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const work = mkdtempSync(path.join(tmpdir(), 'everruns-install-size-'));
const tarballs = path.join(work, 'tarballs');
const app = path.join(work, 'app');
mkdirSync(tarballs);
mkdirSync(app);

execFileSync(
  'pnpm',
  ['turbo', 'run', 'build', ...PACKAGES.map((name) => `--filter=@everruns-ts/${name}`)],
  { cwd: root, stdio: 'ignore' },
);
const packed = {};
for (const name of PACKAGES) {
  const directory = path.join(root, 'packages', name);
  const before = new Set(readdirSync(tarballs));
  execFileSync('pnpm', ['pack', '--pack-destination', tarballs], {
    cwd: directory,
    stdio: 'ignore',
  });
  const file = readdirSync(tarballs).find((entry) => !before.has(entry));
  if (!file) throw new Error(`pnpm pack wrote nothing for ${name}`);
  packed[`@everruns-ts/${name}`] = `file:../tarballs/${file}`;
}
const zod = JSON.parse(readFileSync(path.join(root, 'packages/core/package.json'), 'utf8'))
  .peerDependencies.zod;
writeFileSync(
  path.join(app, 'package.json'),
  `${JSON.stringify(
    {
      name: 'math-only-app',
      private: true,
      type: 'module',
      dependencies: { ...packed, zod },
      overrides: packed,
    },
    null,
    2,
  )}\n`,
);
execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], {
  cwd: app,
  stdio: 'inherit',
});

/** Bytes of every file below `directory` (apparent size, as `du -sb`). */
function bytesBelow(directory) {
  let total = 0;
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const entryPath = path.join(directory, entry.name);
    if (entry.isDirectory()) total += bytesBelow(entryPath);
    else if (entry.isFile()) total += statSync(entryPath).size;
  }
  return total;
}

/** Names of the installed packages, nested `node_modules` included. */
function installedPackages(directory, found = new Map()) {
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const entryPath = path.join(directory, entry.name);
    if (entry.name.startsWith('@')) {
      installedPackages(entryPath, found);
      continue;
    }
    const manifest = JSON.parse(readFileSync(path.join(entryPath, 'package.json'), 'utf8'));
    found.set(`${manifest.name}@${manifest.version}`, bytesBelow(entryPath));
    const nested = path.join(entryPath, 'node_modules');
    try {
      if (statSync(nested).isDirectory()) installedPackages(nested, found);
    } catch {}
  }
  return found;
}

const modules = path.join(app, 'node_modules');
const total = bytesBelow(modules);
const packages = installedPackages(modules);
const megabytes = (bytes) => (bytes / 1e6).toFixed(2);
console.log('| package | size MB |');
console.log('|---|---|');
for (const [name, bytes] of [...packages].sort((a, b) => b[1] - a[1])) {
  console.log(`| ${name} | ${megabytes(bytes)} |`);
}
console.log(`| **total node_modules** (${packages.size} packages) | **${megabytes(total)}** |`);
// Disk usage counts whole blocks, as `du -sh node_modules` does; the budget is on this figure.
const onDiskKib = Number(execFileSync('du', ['-sk', modules], { encoding: 'utf8' }).split('\t')[0]);
console.log(`\non disk: ${onDiskKib} KiB (du -sk node_modules), ${packages.size} packages`);
if (!process.env.SIZE_KEEP) rmSync(work, { recursive: true, force: true });
else console.log(`kept: ${app}`);
if (onDiskKib > BUDGET_KIB || packages.size > BUDGET_PACKAGES) {
  console.error(
    `over budget: ${onDiskKib} KiB / ${packages.size} packages (budget ${BUDGET_KIB} KiB / ${BUDGET_PACKAGES})`,
  );
  process.exit(1);
}
