import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runRealDiskFileSystemToolsExample } from './example.js';

describe('real-disk-file-system-tools example', () => {
  let workspace: string;
  beforeEach(() => {
    workspace = mkdtempSync(join(tmpdir(), 'everruns-file-tools-'));
  });
  afterEach(() => rmSync(workspace, { recursive: true, force: true }));

  it('lands tool calls on disk, asks before creating and overwriting and refuses writes into .git', async () => {
    const output = await runRealDiskFileSystemToolsExample(workspace);
    expect(output.result).toMatchObject({ success: true, response: 'done', toolCallsCount: 4 });
    expect(output.outputOnDisk).toBe('hello back');
    expect(output.inputOnDisk).toBe('hello again');
    expect(output.toolResults).toHaveLength(4);
    expect(output.toolResults[0]).toMatchObject({ isError: false });
    expect(output.toolResults[0]?.content).toContain('hello from real disk');
    expect(output.toolResults[3]).toMatchObject({ isError: true });
    expect(output.toolResults[3]?.content).toContain('WRITE_BLOCKED');
    expect(
      output.approvals.map((request) => [
        request.operation,
        request.path,
        request.sessionId,
        request.before,
        request.after,
      ]),
    ).toEqual([
      ['writeFile', '/output.txt', 'session_00000000000000000000000000000092', null, 'hello back'],
      [
        'writeFile',
        '/input.txt',
        'session_00000000000000000000000000000092',
        'hello from real disk',
        'hello again',
      ],
    ]);
    expect(existsSync(join(workspace, '.git'))).toBe(false);
  });
});
