import { describe, expect, it } from 'vitest';
import { InMemorySessionFileStore } from './index.js';

describe('InMemorySessionFileStore display paths', () => {
  it('shows paths under /workspace, as upstream', async () => {
    const files = new InMemorySessionFileStore();
    expect(files.displayRoot()).toBe('/workspace');
    expect(files.displayPath('/')).toBe('/workspace');
    expect(files.displayPath('/src/a.ts')).toBe('/workspace/src/a.ts');
    expect(files.displayPath('/workspace/src/a.ts')).toBe('/workspace/src/a.ts');
    const written = await files.writeFile(files.displayPath('notes/today.md'), 'x');
    expect(written.path).toBe('/notes/today.md');
    expect((await files.readFile(files.displayPath(written.path))).content).toBe('x');
    expect(() => files.displayPath('../x')).toThrowError(
      expect.objectContaining({ code: 'INVALID_PATH' }),
    );
  });
});
