import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RealDiskFileStore } from './real-disk-file-store.js';
import { makeSandbox, type Sandbox } from './test-support.js';

let sandbox: Sandbox;
beforeEach(() => {
  sandbox = makeSandbox();
});
afterEach(() => sandbox.cleanup());

describe('RealDiskFileStore display paths', () => {
  it('shows the host-absolute root and paths under it, as upstream', async () => {
    const files = new RealDiskFileStore({ root: sandbox.root });
    const root = realpathSync(sandbox.root);
    expect(files.displayRoot()).toBe(root);
    expect(files.displayPath('/')).toBe(root);
    expect(files.displayPath('/workspace')).toBe(root);
    expect(files.displayPath('/src/a.ts')).toBe(join(root, 'src', 'a.ts'));
    expect(files.displayPath('/workspace/src/a.ts')).toBe(join(root, 'src', 'a.ts'));
    expect(files.displayPath('src//./a.ts')).toBe(join(root, 'src', 'a.ts'));
    // A displayed path names the file the store writes.
    const written = await files.writeFile('/workspace/src/a.ts', 'x');
    expect(realpathSync(files.displayPath(written.path))).toBe(join(root, 'src', 'a.ts'));
  });

  it('refuses what normalisation refuses, with INVALID_PATH', () => {
    const files = new RealDiskFileStore({ root: sandbox.root });
    for (const bad of ['../secret.txt', '/src/../../x', '', 'C:\\x']) {
      expect(() => files.displayPath(bad), bad).toThrowError(
        expect.objectContaining({ code: 'INVALID_PATH' }),
      );
    }
  });
});
