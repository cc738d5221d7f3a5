import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileSystemCapability } from '@everruns-ts/capabilities-file-system';
import type {
  Message,
  SessionFileSystem,
  SessionFileSystemFactory,
  ToolResultPart,
} from '@everruns-ts/core';
import { LlmSimConfig, type LlmSimToolCall } from '@everruns-ts/driver-llmsim';
import { RealDiskSessionFileSystemFactory } from '@everruns-ts/fs-realdisk';
import {
  ApprovalGatingFileStore,
  type FileApprovalGate,
  InProcessRuntimeBuilder,
  WriteBlocklistFileStore,
} from '@everruns-ts/runtime';
import { InMemorySessionFileSystemFactory } from '@everruns-ts/stores-memory';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type BashResult,
  truncateOutput,
  VIRTUAL_BASH_CAPABILITY_ID,
  virtualBashCapability,
  virtualBashConfigSchema,
} from './index.js';

type Result = { content: string; isError: boolean; json: unknown };

function toolResults(messages: Message[]): Map<string, Result> {
  const results = new Map<string, Result>();
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

const call = (id: string, name: string, args: Record<string, unknown>): LlmSimToolCall => ({
  id,
  name,
  arguments: args,
});
const bash = (id: string, commands: string, extra: Record<string, unknown> = {}) =>
  call(id, 'bash', { commands, ...extra });

/**
 * Runs one real turn whose model makes the calls of each step in order (bash and the file tools
 * of `session_file_system`), then answers "done"; returns the results by call id.
 */
async function runSteps(
  steps: LlmSimToolCall[][],
  options: {
    factory?: SessionFileSystemFactory;
    seed?: Record<string, string>;
    config?: unknown;
    beforeTurn?: (sessionId: string) => Promise<void>;
  } = {},
) {
  const builder = new InProcessRuntimeBuilder()
    .capability(fileSystemCapability)
    .capability(virtualBashCapability)
    .llmSim(
      LlmSimConfig.sequence([...steps.map(() => ''), 'done']).withToolCallSequence([...steps, []]),
    )
    .singleSession((session) => {
      session
        .harness('shell', 'You work in a shell.')
        .withCapability('session_file_system')
        .withCapability(VIRTUAL_BASH_CAPABILITY_ID, options.config);
      for (const [path, content] of Object.entries(options.seed ?? {}))
        session.seedTextFile(path, content);
    });
  if (options.factory) builder.fileSystemFactory(options.factory);
  const runtime = await builder.build();
  const sessionId = runtime.defaultSessionId() as string;
  await options.beforeTurn?.(sessionId);
  const turn = await runtime.runTextTurn(sessionId, 'work in the shell');
  expect(turn).toMatchObject({ success: true, response: 'done' });
  return {
    results: toolResults(await runtime.messages(sessionId)),
    fileSystem: await runtime.fileSystem(sessionId),
    sessionId,
    close: () => runtime.close?.(),
  };
}

function bashResult(results: Map<string, Result>, id: string): BashResult {
  const result = results.get(id);
  if (!result) throw new Error(`no result for ${id}`);
  expect(result.isError, `${id}: ${result.content}`).toBe(false);
  return result.json as BashResult;
}

const SEED = {
  '/README.md': '# Demo\nA small project.\nTODO: write docs\n',
  '/src/app.ts':
    'import { helper } from "./util";\nexport const oldName = helper(1); // TODO rename\n',
  '/src/util.ts': 'export function helper(n: number) {\n  return n + 1;\n}\n',
  '/notes/todo.txt': 'pear\napple\nfig\n',
};

/** Twenty commands of the everyday kind, in one call; their effects are then read by the file tools. */
const SCRIPT = [
  'ls',
  'cat README.md',
  'grep -rn TODO src',
  "sed -i 's/oldName/newName/g' src/app.ts",
  "find . -name '*.ts' | sort",
  'cat src/app.ts src/util.ts | wc -l',
  'mkdir -p build/reports',
  'echo "report" > build/reports/summary.txt',
  'grep -rl TODO src | sort >> build/reports/summary.txt',
  'wc -l < README.md',
  'sort notes/todo.txt | head -n 2',
  'head -n 1 src/app.ts',
  'cp README.md build/README.copy',
  'mv build/README.copy build/README.md',
  'rm notes/todo.txt',
  'touch build/empty.txt',
  'echo done >> build/reports/summary.txt',
  'cat build/reports/summary.txt | tr a-z A-Z',
  'ls build | sort',
  'pwd',
].join('\n');

const temporaryDirectories: string[] = [];
async function temporaryDirectory(): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'everruns-virtual-bash-'));
  temporaryDirectories.push(directory);
  return directory;
}
afterAll(async () => {
  for (const directory of temporaryDirectories)
    await rm(directory, { recursive: true, force: true });
});

function describeShellOn(backend: string, makeFactory: () => Promise<SessionFileSystemFactory>) {
  describe(`the bash tool on ${backend}`, () => {
    it('runs a twenty-command script whose effects the file tools then see', async () => {
      expect(SCRIPT.split('\n')).toHaveLength(20);
      const { results, fileSystem } = await runSteps(
        [
          [bash('script', SCRIPT)],
          [
            call('read-app', 'read_file', { path: '/src/app.ts' }),
            call('read-summary', 'read_file', { path: '/build/reports/summary.txt' }),
            call('list-build', 'list_directory', { path: '/build' }),
            call('stat-removed', 'stat_file', { path: '/notes/todo.txt' }),
          ],
        ],
        { factory: await makeFactory(), seed: SEED },
      );
      const result = bashResult(results, 'script');
      expect(result).toMatchObject({ exit_code: 0, success: true, stderr: '', truncated: false });
      const lines = result.stdout.split('\n');
      expect(lines.slice(0, 4)).toEqual(['README.md', 'notes', 'src', '# Demo']);
      expect(result.stdout).toContain(
        'src/app.ts:2:export const oldName = helper(1); // TODO rename',
      );
      expect(result.stdout).toContain('./src/app.ts\n./src/util.ts\n');
      expect(result.stdout).toContain('\n5\n3\napple\nfig\n');
      expect(result.stdout).toContain('import { helper } from "./util";\n');
      expect(result.stdout).toContain('REPORT\nSRC/APP.TS\nDONE\n');
      expect(result.stdout).toMatch(/\nempty\.txt\nREADME\.md\nreports\n\/workspace\n$/);
      expect(result.total_lines).toBe(lines.length - 1);

      expect(results.get('read-app')?.json).toMatchObject({
        content: expect.stringContaining('export const newName = helper(1);'),
      });
      expect(results.get('read-summary')?.json).toMatchObject({
        content: 'report\nsrc/app.ts\ndone\n',
      });
      const listing = results.get('list-build')?.json as { entries: { name: string }[] };
      expect(listing.entries.map((entry) => entry.name).sort()).toEqual([
        'README.md',
        'empty.txt',
        'reports',
      ]);
      expect(results.get('stat-removed')?.json).toEqual({ path: '/notes/todo.txt', exists: false });
      expect((await fileSystem.readFile('/build/README.md')).content).toBe(SEED['/README.md']);
    });

    it('sees what the file tools wrote, at / and at /workspace, and reports exit codes', async () => {
      const { results, fileSystem } = await runSteps(
        [
          [call('write', 'write_file', { path: '/data/n.txt', content: '3\n1\n2\n' })],
          [
            bash('sorted', 'sort -n /data/n.txt && sort -rn /workspace/data/n.txt | head -n 1'),
            bash('in-dir', 'pwd; ls', { working_dir: '/data' }),
            bash('failing', 'echo out; echo err >&2; exit 3'),
            bash('missing', 'cat /data/none.txt'),
            bash('env', 'echo $PWD $HOME $WORKSPACE $USER'),
            bash('binary', "printf 'hello bytes' | gzip > /data/h.gz && gunzip -c /data/h.gz"),
            bash('bad-dir', 'pwd', { working_dir: '/data/n.txt' }),
            bash('outside-dir', 'pwd', { working_dir: '/../etc' }),
          ],
        ],
        { factory: await makeFactory() },
      );
      expect(bashResult(results, 'sorted').stdout).toBe('1\n2\n3\n3\n');
      expect(bashResult(results, 'in-dir').stdout).toBe('/workspace/data\nn.txt\n');
      expect(bashResult(results, 'failing')).toEqual({
        stdout: 'out\n',
        stderr: 'err\n',
        exit_code: 3,
        success: false,
        truncated: false,
        total_lines: 1,
      });
      const missing = bashResult(results, 'missing');
      expect(missing.exit_code).not.toBe(0);
      expect(missing.stderr).toContain('/data/none.txt');
      expect(results.get('bad-dir')).toMatchObject({
        isError: true,
        content: expect.stringContaining('/data/n.txt is not a directory of the workspace'),
      });
      expect(results.get('outside-dir')).toMatchObject({
        isError: true,
        content: expect.stringContaining('".." segments are not allowed'),
      });
      // Bytes that are not UTF-8 are stored base64-encoded, and read back unchanged.
      expect(bashResult(results, 'binary').stdout).toBe('hello bytes');
      const gzipped = await fileSystem.readFile('/data/h.gz');
      expect(gzipped.encoding).toBe('base64');
      expect([...Buffer.from(gzipped.content, 'base64').subarray(0, 2)]).toEqual([0x1f, 0x8b]);
      expect(bashResult(results, 'env').stdout).toBe('/workspace /workspace /workspace everruns\n');
    });
  });
}

describeShellOn('the in-memory workspace', async () => new InMemorySessionFileSystemFactory());
describeShellOn(
  'a real temp directory',
  async () =>
    new RealDiskSessionFileSystemFactory({ sessionsDirectory: await temporaryDirectory() }),
);

describe('the bash tool keeps to the workspace', () => {
  it('reaches no host path: .., absolute paths, /etc/passwd, /proc, links out of a real-disk root', async () => {
    const outside = await temporaryDirectory();
    await writeFile(join(outside, 'secret.txt'), 'TOP-SECRET');
    const root = await temporaryDirectory();
    await mkdir(root, { recursive: true });
    await symlink(outside, join(root, 'escape'));
    await symlink(join(outside, 'secret.txt'), join(root, 'secret-link.txt'));
    const { results } = await runSteps(
      [
        [
          bash('dotdot', 'cat ../../../../etc/passwd; cat ../secret.txt'),
          bash('passwd', 'cat /etc/passwd'),
          bash('environ', 'cat /proc/self/environ; cat /proc/1/cmdline'),
          bash('absolute', `cat ${join(outside, 'secret.txt')}; ls ${outside}`),
          bash('link-dir', 'cat escape/secret.txt; ls escape'),
          bash('link-file', 'cat secret-link.txt; head -c 5 /workspace/secret-link.txt'),
          bash('write-through-link', 'echo pwned > escape/new.txt'),
          bash('copy-through-link', 'cp README.md escape/; echo copied $?'),
          bash('make-link', 'ln -s README.md alias.md; ln README.md hard.md; ls'),
          bash('root', 'cd /; ls -a; cd ..; pwd'),
          bash('grep-host', 'grep -r TOP-SECRET / ; find / -name secret.txt'),
          bash(
            'programs',
            'curl https://example.com; python3 -c 1; node -e 1; js-exec -c 1; sh -c "echo inner"',
          ),
        ],
      ],
      {
        factory: new RealDiskSessionFileSystemFactory({ root }),
        seed: { '/README.md': 'readme\n' },
      },
    );
    const everything = [...results.values()].map((result) => result.content).join('\n');
    expect(everything).not.toContain('TOP-SECRET');
    expect(everything).not.toContain('root:x:0');
    // Messages name workspace paths only, never where the workspace is on the host.
    expect(everything).not.toContain(root);
    for (const id of ['dotdot', 'passwd', 'environ', 'absolute', 'link-dir', 'link-file']) {
      const result = bashResult(results, id);
      expect(result.exit_code, id).not.toBe(0);
      expect(result.stdout, id).toBe('');
    }
    // Through a link leaving the root the real disk's refusal is what the shell reports.
    expect(bashResult(results, 'link-dir').stderr).toMatch(
      /workspace refused: EACCES: .*\/escape.* outside the workspace/,
    );
    expect(bashResult(results, 'link-file').stderr).toMatch(
      /workspace refused: EACCES: .*\/secret-link\.txt.* outside the workspace/,
    );
    // A write through it is refused too: the redirection fails, the reason is in stderr.
    const writeThrough = bashResult(results, 'write-through-link');
    expect(writeThrough.exit_code).toBe(1);
    expect(writeThrough.stderr).toMatch(/escape\/new\.txt: cannot open redirect target/);
    expect(writeThrough.stderr).toMatch(
      /workspace refused: EACCES: .*\/escape\/new\.txt.* outside/,
    );
    expect(bashResult(results, 'copy-through-link').stdout).toMatch(/^copied [1-9]/);
    expect(await readdir(outside)).toEqual(['secret.txt']);
    const links = bashResult(results, 'make-link');
    expect(links.stderr).toMatch(/links are not supported/);
    expect(links.stdout).toBe('README.md\n');
    expect(bashResult(results, 'root').stdout).toBe('.\n..\nREADME.md\n/\n');
    expect(bashResult(results, 'grep-host').stdout).toBe('');
    const programs = bashResult(results, 'programs');
    expect(programs.stdout).toBe('inner\n');
    expect(programs.stderr).toMatch(/curl: command not found/);
    expect(programs.stderr).toMatch(/python3: command not/);
    expect(programs.stderr).toMatch(/node: command not found/);
    expect(programs.stderr).toMatch(/js-exec: command not found/);
  });

  it('on the in-memory workspace, host paths name nothing either', async () => {
    const { results } = await runSteps([
      [
        bash(
          'host',
          'cat /etc/passwd /proc/self/environ ../../../etc/hostname; ls /usr /home /tmp',
        ),
        bash('listing', 'cd ../..; ls -a /; pwd'),
      ],
    ]);
    const host = bashResult(results, 'host');
    expect(host.stdout).toBe('');
    expect(host.exit_code).not.toBe(0);
    expect(host.stderr.trimEnd().split('\n')).toHaveLength(6);
    expect(bashResult(results, 'listing').stdout).toBe('.\n..\n/\n');
  });

  it('writes only where the approval gate and the write blocklist allow', async () => {
    const inner = new InMemorySessionFileSystemFactory();
    const asked: string[] = [];
    const gate: FileApprovalGate = (request) => {
      asked.push(`${request.operation} ${request.path} ${JSON.stringify(request.after ?? null)}`);
      return request.path === '/keep.md'
        ? { decision: 'deny', reason: 'curated by hand' }
        : 'approve';
    };
    const stores = new Map<string, SessionFileSystem>();
    const factory: SessionFileSystemFactory = {
      async forSession(sessionId) {
        let store = stores.get(sessionId);
        if (!store) {
          store = new ApprovalGatingFileStore(
            new WriteBlocklistFileStore(await inner.forSession(sessionId)),
            gate,
            { sessionId },
          );
          stores.set(sessionId, store);
        }
        return store;
      },
    };
    const { results, fileSystem } = await runSteps(
      [
        [
          bash('blocked', 'echo hack > node_modules/x/index.js'),
          bash('blocked-mkdir', 'mkdir -p node_modules/y; echo status $?'),
          bash('denied', 'echo replaced > keep.md'),
          bash('denied-sed', 'sed -i s/curated/changed/ keep.md; echo status $?'),
          bash('allowed', 'echo fine > notes.md && cat notes.md'),
        ],
        [
          bash(
            'once-per-redirect',
            'echo one > a.md; echo two >> a.md; : > empty.md; cat a.md; wc -c < empty.md',
          ),
        ],
      ],
      { factory, seed: { '/keep.md': 'curated\n' } },
    );
    // A refused write to a new file at a redirection stops the script: a tool error naming it.
    expect(results.get('blocked')).toMatchObject({
      isError: true,
      content: expect.stringMatching(/node_modules\/x\/index\.js is blocked/),
    });
    const blockedMkdir = bashResult(results, 'blocked-mkdir');
    expect(blockedMkdir.stdout).toMatch(/^status [1-9]/);
    expect(blockedMkdir.stderr).toMatch(/workspace refused: .*node_modules/);
    expect(results.get('denied')).toMatchObject({
      isError: true,
      content: expect.stringContaining('curated by hand'),
    });
    const deniedSed = bashResult(results, 'denied-sed');
    expect(deniedSed.stdout).toMatch(/^status [1-9]/);
    expect(deniedSed.stderr).toMatch(/workspace refused: .*curated by hand/);
    expect(bashResult(results, 'allowed')).toMatchObject({ stdout: 'fine\n', exit_code: 0 });
    expect((await fileSystem.readFile('/keep.md')).content).toBe('curated\n');
    // One question per redirection, with the content it writes (no empty write first).
    expect(bashResult(results, 'once-per-redirect').stdout).toBe('one\ntwo\n0\n');
    expect(asked.filter((line) => /\/(a|empty)\.md/.test(line))).toEqual([
      'writeFile /a.md "one\\n"',
      'appendFile /a.md "one\\ntwo\\n"',
      'writeFile /empty.md ""',
    ]);
    expect((await fileSystem.readFile('/empty.md')).content).toBe('');
    expect(await fileSystem.statFile('/node_modules/x/index.js')).toBeNull();
  });
});

describe('the bash tool limits', () => {
  it('stops an endless loop at the command limit with a tool error naming it', async () => {
    const { results } = await runSteps([[bash('loop', 'echo start; while true; do :; done')]]);
    const result = results.get('loop');
    expect(result?.isError).toBe(true);
    expect(result?.content).toMatch(/stopped by a limit: too many commands executed \(>1000\)/);
    expect(result?.content).toContain('start');
  });

  it('stops an endless loop at the loop limit, and deep recursion at the call-depth limit', async () => {
    const { results } = await runSteps(
      [[bash('loop', 'i=0; while true; do i=$((i+1)); done'), bash('recursion', 'f() { f; }; f')]],
      { config: { maxCommands: 1_000_000, maxLoopIterations: 500, maxCallDepth: 20 } },
    );
    expect(results.get('loop')?.isError).toBe(true);
    expect(results.get('loop')?.content).toMatch(/stopped by a limit: .*500/);
    expect(results.get('recursion')?.isError).toBe(true);
    expect(results.get('recursion')?.content).toMatch(/stopped by a limit: .*20/);
  });

  it('stops a loop past every count limit at the wall time, while the event loop keeps running', async () => {
    let ticks = 0;
    const interval = setInterval(() => {
      ticks += 1;
    }, 5);
    try {
      const { results } = await runSteps(
        [[bash('spin', 'while true; do :; done', { timeout_ms: 400 })]],
        {
          config: {
            maxCommands: Number.MAX_SAFE_INTEGER,
            maxLoopIterations: Number.MAX_SAFE_INTEGER,
          },
        },
      );
      expect(results.get('spin')).toMatchObject({
        isError: true,
        content: expect.stringContaining('Command timed out after 400ms'),
      });
      expect(ticks).toBeGreaterThan(0);
    } finally {
      clearInterval(interval);
    }
  });

  it('caps the wall time a model asks for at maxTimeoutMs', async () => {
    const { results } = await runSteps(
      [[bash('spin', 'while true; do :; done', { timeout_ms: 3_600_000 })]],
      {
        config: {
          timeoutMs: 300,
          maxTimeoutMs: 300,
          maxCommands: Number.MAX_SAFE_INTEGER,
          maxLoopIterations: Number.MAX_SAFE_INTEGER,
        },
      },
    );
    expect(results.get('spin')?.content).toContain('Command timed out after 300ms');
  });

  /** A runtime whose one turn runs `script` (a loop that writes forever) with no count limits. */
  function writingForever(script: string, factory?: SessionFileSystemFactory) {
    const builder = new InProcessRuntimeBuilder().capability(virtualBashCapability);
    if (factory) builder.fileSystemFactory(factory);
    return builder
      .llmSim(
        LlmSimConfig.sequence(['', 'never']).withToolCallSequence([[bash('writer', script)], []]),
      )
      .singleSession((session) =>
        session.harness('shell', '').withCapability(VIRTUAL_BASH_CAPABILITY_ID, {
          maxCommands: Number.MAX_SAFE_INTEGER,
          maxLoopIterations: Number.MAX_SAFE_INTEGER,
        }),
      )
      .build();
  }

  it('stops the shell when the turn is cancelled', async () => {
    const runtime = await writingForever('while true; do echo x >> /log.txt; done');
    const sessionId = runtime.defaultSessionId() as string;
    const workspace = await runtime.fileSystem(sessionId);
    const controller = new AbortController();
    const turn = runtime.runTextTurn(sessionId, 'write forever', { signal: controller.signal });
    // Cancel once the script is seen writing.
    while (((await workspace.statFile('/log.txt'))?.size ?? 0) < 10) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    controller.abort();
    await expect(turn).rejects.toMatchObject({ code: 'ABORTED' });
    const sizeAfterAbort = (await workspace.statFile('/log.txt'))?.size;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await workspace.statFile('/log.txt'))?.size).toBe(sizeAfterAbort);
  });

  it('finishes the write in flight before a cancelled turn rejects, and starts none after', async () => {
    // A workspace whose appends take 150 ms: the turn is cancelled while one is under way.
    const inner = new InMemorySessionFileSystemFactory();
    let appendStarted: (() => void) | undefined;
    const firstAppend = new Promise<void>((resolve) => {
      appendStarted = resolve;
    });
    const appends: string[] = [];
    const factory: SessionFileSystemFactory = {
      async forSession(sessionId) {
        const workspace = await inner.forSession(sessionId);
        return new Proxy(workspace, {
          get(target, name) {
            if (name === 'appendFile') {
              return async (path: string, text: string) => {
                appends.push('started');
                appendStarted?.();
                await new Promise((resolve) => setTimeout(resolve, 150));
                await target.appendFile(path, text);
                appends.push('done');
              };
            }
            const value = Reflect.get(target, name, target);
            return typeof value === 'function' ? value.bind(target) : value;
          },
        });
      },
    };
    const runtime = await writingForever(
      'echo first > /log.txt; while true; do echo x >> /log.txt; done',
      factory,
    );
    const sessionId = runtime.defaultSessionId() as string;
    const controller = new AbortController();
    const turn = runtime.runTextTurn(sessionId, 'write forever', { signal: controller.signal });
    await firstAppend;
    controller.abort();
    await expect(turn).rejects.toMatchObject({ code: 'ABORTED' });
    expect(appends).toEqual(['started', 'done']);
    const workspace = await inner.forSession(sessionId);
    expect((await workspace.readFile('/log.txt'))?.content).toBe('first\nx\n');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(appends).toEqual(['started', 'done']);
    await runtime.close();
  });

  it('stops scripts that exhaust their heap with a tool error, each ending only its own process', async () => {
    // In a worker thread with resourceLimits, an allocation past the limit could abort the whole
    // host process; here three such scripts run at once, and the host goes on to a normal call.
    const hog = 'x=a; while true; do x="$x$x$x$x"; y="$y$x"; done';
    const { results } = await runSteps(
      [[bash('hog1', hog), bash('hog2', hog), bash('hog3', hog)], [bash('after', 'echo alive')]],
      {
        config: {
          maxWorkerMemoryMb: 48,
          maxCommands: Number.MAX_SAFE_INTEGER,
          maxLoopIterations: Number.MAX_SAFE_INTEGER,
        },
      },
    );
    for (const id of ['hog1', 'hog2', 'hog3']) {
      expect(results.get(id)).toMatchObject({
        isError: true,
        content: expect.stringMatching(
          /^Bash execution error: the script ran out of memory .*memory limit 48 MiB/,
        ),
      });
    }
    expect(bashResult(results, 'after')).toMatchObject({ stdout: 'alive\n', exit_code: 0 });
  });

  it('cuts long stdout and stderr to the configured size with a marker', async () => {
    const { results } = await runSteps(
      [
        [
          bash('long', 'seq 1 5000; for i in $(seq 1 300); do echo "warning $i" >&2; done'),
          bash('short', 'echo short'),
        ],
      ],
      { config: { maxOutputChars: 1_000, maxErrorChars: 300, maxCommands: 10_000 } },
    );
    const long = bashResult(results, 'long');
    expect(long.truncated).toBe(true);
    expect(long.total_lines).toBe(5000);
    expect(long.stdout.length).toBeLessThanOrEqual(1_000);
    expect(long.stdout.startsWith('1\n2\n3\n')).toBe(true);
    expect(long.stdout.endsWith('4999\n5000\n')).toBe(true);
    expect(long.stdout).toMatch(/\[\.\.\. \d+ characters truncated \.\.\.\]/);
    expect(long.stderr.length).toBeLessThanOrEqual(300);
    expect(long.stderr).toContain('characters truncated');
    expect(bashResult(results, 'short')).toMatchObject({ stdout: 'short\n', truncated: false });
  });

  it('validates its configuration with defaults documented in the schema', () => {
    expect(virtualBashConfigSchema.parse({})).toEqual({
      timeoutMs: 30_000,
      maxTimeoutMs: 60_000,
      maxOutputChars: 30_000,
      maxErrorChars: 4_096,
      maxCommands: 1_000,
      maxLoopIterations: 10_000,
      maxCallDepth: 100,
      maxScriptBytes: 1_000_000,
      maxWorkerMemoryMb: 512,
      maxBufferedOutputBytes: 16 * 1024 * 1024,
    });
    expect(virtualBashConfigSchema.safeParse({ timeoutMs: 90_000 }).success).toBe(false);
    expect(virtualBashConfigSchema.safeParse({ maxCommands: 0 }).success).toBe(false);
    expect(virtualBashConfigSchema.safeParse({ shell: '/bin/sh' }).success).toBe(false);
    expect(truncateOutput('abc', 10)).toEqual({ text: 'abc', truncated: false });
  });
});
