#!/usr/bin/env node
// `pnpm attw`: "Are the types wrong?" (@arethetypeswrong/core, the engine of the attw CLI) over
// every published package as packed, in one process. The packages are ESM-only (`"type":
// "module"`, an `exports` map with `types` + `default` and no `require` condition) and need
// Node 20+, so the check applies attw's `esm-only` profile: resolution under node16 from ESM and
// under bundler must find the right types for every entry point; `require` from CommonJS
// (node16-cjs) and the old node10 resolution are not supported and not checked. Any problem
// exits 1, naming the package, the entry point and the resolution. Runs offline.
//
// The same check by hand, one package: `pnpm exec attw <tarball> --profile esm-only`.
//
//   node scripts/attw-packages.mjs [--profile strict|node16|esm-only]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { checkPackage, createPackageFromTarballData } from '@arethetypeswrong/core';
import { packPackages } from './pack-packages.mjs';

/** Resolutions each attw CLI profile leaves out (`@arethetypeswrong/cli`'s profiles.js). */
const PROFILES = {
  strict: [],
  node16: ['node10'],
  'esm-only': ['node10', 'node16-cjs'],
};

const profileIndex = process.argv.indexOf('--profile');
const profile = profileIndex === -1 ? 'esm-only' : process.argv[profileIndex + 1];
const ignoredResolutions = PROFILES[profile];
if (!ignoredResolutions) {
  console.error(`unknown profile ${profile}; one of ${Object.keys(PROFILES).join(', ')}`);
  process.exit(2);
}

const folder = mkdtempSync(path.join(tmpdir(), 'everruns-attw-'));
try {
  const tarballs = packPackages(folder);
  const failed = [];
  for (const [name, file] of tarballs) {
    const analysis = await checkPackage(
      createPackageFromTarballData(new Uint8Array(readFileSync(file))),
    );
    if (!analysis.types) {
      failed.push(name);
      console.error(`${name}: no types found`);
      continue;
    }
    const problems = analysis.problems.filter(
      (problem) =>
        !('resolutionKind' in problem) || !ignoredResolutions.includes(problem.resolutionKind),
    );
    if (problems.length === 0) continue;
    failed.push(name);
    for (const problem of problems) {
      const where = [problem.entrypoint, problem.resolutionKind].filter(Boolean).join(', ');
      console.error(`${name}: ${problem.kind}${where ? ` (${where})` : ''}`);
    }
  }
  if (failed.length > 0) {
    console.error(`attw (${profile} profile): problems in ${failed.join(', ')}`);
    process.exitCode = 1;
  } else {
    console.log(`attw (${profile} profile): ${tarballs.size} packages, no problems`);
  }
} finally {
  rmSync(folder, { recursive: true, force: true });
}
