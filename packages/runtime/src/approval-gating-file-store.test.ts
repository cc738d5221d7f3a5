import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionFileSystem } from '@everruns-ts/core';
import { RealDiskFileStore } from '@everruns-ts/fs-realdisk';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ApprovalGatingFileStore,
  type FileApprovalGateResult,
  type FileApprovalRequest,
} from './approval-gating-file-store.js';
import { expectCode, tree } from './test-support.js';
import { WriteBlocklistFileStore } from './write-blocklist-file-store.js';

/** A gate that records what it is asked and answers `answer`. */
function recordingGate(answer: FileApprovalGateResult | (() => FileApprovalGateResult)) {
  const requests: FileApprovalRequest[] = [];
  const gate = async (request: FileApprovalRequest) => {
    requests.push(request);
    return typeof answer === 'function' ? answer() : answer;
  };
  return { gate, requests };
}

describe('ApprovalGatingFileStore', () => {
  let root: string;
  let realDisk: RealDiskFileStore;
  beforeEach(async () => {
    root = mkdtempSync(join(tmpdir(), 'everruns-approval-'));
    realDisk = new RealDiskFileStore({ root });
    await realDisk.writeFile('/existing.txt', 'alpha beta');
    await realDisk.writeFile('/dir/inner.txt', 'inner');
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('lets reads and directories through without asking', async () => {
    const { gate, requests } = recordingGate('deny');
    const files = new ApprovalGatingFileStore(realDisk, gate);
    await files.createDirectory('/made');
    await files.seedInitialFile({
      path: '/seeded.md',
      content: 'seed',
      encoding: 'text',
      isReadonly: false,
    });
    expect((await files.readFile('/existing.txt')).content).toBe('alpha beta');
    expect((await files.listDirectory('/dir')).map((entry) => entry.name)).toEqual(['inner.txt']);
    expect(await files.statFile('/existing.txt')).not.toBeNull();
    expect(await files.globFiles('**/*.txt')).toHaveLength(2);
    expect(await files.grepFiles('alpha')).toHaveLength(1);
    expect(await files.deleteFile('/never-there')).toBe(false);
    expect(requests).toEqual([]);
  });

  it('asks before creating a new file, with before null and the new content after (issue 13, invariant 10)', async () => {
    const { gate, requests } = recordingGate('approve');
    const files = new ApprovalGatingFileStore(realDisk, gate, { sessionId: 'session_new' });
    await files.writeFile('/new/a.txt', 'a');
    await files.appendFile('/new/log.txt', 'line\n');
    await files.writeFileIfContentMatches('/new/cas.txt', null, 'cas');
    await files.writeFile('/new/bytes.bin', 'AAE=', 'base64');
    expect(requests.map(({ approvalId, ...request }) => request)).toEqual([
      {
        operation: 'writeFile',
        path: '/new/a.txt',
        content: 'a',
        encoding: 'text',
        before: null,
        after: 'a',
        sessionId: 'session_new',
      },
      {
        operation: 'appendFile',
        path: '/new/log.txt',
        content: 'line\n',
        encoding: 'text',
        before: null,
        after: 'line\n',
        sessionId: 'session_new',
      },
      {
        operation: 'writeFileIfContentMatches',
        path: '/new/cas.txt',
        content: 'cas',
        encoding: 'text',
        before: null,
        after: 'cas',
        sessionId: 'session_new',
      },
      {
        operation: 'writeFile',
        path: '/new/bytes.bin',
        content: 'AAE=',
        encoding: 'base64',
        before: null,
        after: 'AAE=',
        sessionId: 'session_new',
      },
    ]);
    expect(tree(root)).toContain('new/a.txt: a');
    expect(tree(root)).toContain('new/cas.txt: cas');
  });

  it('creates no new file when the gate denies it (issue 13, invariant 10)', async () => {
    const { gate, requests } = recordingGate('deny');
    const files = new ApprovalGatingFileStore(realDisk, gate);
    const before = tree(root);
    await expectCode(files.writeFile('/new/a.txt', 'a'), 'APPROVAL_DENIED');
    await expectCode(files.appendFile('/new/log.txt', 'x'), 'APPROVAL_DENIED');
    await expectCode(files.writeFileIfContentMatches('/new/cas.txt', null, 'x'), 'APPROVAL_DENIED');
    expect(requests.map((request) => request.before)).toEqual([null, null, null]);
    expect(tree(root)).toEqual(before);
  });

  it('asks again, with the content now there, when a file appears between the question and the write', async () => {
    const requests: FileApprovalRequest[] = [];
    const files = new ApprovalGatingFileStore(realDisk, async (request) => {
      requests.push(request);
      if (requests.length === 1) await realDisk.writeFile('/race.txt', 'theirs');
      return 'approve' as const;
    });
    await files.writeFile('/race.txt', 'mine');
    expect(requests.map((request) => [request.before, request.after])).toEqual([
      [null, 'mine'],
      ['theirs', 'mine'],
    ]);
    expect(readFileSync(join(root, 'race.txt'), 'utf8')).toBe('mine');
  });

  it('asks before each destructive operation on an existing file and applies it when approved', async () => {
    const { gate, requests } = recordingGate('approve');
    const files = new ApprovalGatingFileStore(realDisk, gate, { sessionId: 'session_1' });
    await files.writeFile('/existing.txt', 'alpha beta gamma');
    await files.writeFileIfContentMatches('/existing.txt', 'alpha beta gamma', 'alpha beta');
    await files.editFile('/existing.txt', 'beta', 'delta');
    await files.appendFile('/existing.txt', '!');
    await files.moveFile('/existing.txt', '/moved.txt');
    await files.deleteFile('/dir', true);
    expect(tree(root)).toEqual(['moved.txt: alpha delta!']);
    expect(requests.map(({ approvalId, ...request }) => request)).toEqual([
      {
        operation: 'writeFile',
        path: '/existing.txt',
        content: 'alpha beta gamma',
        encoding: 'text',
        before: 'alpha beta',
        after: 'alpha beta gamma',
        sessionId: 'session_1',
      },
      {
        operation: 'writeFileIfContentMatches',
        path: '/existing.txt',
        content: 'alpha beta',
        encoding: 'text',
        before: 'alpha beta gamma',
        after: 'alpha beta',
        sessionId: 'session_1',
      },
      {
        operation: 'editFile',
        path: '/existing.txt',
        oldText: 'beta',
        newText: 'delta',
        replaceAll: false,
        before: 'alpha beta',
        after: 'alpha delta',
        sessionId: 'session_1',
      },
      {
        operation: 'appendFile',
        path: '/existing.txt',
        content: '!',
        encoding: 'text',
        before: 'alpha delta',
        after: 'alpha delta!',
        sessionId: 'session_1',
      },
      {
        operation: 'moveFile',
        path: '/existing.txt',
        toPath: '/moved.txt',
        overwrite: false,
        sessionId: 'session_1',
      },
      { operation: 'deleteFile', path: '/dir', recursive: true, sessionId: 'session_1' },
    ]);
    expect(new Set(requests.map((request) => request.approvalId)).size).toBe(6);
    for (const request of requests) expect(request.approvalId).toMatch(/^appr_[0-9a-f]{32}$/);
    await files.deleteFile('/moved.txt');
    expect(requests.at(-1)).toMatchObject({
      operation: 'deleteFile',
      path: '/moved.txt',
      before: 'alpha delta!',
      after: null,
    });
  });

  it('throws APPROVAL_DENIED on a denial and changes nothing on disk', async () => {
    const { gate, requests } = recordingGate({ decision: 'deny', reason: 'not today' });
    const files = new ApprovalGatingFileStore(realDisk, gate, { sessionId: 'session_2' });
    const before = tree(root);
    const attempts: [string, () => Promise<unknown>][] = [
      ['writeFile', () => files.writeFile('/existing.txt', 'x')],
      [
        'writeFileIfContentMatches',
        () => files.writeFileIfContentMatches('/existing.txt', 'alpha beta', 'x'),
      ],
      ['editFile', () => files.editFile('/existing.txt', 'alpha', 'x')],
      ['appendFile', () => files.appendFile('/existing.txt', 'x')],
      ['deleteFile', () => files.deleteFile('/existing.txt')],
      ['deleteFile', () => files.deleteFile('/dir', true)],
      ['moveFile', () => files.moveFile('/existing.txt', '/elsewhere.txt')],
      ['moveFile', () => files.moveFile('/dir', '/dir2')],
    ];
    for (const [operation, attempt] of attempts) {
      const error = await expectCode(attempt(), 'APPROVAL_DENIED');
      expect(error.message).toContain('not today');
      expect(error.details).toMatchObject({
        operation,
        sessionId: 'session_2',
        reason: 'not today',
      });
      expect(error.details.approvalId).toBe(requests[requests.length - 1]?.approvalId);
    }
    expect(requests).toHaveLength(attempts.length);
    expect(tree(root)).toEqual(before);
  });

  it('treats any answer but an approval as a denial, and a throwing gate as a failure', async () => {
    const before = tree(root);
    for (const answer of [undefined, 'yes', { decision: 'maybe' }, null]) {
      const files = new ApprovalGatingFileStore(realDisk, async () => answer as never);
      await expectCode(files.writeFile('/existing.txt', 'x'), 'APPROVAL_DENIED');
    }
    const throwing = new ApprovalGatingFileStore(realDisk, () => {
      throw new Error('approval service down');
    });
    await expect(throwing.deleteFile('/existing.txt')).rejects.toThrow('approval service down');
    expect(tree(root)).toEqual(before);
  });

  it('makes approval ids deterministic when the caller computes them', async () => {
    const { gate, requests } = recordingGate('approve');
    const options = {
      sessionId: 'session_3',
      approvalId: (request: Omit<FileApprovalRequest, 'approvalId'>, occurrence: number) =>
        `${request.sessionId}/turn_1/call_1/${request.operation}${occurrence > 1 ? `#${occurrence}` : ''}`,
    };
    const run = async () => {
      const files = new ApprovalGatingFileStore(realDisk, gate, options);
      await files.writeFile('/existing.txt', 'one');
      await files.writeFile('/existing.txt', 'two');
      await files.deleteFile('/dir/inner.txt');
    };
    await run();
    await realDisk.writeFile('/dir/inner.txt', 'again');
    await run();
    const ids = requests.map((request) => request.approvalId);
    expect(ids).toEqual([
      'session_3/turn_1/call_1/writeFile',
      'session_3/turn_1/call_1/writeFile#2',
      'session_3/turn_1/call_1/deleteFile',
      'session_3/turn_1/call_1/writeFile',
      'session_3/turn_1/call_1/writeFile#2',
      'session_3/turn_1/call_1/deleteFile',
    ]);
  });

  it('does not ask about operations the inner store refuses anyway', async () => {
    const { gate, requests } = recordingGate('approve');
    const files = new ApprovalGatingFileStore(realDisk, gate);
    await realDisk.seedInitialFile({
      path: '/locked.md',
      content: 'rules',
      encoding: 'text',
      isReadonly: true,
    });
    await expectCode(files.writeFile('/locked.md', 'x'), 'FILE_READ_ONLY');
    await expectCode(files.editFile('/locked.md', 'rules', 'x'), 'FILE_READ_ONLY');
    await expectCode(files.appendFile('/locked.md', 'x'), 'FILE_READ_ONLY');
    await expectCode(files.deleteFile('/locked.md'), 'FILE_READ_ONLY');
    await expectCode(files.moveFile('/locked.md', '/x.md'), 'FILE_READ_ONLY');
    await expectCode(files.writeFile('/dir', 'x'), 'IS_A_DIRECTORY');
    await expectCode(files.deleteFile('/'), 'INVALID_PATH');
    await expectCode(files.moveFile('/missing', '/x'), 'FILE_NOT_FOUND');
    await expectCode(files.editFile('/missing', 'a', 'b'), 'FILE_NOT_FOUND');
    await expectCode(files.writeFile('/a/../b', 'x'), 'INVALID_PATH');
    await expectCode(
      files.writeFileIfContentMatches('/existing.txt', 'something else', 'x'),
      'CONTENT_MISMATCH',
    );
    await expectCode(
      files.writeFileIfContentMatches('/existing.txt', null, 'x'),
      'CONTENT_MISMATCH',
    );
    await expectCode(files.editFile('/existing.txt', 'not there', 'x'), 'CONTENT_MISMATCH');
    expect(requests).toEqual([]);
    expect(readFileSync(join(root, 'existing.txt'), 'utf8')).toBe('alpha beta');
  });

  it('composes with WriteBlocklistFileStore in either order', async () => {
    const { gate, requests } = recordingGate('approve');
    const gated = new ApprovalGatingFileStore(new WriteBlocklistFileStore(realDisk), gate);
    // A new file is asked about before the inner blocklist refuses it.
    await expectCode(gated.writeFile('/.git/config', 'x'), 'WRITE_BLOCKED');
    await gated.writeFile('/existing.txt', 'approved');
    expect(requests.map((request) => [request.path, request.before])).toEqual([
      ['/.git/config', null],
      ['/existing.txt', 'alpha beta'],
    ]);

    symlinkSync('.git', join(root, 'alias'));
    const blocked: SessionFileSystem = new WriteBlocklistFileStore(
      new ApprovalGatingFileStore(realDisk, gate),
    );
    await expectCode(blocked.writeFile('/alias/config', 'x'), 'WRITE_BLOCKED');
    await expectCode(gated.writeFile('/alias/config', 'x'), 'WRITE_BLOCKED');
    expect(await gated.resolveRealPath('/alias/config')).toBe('/.git/config');
    expect(tree(root)).toEqual([
      'alias -> .git',
      'dir/',
      'dir/inner.txt: inner',
      'existing.txt: approved',
    ]);
  });
});
