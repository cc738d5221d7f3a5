import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  checkWorkspace,
  describeCycle,
  findCycles,
  findUndeclaredImports,
  importSpecifiers,
  isTestFile,
  packageNameOf,
  readWorkspace,
  workspacePatterns,
} from './package-graph.mjs';

const CLI = fileURLToPath(new URL('./check-package-graph.mjs', import.meta.url));

const workspaces: string[] = [];

afterEach(() => {
  for (const root of workspaces.splice(0)) rmSync(root, { recursive: true, force: true });
});

/** Writes `files` (path -> text, objects as JSON) into a new temporary workspace folder. */
function temporaryWorkspace(files: Record<string, string | object>): string {
  const root = mkdtempSync(join(tmpdir(), 'package-graph-'));
  workspaces.push(root);
  const all: Record<string, string | object> = {
    'package.json': { name: 'root', private: true, devDependencies: { vitest: '*' } },
    'pnpm-workspace.yaml': 'packages:\n  - packages/*\n  - tools\n',
    ...files,
  };
  for (const [path, content] of Object.entries(all)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(
      join(root, path),
      typeof content === 'string' ? content : JSON.stringify(content, null, 2),
    );
  }
  return root;
}

function runCli(root: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, root], (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** a -> b (dependencies), b -> c (peerDependencies), c -> a (devDependencies only). */
const CYCLIC = {
  'packages/a/package.json': { name: '@scope/a', dependencies: { '@scope/b': 'workspace:*' } },
  'packages/b/package.json': { name: '@scope/b', peerDependencies: { '@scope/c': 'workspace:^' } },
  'packages/c/package.json': { name: '@scope/c', devDependencies: { '@scope/a': 'workspace:*' } },
};

const ACYCLIC = {
  'packages/a/package.json': { name: '@scope/a', dependencies: { '@scope/b': 'workspace:*' } },
  'packages/b/package.json': { name: '@scope/b', peerDependencies: { '@scope/c': 'workspace:^' } },
  'packages/c/package.json': { name: '@scope/c', dependencies: { zod: '^3.0.0' } },
  'tools/package.json': {
    name: 'tools',
    private: true,
    devDependencies: { '@scope/a': 'workspace:*', '@scope/c': 'workspace:*' },
  },
};

describe('findCycles', () => {
  it('finds a cycle closed by a devDependency and names its path', () => {
    const packages = readWorkspace(temporaryWorkspace(CYCLIC));
    const cycles = findCycles(packages);
    expect(cycles).toEqual([['@scope/a', '@scope/b', '@scope/c', '@scope/a']]);
    expect(describeCycle(cycles[0] as string[], packages)).toBe(
      '@scope/a -> @scope/b (dependencies) -> @scope/c (peerDependencies) -> @scope/a (devDependencies)',
    );
  });

  it('finds nothing in a graph that flows one way', () => {
    expect(findCycles(readWorkspace(temporaryWorkspace(ACYCLIC)))).toEqual([]);
  });

  it('counts optionalDependencies and a package depending on itself', () => {
    expect(
      findCycles([
        { name: 'x', manifest: { optionalDependencies: { y: '*' } } },
        { name: 'y', manifest: { dependencies: { x: '*' } } },
        { name: 'z', manifest: { devDependencies: { z: '*' } } },
      ]),
    ).toEqual([
      ['x', 'y', 'x'],
      ['z', 'z'],
    ]);
  });

  it('reports every package of two overlapping cycles', () => {
    const cycles = findCycles([
      { name: 'hub', manifest: { dependencies: { left: '*', right: '*' } } },
      { name: 'left', manifest: { devDependencies: { hub: '*' } } },
      { name: 'right', manifest: { devDependencies: { hub: '*' } } },
    ]);
    expect(cycles).toEqual([
      ['hub', 'left', 'hub'],
      ['right', 'hub', 'right'],
    ]);
  });
});

describe('findUndeclaredImports', () => {
  const sources = {
    'packages/a/src/index.ts': [
      "import { b } from '@scope/b/sub';",
      "import type { Z } from 'zod';",
      "import { readFile } from 'node:fs/promises';",
      "import { join } from 'path';",
      "export * from './local.js';",
      "// import { gone } from 'commented-out';",
      "const lazy = await import('lazy-package/deep/path');",
      "export { thing } from 'reexported';",
      "import { self } from '@scope/a/inner';",
    ].join('\n'),
    'packages/a/src/index.test.ts': "import { it } from 'vitest';\nimport 'test-only';\n",
    'packages/a/src/runtime-helper.ts': "import { expect } from 'vitest';\n",
    'packages/a/dist/index.js': "import 'ignored-in-dist';\n",
    'packages/a/node_modules/x/index.js': "import 'ignored-in-node-modules';\n",
  };

  it('reports each import of a package the importer does not declare, with its line', () => {
    const root = temporaryWorkspace({ ...ACYCLIC, ...sources });
    const problems = findUndeclaredImports(readWorkspace(root), { testTooling: ['vitest'] });
    expect(
      problems.map(
        (problem) =>
          `${problem.file}:${problem.line} ${problem.specifier} -> ${problem.importedPackage}`,
      ),
    ).toEqual([
      'packages/a/src/index.test.ts:2 test-only -> test-only',
      'packages/a/src/index.ts:2 zod -> zod',
      'packages/a/src/index.ts:7 lazy-package/deep/path -> lazy-package',
      'packages/a/src/index.ts:8 reexported -> reexported',
      // The root's test tooling is for test files only.
      'packages/a/src/runtime-helper.ts:1 vitest -> vitest',
    ]);
  });

  it('accepts imports declared in any dependency field', () => {
    const root = temporaryWorkspace({
      ...ACYCLIC,
      'packages/a/package.json': {
        name: '@scope/a',
        dependencies: { '@scope/b': 'workspace:*' },
        devDependencies: { 'test-only': '*', vitest: '*' },
        peerDependencies: { zod: '*' },
        optionalDependencies: { 'lazy-package': '*', reexported: '*' },
      },
      ...sources,
    });
    expect(findUndeclaredImports(readWorkspace(root))).toEqual([]);
  });
});

describe('helpers', () => {
  it('reads the packages list of pnpm-workspace.yaml', () => {
    expect(
      workspacePatterns(
        'packages:\n  - packages/*\n  - \'apps/*\' # apps\n  - "!apps/skip"\nonlyBuiltDependencies:\n  - esbuild\n',
      ),
    ).toEqual(['packages/*', 'apps/*', '!apps/skip']);
  });

  it('names the package of a specifier', () => {
    expect(packageNameOf('@scope/name/sub/path')).toBe('@scope/name');
    expect(packageNameOf('name/sub')).toBe('name');
    expect(packageNameOf('node:fs')).toBeUndefined();
    expect(packageNameOf('fs/promises')).toBeUndefined();
    expect(packageNameOf('./local.js')).toBeUndefined();
    expect(packageNameOf('#internal')).toBeUndefined();
  });

  it('reads static, dynamic and re-export specifiers, skipping comments', () => {
    expect(
      importSpecifiers(
        "/** import x from 'doc' */\nexport type { T } from 't';\nawait import(\"d\");\nconst url = 'http://x'; import 'side';",
      ),
    ).toEqual([
      { specifier: 't', line: 2 },
      { specifier: 'd', line: 3 },
      { specifier: 'side', line: 4 },
    ]);
  });

  it('tells test code from shipped code', () => {
    expect(isTestFile('packages/a/src/thing.test.ts')).toBe(true);
    expect(isTestFile('packages/a/src/test-support.ts')).toBe(true);
    expect(isTestFile('packages/a/src/test-support/database.ts')).toBe(true);
    expect(isTestFile('packages/a/vitest.config.ts')).toBe(true);
    expect(isTestFile('packages/a/src/thing.ts')).toBe(false);
    expect(isTestFile('packages/a/src/latest-support.ts')).toBe(false);
  });
});

describe('the command line', () => {
  it('fails on a deliberately added cycle and names the path', async () => {
    const result = await runCli(temporaryWorkspace(CYCLIC));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      'dependency cycle: @scope/a -> @scope/b (dependencies) -> @scope/c (peerDependencies) -> @scope/a (devDependencies)',
    );
  });

  it('fails on an undeclared import', async () => {
    const result = await runCli(
      temporaryWorkspace({
        ...ACYCLIC,
        'packages/c/src/index.ts': "import { z } from 'zod';\nimport { a } from '@scope/a';\n",
      }),
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      'undeclared import: packages/c/src/index.ts:2 imports "@scope/a", but packages/c/package.json does not declare @scope/a',
    );
  });

  it('passes on an acyclic workspace whose imports are declared', async () => {
    const root = temporaryWorkspace({
      ...ACYCLIC,
      'packages/c/src/index.ts': "import { z } from 'zod';\n",
      'packages/c/src/index.test.ts': "import { it } from 'vitest';\n",
    });
    expect(checkWorkspace(root)).toEqual([]);
    const result = await runCli(root);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('flows one way');
  });
});
