#!/usr/bin/env node
// Fails (exit 1) when the workspace's package graph has a cycle, counting dependencies,
// devDependencies, peerDependencies and optionalDependencies, or when a package's source
// imports a package its package.json does not declare. The checks live in ./package-graph.mjs.
import { fileURLToPath } from 'node:url';
import { checkWorkspace } from './package-graph.mjs';

const root = process.argv[2] ?? fileURLToPath(new URL('..', import.meta.url));
const problems = checkWorkspace(root);
if (problems.length > 0) {
  console.error(`The package graph check found ${problems.length} problem(s):`);
  for (const problem of problems) console.error(`  ${problem}`);
  process.exit(1);
}
console.log('The package graph flows one way and every import is declared.');
