import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Message,
  type SessionFileSystem,
  type SessionFileSystemFactory,
  type ToolResultPart,
  toolSpec,
} from '@everruns-ts/core';
import { LlmSimConfig, type LlmSimToolCall } from '@everruns-ts/driver-llmsim';
import { RealDiskSessionFileSystemFactory } from '@everruns-ts/fs-realdisk';
import {
  ApprovalGatingFileStore,
  type FileApprovalGate,
  type FileApprovalRequest,
  InProcessRuntimeBuilder,
  WriteBlocklistFileStore,
} from '@everruns-ts/runtime';
import { InMemorySessionFileSystemFactory } from '@everruns-ts/stores-memory';
import { afterAll, describe, expect, it } from 'vitest';
import { FILE_SYSTEM_CAPABILITY_ID, fileSystemCapability } from './index.js';

type Results = Map<string, { content: string; isError: boolean; json: unknown }>;

function toolResults(messages: Message[]): Results {
  const results: Results = new Map();
  for (const message of messages) {
    for (const part of message.content) {
      if (part.type !== 'tool_result') continue;
      const result = part as ToolResultPart;
      let json: unknown;
      try {
        json = JSON.parse(result.content);
      } catch {
        json = undefined;
      }
      results.set(result.toolCallId, { content: result.content, isError: result.isError, json });
    }
  }
  return results;
}

/**
 * Runs one real turn whose model calls `calls` (all in one step) and then answers "done"; returns
 * the tool results by call id and the session's workspace.
 */
async function runCalls(
  calls: LlmSimToolCall[],
  options: {
    factory?: SessionFileSystemFactory;
    seed?: Record<string, string>;
    config?: unknown;
    /** Runs after the session exists and before the turn. */
    beforeTurn?: (sessionId: string) => Promise<void>;
  } = {},
) {
  const builder = new InProcessRuntimeBuilder()
    .capability(fileSystemCapability)
    .llmSim(LlmSimConfig.sequence(['', 'done']).withToolCallSequence([calls, []]))
    .singleSession((session) => {
      session
        .harness('files', 'You work with files.')
        .withCapability(FILE_SYSTEM_CAPABILITY_ID, options.config);
      for (const [path, content] of Object.entries(options.seed ?? {}))
        session.seedTextFile(path, content);
    });
  if (options.factory) builder.fileSystemFactory(options.factory);
  const runtime = await builder.build();
  const sessionId = runtime.defaultSessionId() as string;
  await options.beforeTurn?.(sessionId);
  const result = await runtime.runTextTurn(sessionId, 'work on the files');
  expect(result).toMatchObject({ success: true, response: 'done', iterations: 2 });
  return {
    runtime,
    sessionId,
    results: toolResults(await runtime.messages(sessionId)),
    fileSystem: await runtime.fileSystem(sessionId),
  };
}

function jsonOf<T>(results: Results, id: string): T {
  const result = results.get(id);
  if (!result) throw new Error(`no result for ${id}`);
  return result.json as T;
}

const call = (id: string, name: string, args: unknown): LlmSimToolCall => ({
  id,
  name,
  arguments: args as Record<string, unknown>,
});

/** The behaviour every workspace backend must give the tools. */
function describeToolsOn(backend: string, makeFactory: () => Promise<SessionFileSystemFactory>) {
  describe(`file system tools on ${backend}`, () => {
    it('writes, reads, edits, stats, lists, greps and deletes through a real turn', async () => {
      const { results, fileSystem } = await runCalls(
        [
          call('w', 'write_file', { path: '/docs/a.md', content: 'alpha\nbeta\ngamma\n' }),
          call('r', 'read_file', { path: '/workspace/docs/a.md' }),
          call('e', 'edit_file', { path: '/docs/a.md', old_text: 'beta', new_text: 'BETA' }),
          call('s', 'stat_file', { path: '/docs/a.md' }),
          call('s2', 'stat_file', { path: '/docs/missing.md' }),
          call('l', 'list_directory', { path: '/docs' }),
          call('l2', 'list_directory', {}),
          call('g', 'grep_files', { pattern: 'BE.A', path_pattern: '*.md' }),
          call('w2', 'write_file', { path: '/tmp/x.txt', content: 'x' }),
          call('d', 'delete_file', { path: '/tmp', recursive: true }),
        ],
        { factory: await makeFactory() },
      );
      for (const [id, result] of results)
        expect(result.isError, `${id}: ${result.content}`).toBe(false);
      expect(results.get('w')?.json).toMatchObject({ path: '/docs/a.md', created: true });
      expect(results.get('r')?.json).toMatchObject({
        path: '/docs/a.md',
        content: 'alpha\nbeta\ngamma\n',
        total_lines: 3,
        lines_shown: { start: 1, end: 3 },
        truncated: false,
      });
      expect(results.get('e')?.json).toMatchObject({ path: '/docs/a.md', replacements: 1 });
      expect(results.get('s')?.json).toMatchObject({
        exists: true,
        path: '/docs/a.md',
        is_directory: false,
        size_bytes: 17,
      });
      expect(results.get('s2')?.json).toEqual({ path: '/docs/missing.md', exists: false });
      expect(results.get('l')?.json).toMatchObject({
        entries: [{ name: 'a.md', path: '/docs/a.md', is_directory: false }],
        count: 1,
      });
      expect(
        jsonOf<{ entries: { name: string }[] }>(results, 'l2').entries.map((e) => e.name),
      ).toContain('docs');
      expect(results.get('g')?.json).toEqual({
        matches: [{ path: '/docs/a.md', line_number: 2, line: 'BETA' }],
        count: 1,
        truncated: false,
      });
      expect(results.get('d')?.json).toEqual({ path: '/tmp', deleted: true });
      expect((await fileSystem.readFile('/docs/a.md')).content).toBe('alpha\nBETA\ngamma\n');
      expect(await fileSystem.statFile('/tmp')).toBeNull();
    });

    it('pages a large file with offset and limit and caps a page by size', async () => {
      const lines = Array.from({ length: 50 }, (_, index) => `line ${index + 1}`);
      const { results } = await runCalls(
        [
          call('p1', 'read_file', { path: '/big.txt', limit: 10 }),
          call('p2', 'read_file', { path: '/big.txt', offset: 45 }),
          call('cap', 'read_file', { path: '/big.txt' }),
          call('past', 'read_file', { path: '/big.txt', offset: 80 }),
        ],
        {
          factory: await makeFactory(),
          seed: { '/big.txt': `${lines.join('\n')}\n` },
          config: { maxReadChars: 40 },
        },
      );
      expect(results.get('p1')?.json).toMatchObject({
        total_lines: 50,
        lines_shown: { start: 1, end: 5 },
        truncated: true,
        next_offset: 5,
      });
      expect(results.get('p2')?.json).toMatchObject({
        content: 'line 46\nline 47\nline 48\nline 49\nline 50\n',
        lines_shown: { start: 46, end: 50 },
        truncated: true,
      });
      expect(jsonOf<Record<string, unknown>>(results, 'p2').next_offset).toBeUndefined();
      const capped = jsonOf<{ content: string; next_offset: number }>(results, 'cap');
      expect(capped.content.length).toBeLessThanOrEqual(40);
      expect(capped.content.endsWith('\n')).toBe(true);
      expect(capped.next_offset).toBe(capped.content.split('\n').length - 1);
      expect(results.get('past')?.json).toMatchObject({
        content: '',
        lines_shown: { start: 0, end: 0 },
      });
    });

    it('reports a missing or ambiguous edit, and edits every occurrence with replace_all', async () => {
      const { results, fileSystem } = await runCalls(
        [
          call('missing', 'edit_file', { path: '/a.txt', old_text: 'zeta', new_text: 'x' }),
          call('ambiguous', 'edit_file', { path: '/a.txt', old_text: 'one', new_text: 'x' }),
          call('all', 'edit_file', {
            path: '/b.txt',
            old_text: 'one',
            new_text: 'two',
            replace_all: true,
          }),
        ],
        { factory: await makeFactory(), seed: { '/a.txt': 'one one', '/b.txt': 'one one' } },
      );
      expect(results.get('missing')).toMatchObject({
        isError: true,
        content: expect.stringContaining('old_text was not found in /a.txt'),
      });
      expect(results.get('ambiguous')).toMatchObject({
        isError: true,
        content: expect.stringContaining('ambiguous, it occurs 2 times in /a.txt'),
      });
      expect(results.get('all')).toMatchObject({ isError: false });
      expect((await fileSystem.readFile('/a.txt')).content).toBe('one one');
      expect((await fileSystem.readFile('/b.txt')).content).toBe('two two');
    });

    it('turns bad input and file-system errors into tool errors naming the problem, and the turn goes on', async () => {
      const { results } = await runCalls(
        [
          call('no-path', 'read_file', {}),
          call('wrong-type', 'read_file', { path: 42 }),
          call('extra', 'write_file', { path: '/a', content: 'x', mode: 'fast' }),
          call('negative', 'read_file', { path: '/a', offset: -1 }),
          call('dotdot', 'read_file', { path: '/../etc/passwd' }),
          call('dotdot-write', 'write_file', { path: '/docs/../../x', content: 'x' }),
          call('not-found', 'read_file', { path: '/nope.txt' }),
          call('dir', 'read_file', { path: '/docs' }),
          call('delete-missing', 'delete_file', { path: '/ghost' }),
          call('delete-root', 'delete_file', { path: '/', recursive: true }),
          call('non-empty', 'delete_file', { path: '/docs' }),
          call('bad-regex', 'grep_files', { pattern: '([' }),
          call('list-file', 'list_directory', { path: '/docs/a.md' }),
        ],
        { factory: await makeFactory(), seed: { '/docs/a.md': 'a' } },
      );
      const error = (id: string) => {
        const result = results.get(id);
        expect(result?.isError, `${id}: ${result?.content}`).toBe(true);
        return result?.content ?? '';
      };
      expect(error('no-path')).toMatch(/Invalid arguments for read_file: path:/);
      expect(error('wrong-type')).toMatch(/read_file: path: .*string/);
      expect(error('extra')).toMatch(/write_file: .*mode/);
      expect(error('negative')).toMatch(/read_file: offset:/);
      expect(error('dotdot')).toContain('read_file failed (INVALID_PATH)');
      expect(error('dotdot-write')).toContain('write_file failed (INVALID_PATH)');
      expect(error('not-found')).toContain('read_file failed (FILE_NOT_FOUND)');
      expect(error('dir')).toContain('read_file failed (IS_A_DIRECTORY)');
      expect(error('delete-missing')).toContain('delete_file failed (FILE_NOT_FOUND)');
      expect(error('delete-root')).toContain('delete_file failed (INVALID_PATH)');
      expect(error('non-empty')).toContain(
        'delete_file failed (IS_A_DIRECTORY): Directory is not empty. Use recursive=true to delete: /docs',
      );
      expect(error('bad-regex')).toContain('grep_files failed (INVALID_INPUT)');
      expect(error('list-file')).toContain('list_directory failed (NOT_A_DIRECTORY)');
    });

    it('refuses to change a read-only file', async () => {
      const factory = await makeFactory();
      const builder = new InProcessRuntimeBuilder()
        .capability(fileSystemCapability)
        .fileSystemFactory(factory)
        .llmSim(
          LlmSimConfig.sequence(['', 'done']).withToolCallSequence([
            [
              call('w', 'write_file', { path: '/locked.md', content: 'changed' }),
              call('e', 'edit_file', { path: '/locked.md', old_text: 'fixed', new_text: 'x' }),
              call('d', 'delete_file', { path: '/locked.md' }),
            ],
            [],
          ]),
        )
        .singleSession((session) =>
          session
            .harness('files', '')
            .withCapability(FILE_SYSTEM_CAPABILITY_ID)
            .initialFile('/locked.md', 'fixed', { isReadonly: true }),
        );
      const runtime = await builder.build();
      const sessionId = runtime.defaultSessionId() as string;
      await runtime.runTextTurn(sessionId, 'try');
      const results = toolResults(await runtime.messages(sessionId));
      for (const id of ['w', 'e', 'd'])
        expect(results.get(id)).toMatchObject({
          isError: true,
          content: expect.stringContaining('(FILE_READ_ONLY)'),
        });
      expect((await runtime.readFile(sessionId, '/locked.md')).content).toBe('fixed');
    });
  });
}

const temporaryDirectories: string[] = [];
async function temporaryDirectory(): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'everruns-fs-tools-'));
  temporaryDirectories.push(directory);
  return directory;
}
afterAll(async () => {
  for (const directory of temporaryDirectories)
    await rm(directory, { recursive: true, force: true });
});

describeToolsOn('the in-memory workspace', async () => new InMemorySessionFileSystemFactory());
describeToolsOn(
  'a real temp directory',
  async () =>
    new RealDiskSessionFileSystemFactory({ sessionsDirectory: await temporaryDirectory() }),
);

/** Each session's workspace behind the write blocklist and the approval gate, as an embedder composes them. */
function decoratedFactory(
  inner: SessionFileSystemFactory,
  gate: FileApprovalGate,
): SessionFileSystemFactory {
  const stores = new Map<string, SessionFileSystem>();
  return {
    async forSession(sessionId) {
      let store = stores.get(sessionId);
      if (!store) {
        const base = await inner.forSession(sessionId);
        store = new ApprovalGatingFileStore(new WriteBlocklistFileStore(base), gate, { sessionId });
        stores.set(sessionId, store);
      }
      return store;
    },
  };
}

describeToolsOn(
  'approval gating over the blocklist over a real directory (approving everything)',
  async () =>
    decoratedFactory(
      new RealDiskSessionFileSystemFactory({ sessionsDirectory: await temporaryDirectory() }),
      () => 'approve',
    ),
);

describe('file system tools behind the approval gate and the write blocklist', () => {
  for (const [backend, makeInner] of [
    ['memory', async () => new InMemorySessionFileSystemFactory()],
    [
      'a real directory',
      async () =>
        new RealDiskSessionFileSystemFactory({ sessionsDirectory: await temporaryDirectory() }),
    ],
  ] as const) {
    it(`reports blocked paths and denied approvals as tool errors naming them, on ${backend}`, async () => {
      const inner = await makeInner();
      const asked: FileApprovalRequest[] = [];
      const gate: FileApprovalGate = (request) => {
        asked.push(request);
        return request.path === '/keep.md'
          ? { decision: 'deny', reason: 'keep.md is curated by hand' }
          : 'approve';
      };
      const { results, fileSystem, sessionId } = await runCalls(
        [
          call('blocked-write', 'write_file', { path: '/node_modules/pkg/index.js', content: 'x' }),
          call('blocked-git', 'write_file', { path: '/src/.git/HEAD', content: 'x' }),
          call('blocked-edit', 'edit_file', {
            path: '/dist/out.js',
            old_text: 'built',
            new_text: 'hacked',
          }),
          call('blocked-delete', 'delete_file', { path: '/dist', recursive: true }),
          call('denied-edit', 'edit_file', {
            path: '/keep.md',
            old_text: 'curated',
            new_text: 'changed',
          }),
          call('denied-write', 'write_file', { path: '/keep.md', content: 'replaced' }),
          call('denied-delete', 'delete_file', { path: '/keep.md' }),
          call('approved-edit', 'edit_file', {
            path: '/notes.md',
            old_text: 'draft',
            new_text: 'final',
          }),
          call('new-file', 'write_file', { path: '/fresh.md', content: 'new' }),
          call('read-blocked-dir', 'read_file', { path: '/dist/out.js' }),
        ],
        {
          factory: decoratedFactory(inner, gate),
          seed: { '/keep.md': 'curated', '/notes.md': 'draft' },
          // The build output is put there by the host, around the blocklist.
          beforeTurn: async (id) => {
            await (await inner.forSession(id)).writeFile('/dist/out.js', 'built');
          },
        },
      );
      for (const id of ['blocked-write', 'blocked-git', 'blocked-edit', 'blocked-delete'])
        expect(results.get(id), id).toMatchObject({
          isError: true,
          content: expect.stringContaining('failed (WRITE_BLOCKED)'),
        });
      expect(results.get('blocked-write')?.content).toContain('node_modules');
      for (const id of ['denied-edit', 'denied-write', 'denied-delete'])
        expect(results.get(id), id).toMatchObject({
          isError: true,
          content: expect.stringMatching(
            /failed \(APPROVAL_DENIED\): .* of \/keep\.md was not approved: keep\.md is curated by hand/,
          ),
        });
      expect(results.get('approved-edit')).toMatchObject({ isError: false });
      expect(results.get('new-file')).toMatchObject({ isError: false });
      expect(results.get('read-blocked-dir')).toMatchObject({
        isError: false,
        json: { content: 'built' },
      });
      expect((await fileSystem.readFile('/keep.md')).content).toBe('curated');
      expect((await fileSystem.readFile('/dist/out.js')).content).toBe('built');
      expect((await fileSystem.readFile('/notes.md')).content).toBe('final');
      expect(await fileSystem.statFile('/node_modules')).toBeNull();
      // (The gate sits outside the blocklist, so it may also be asked about blocked paths.)
      expect(asked.map((request) => [request.operation, request.path])).toEqual(
        expect.arrayContaining([
          ['editFile', '/keep.md'],
          ['writeFile', '/keep.md'],
          ['deleteFile', '/keep.md'],
          ['editFile', '/notes.md'],
        ]),
      );
      expect(asked.every((request) => request.sessionId === sessionId)).toBe(true);
    });
  }
});

describe('file system tools on a real directory with escapes', () => {
  it('reports a symlink out of the workspace as PATH_OUTSIDE_ROOT and reads nothing outside', async () => {
    const outside = await temporaryDirectory();
    await writeFile(join(outside, 'secret.txt'), 'TOP-SECRET-CONTENT');
    const root = await temporaryDirectory();
    await mkdir(join(root, 'docs'));
    await symlink(join(outside, 'secret.txt'), join(root, 'docs', 'link.txt'));
    await symlink(outside, join(root, 'out'));
    const { results } = await runCalls(
      [
        call('file-link', 'read_file', { path: '/docs/link.txt' }),
        call('dir-link', 'read_file', { path: '/out/secret.txt' }),
        call('write-through', 'write_file', { path: '/out/new.txt', content: 'x' }),
        call('list-through', 'list_directory', { path: '/out' }),
      ],
      { factory: new RealDiskSessionFileSystemFactory({ root }) },
    );
    for (const id of ['file-link', 'dir-link', 'write-through', 'list-through']) {
      const result = results.get(id);
      expect(result?.isError, `${id}: ${result?.content}`).toBe(true);
      expect(result?.content).toContain('(PATH_OUTSIDE_ROOT)');
      expect(result?.content).not.toContain('TOP-SECRET-CONTENT');
    }
  });
});

describe('every file system tool', () => {
  const valid: Record<string, Record<string, unknown>> = {
    read_file: { path: '/a.txt' },
    write_file: { path: '/b.txt', content: 'b' },
    edit_file: { path: '/a.txt', old_text: 'a', new_text: 'A' },
    delete_file: { path: '/c.txt' },
    list_directory: { path: '/' },
    stat_file: { path: '/a.txt' },
    grep_files: { pattern: 'a' },
  };

  it('refuses an extra field, a wrong type and a missing field, naming it, and the turn goes on', async () => {
    const calls: LlmSimToolCall[] = [];
    for (const [name, args] of Object.entries(valid)) {
      calls.push(call(`${name}-extra`, name, { ...args, unexpected: true }));
      const [first] = Object.keys(args);
      calls.push(call(`${name}-type`, name, { ...args, [first as string]: 12 }));
      if (name !== 'list_directory') {
        const { [first as string]: _dropped, ...rest } = args;
        calls.push(call(`${name}-missing`, name, rest));
      }
    }
    const { results } = await runCalls(calls, { seed: { '/a.txt': 'a', '/c.txt': 'c' } });
    for (const [name, args] of Object.entries(valid)) {
      const [first] = Object.keys(args);
      expect(results.get(`${name}-extra`)).toMatchObject({
        isError: true,
        content: expect.stringMatching(new RegExp(`Invalid arguments for ${name}: .*unexpected`)),
      });
      expect(results.get(`${name}-type`)).toMatchObject({
        isError: true,
        content: expect.stringContaining(`${first}: Invalid input: expected string`),
      });
      if (name !== 'list_directory')
        expect(results.get(`${name}-missing`)).toMatchObject({
          isError: true,
          content: expect.stringContaining(`${first}:`),
        });
    }
  });
});

describe('fileSystemCapability', () => {
  it('is session_file_system with the upstream tool names and strict schemas', () => {
    expect(fileSystemCapability.id).toBe('session_file_system');
    expect(fileSystemCapability.tools.map((tool) => tool.name)).toEqual([
      'read_file',
      'write_file',
      'edit_file',
      'delete_file',
      'list_directory',
      'stat_file',
      'grep_files',
    ]);
    for (const tool of fileSystemCapability.tools)
      expect(toolSpec(tool).inputSchema).toMatchObject({ additionalProperties: false });
  });

  it('adds its guidance to the system prompt and its tools to the context', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .capability(fileSystemCapability)
      .llmSim(LlmSimConfig.fixed('ok'))
      .singleSession((session) =>
        session.harness('h', '').withCapability(FILE_SYSTEM_CAPABILITY_ID),
      )
      .build();
    const context = await runtime.loadContext(runtime.defaultSessionId() as string);
    expect(context.systemPrompt).toContain('<capability id="session_file_system">');
    expect(context.tools.map((tool) => tool.name)).toContain('edit_file');
  });

  it('rejects an invalid configuration with a typed error naming the field', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .capability(fileSystemCapability)
      .llmSim(LlmSimConfig.fixed('ok'))
      .singleSession((session) =>
        session.harness('h', '').withCapability(FILE_SYSTEM_CAPABILITY_ID, { maxReadChars: -1 }),
      )
      .build();
    await expect(runtime.loadContext(runtime.defaultSessionId() as string)).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      message: expect.stringContaining('maxReadChars'),
    });
  });
});
