// Cases upstream's real-disk store pins, restated for ours: grep path filters (globs, and a
// substring without glob characters) and a non-empty directory deleted without `recursive`.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RealDiskFileStore } from './index.js';
import { makeSandbox, type Sandbox } from './test-support.js';

describe('RealDiskFileStore, upstream parity', () => {
  let sandbox: Sandbox;
  let files: RealDiskFileStore;
  beforeEach(() => {
    sandbox = makeSandbox();
    files = new RealDiskFileStore({ root: sandbox.root });
  });
  afterEach(() => sandbox.cleanup());

  it('filters grep by glob, and by a part of the path without glob characters', async () => {
    for (const path of ['/src/lib.rs', '/src/nested/mod.rs', '/docs/readme.md', '/api/docs.md']) {
      await files.writeFile(path, 'needle');
    }
    const paths = async (pattern: string) =>
      (await files.grepFiles('needle', pattern)).map((hit) => hit.path).sort();
    expect(await paths('src/**/*.rs')).toEqual(['/src/lib.rs', '/src/nested/mod.rs']);
    expect(await paths('/workspace/src/*.rs')).toEqual(['/src/lib.rs']);
    expect(await paths('docs')).toEqual(['/api/docs.md', '/docs/readme.md']);
    expect(await paths('/docs/')).toEqual(['/docs/readme.md']);
  });

  it('deletes nothing and answers false for a non-empty directory without recursive', async () => {
    await files.writeFile('/dir/sub/a.txt', 'a');
    expect(await files.deleteFile('/dir')).toBe(false);
    expect(await files.deleteFile('/workspace/dir/sub')).toBe(false);
    expect(existsSync(join(sandbox.root, 'dir', 'sub', 'a.txt'))).toBe(true);
    expect(await files.deleteFile('/dir', true)).toBe(true);
    expect(existsSync(join(sandbox.root, 'dir'))).toBe(false);
  });
});
