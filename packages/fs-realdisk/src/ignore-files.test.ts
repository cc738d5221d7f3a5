import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RealDiskFileStore } from './real-disk-file-store.js';
import { makeSandbox, type Sandbox } from './test-support.js';

let sandbox: Sandbox;
beforeEach(() => {
  sandbox = makeSandbox();
});
afterEach(() => sandbox.cleanup());

/** Writes `files` (workspace path → content) under the sandbox's workspace root. */
function layout(files: Record<string, string>): void {
  for (const [path, content] of Object.entries(files)) {
    const host = join(sandbox.root, path);
    mkdirSync(dirname(host), { recursive: true });
    writeFileSync(host, content);
  }
}

async function grepPaths(
  files: RealDiskFileStore,
  pathPattern?: string,
  pattern = 'needle',
): Promise<string[]> {
  return [...new Set((await files.grepFiles(pattern, pathPattern)).map((hit) => hit.path))];
}

describe.each(['descriptor', 'path'] as const)('grep and ignore files (%s resolution)', (mode) => {
  const store = (options: { honorIgnoreFiles?: boolean } = {}) =>
    new RealDiskFileStore({ root: sandbox.root, resolution: mode, ...options });

  it('honours .gitignore in a git repository: nested files, negation, ignored directories', async () => {
    mkdirSync(join(sandbox.root, '.git'));
    layout({
      '.gitignore': '*.log\nbuild/\n!keep.log\ndist/\n!dist/inside.txt\n',
      'app.ts': 'needle',
      'debug.log': 'needle',
      'keep.log': 'needle',
      'build/out.js': 'needle',
      'dist/inside.txt': 'needle',
      'src/gen/.gitignore': '*\n!.gitignore\n!wanted.ts\n',
      'src/gen/made.ts': 'needle',
      'src/gen/wanted.ts': 'needle',
      'src/main.ts': 'needle',
      'src/trace.log': 'needle',
      'src/sub/.gitignore': '!again.log\n',
      'src/sub/again.log': 'needle',
    });
    expect(await grepPaths(store())).toEqual([
      '/app.ts',
      '/keep.log',
      '/src/gen/wanted.ts',
      '/src/main.ts',
      '/src/sub/again.log',
    ]);
  });

  it('honours .ignore always and .gitignore only inside a git repository', async () => {
    layout({
      '.gitignore': 'ignored-by-git.txt\n',
      '.ignore': 'ignored-by-ignore.txt\n',
      'ignored-by-git.txt': 'needle',
      'ignored-by-ignore.txt': 'needle',
      'plain.txt': 'needle',
    });
    expect(await grepPaths(store())).toEqual(['/ignored-by-git.txt', '/plain.txt']);
    // A .git entry (a worktree's .git is a file) makes the workspace a repository.
    writeFileSync(join(sandbox.root, '.git'), 'gitdir: elsewhere\n');
    expect(await grepPaths(store())).toEqual(['/plain.txt']);
  });

  it('lets .ignore override .gitignore of the same directory and a deeper file a shallower one', async () => {
    mkdirSync(join(sandbox.root, '.git'));
    layout({
      '.gitignore': '*.tmp\n',
      '.ignore': '!wanted.tmp\n',
      'wanted.tmp': 'needle',
      'other.tmp': 'needle',
      'pkg/.ignore': 'local.txt\n',
      'pkg/local.txt': 'needle',
      'local.txt': 'needle',
    });
    expect(await grepPaths(store())).toEqual(['/local.txt', '/wanted.tmp']);
  });

  it('applies the ignore files above a path glob that starts in a subdirectory', async () => {
    mkdirSync(join(sandbox.root, '.git'));
    layout({
      '.gitignore': 'src/gen/\nsecret.txt\n',
      'src/gen/a.ts': 'needle',
      'src/b.ts': 'needle',
      'src/secret.txt': 'needle',
      'src/deep/.gitignore': 'c.ts\n',
      'src/deep/c.ts': 'needle',
      'src/deep/d.ts': 'needle',
    });
    expect(await grepPaths(store(), '/src/**')).toEqual(['/src/b.ts', '/src/deep/d.ts']);
    expect(await grepPaths(store(), '/src/deep/*.ts')).toEqual(['/src/deep/d.ts']);
    // A glob starting inside an ignored directory finds nothing, as a walk from the root would not.
    expect(await grepPaths(store(), '/src/gen/*.ts')).toEqual([]);
  });

  it('searches everything with honorIgnoreFiles false, and never filters glob or listing', async () => {
    mkdirSync(join(sandbox.root, '.git'));
    layout({ '.gitignore': '*.log\n', '.ignore': 'x.txt\n', 'a.log': 'needle', 'x.txt': 'needle' });
    const all = store({ honorIgnoreFiles: false });
    expect(all.honorIgnoreFiles).toBe(false);
    expect(await grepPaths(all)).toEqual(['/a.log', '/x.txt']);
    const honouring = store();
    expect(honouring.honorIgnoreFiles).toBe(true);
    expect(await grepPaths(honouring)).toEqual([]);
    expect((await honouring.globFiles('**/*.log')).map((stat) => stat.path)).toEqual(['/a.log']);
    expect((await honouring.listDirectory('/')).map((stat) => stat.path)).toContain('/x.txt');
  });

  it('does not read an ignore file through a link leaving the workspace', async () => {
    writeFileSync(join(sandbox.outside, 'rules'), 'plain.txt\n');
    symlinkSync(join(sandbox.outside, 'rules'), join(sandbox.root, '.ignore'));
    layout({ 'plain.txt': 'needle' });
    expect(await grepPaths(store())).toEqual(['/plain.txt']);
  });
});
