import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Message, SessionFileSystemFactory, ToolResultPart } from '@everruns-ts/core';
import { LlmSimConfig, type LlmSimToolCall } from '@everruns-ts/driver-llmsim';
import { RealDiskSessionFileSystemFactory } from '@everruns-ts/fs-realdisk';
import { type InProcessRuntime, InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { InMemorySessionFileSystemFactory } from '@everruns-ts/stores-memory';
import { afterAll, describe, expect, it } from 'vitest';
import { FILE_SYSTEM_CAPABILITY_ID, fileSystemCapability } from './index.js';

/** Longest the event loop may stall because of one tool call; the stores aim for about 20 ms. */
const MAX_EVENT_LOOP_DELAY_MS = 100;
/** A generous bound on a whole attack turn, far below what a backtracking engine would take. */
const MAX_TURN_MS = 10_000;

const directories: string[] = [];
afterAll(async () => {
  await Promise.all(directories.map((path) => rm(path, { recursive: true, force: true })));
});

/**
 * Measures how long the event loop was held while `run` is under way: the longest gap between
 * ticks of a 5 ms interval, counting of each gap only the CPU time this process spent in it, so
 * time the operating system gave to other processes on a shared machine is not taken for a
 * stall (a synchronous stretch of work is CPU time and shows in full).
 */
async function withEventLoopProbe<T>(
  run: () => Promise<T>,
): Promise<{ result: T; maxDelayMs: number; elapsedMs: number }> {
  const started = performance.now();
  let last = started;
  let lastCpu = process.cpuUsage();
  let maxDelayMs = 0;
  const tick = () => {
    const now = performance.now();
    const cpu = process.cpuUsage(lastCpu);
    maxDelayMs = Math.max(maxDelayMs, Math.min(now - last, (cpu.user + cpu.system) / 1_000));
    last = now;
    lastCpu = process.cpuUsage();
  };
  const timer = setInterval(tick, 5);
  try {
    const result = await run();
    tick();
    return { result, maxDelayMs, elapsedMs: performance.now() - started };
  } finally {
    clearInterval(timer);
  }
}

/**
 * A runtime whose scripted model makes, in each session, the calls `script` gives for it in the
 * first step of a turn and then answers "done" (a session without calls answers "done" at once).
 */
async function attackRuntime(factory: SessionFileSystemFactory) {
  const script = new Map<string, LlmSimToolCall[]>();
  const runtime = await new InProcessRuntimeBuilder()
    .capability(fileSystemCapability)
    .fileSystemFactory(factory)
    .llmSim(
      LlmSimConfig.fromFunction((request) => {
        const calls = request.iteration === 1 ? script.get(request.sessionId) : undefined;
        return calls === undefined ? 'done' : { text: '', toolCalls: calls };
      }),
    )
    .singleSession((session) => {
      session.harness('files', 'You work with files.').withCapability(FILE_SYSTEM_CAPABILITY_ID);
    })
    .build();
  const attacker = runtime.defaultSessionId() as string;
  const harnessId = (await runtime.getSession(attacker))?.harnessId as string;
  return { runtime, script, attacker, harnessId };
}

function toolResult(
  messages: Message[],
  toolCallId: string,
): { content: string; isError: boolean } {
  for (const message of messages) {
    for (const part of message.content) {
      if (part.type === 'tool_result' && (part as ToolResultPart).toolCallId === toolCallId) {
        const result = part as ToolResultPart;
        return { content: result.content, isError: result.isError };
      }
    }
  }
  throw new Error(`no result for ${toolCallId}`);
}

function nested(depth: number): unknown {
  let value: unknown = 'leaf';
  for (let level = 0; level < depth; level++) value = { inner: value };
  return value;
}

async function runAttack(runtime: InProcessRuntime, sessionId: string) {
  const { result, maxDelayMs, elapsedMs } = await withEventLoopProbe(() =>
    runtime.runTextTurn(sessionId, 'work on the files'),
  );
  expect(result).toMatchObject({ success: true, response: 'done' });
  return { maxDelayMs, elapsedMs, messages: await runtime.messages(sessionId) };
}

function describeFileToolAttacksOn(
  backend: string,
  makeFactory: () => Promise<SessionFileSystemFactory>,
) {
  describe(`file tools under attack on ${backend}`, () => {
    it('answers tool arguments nested 100,000 levels deep with a tool error, and the session goes on', async () => {
      const { runtime, script, attacker } = await attackRuntime(await makeFactory());
      script.set(attacker, [
        {
          id: `deep-object-${randomUUID()}`,
          name: 'write_file',
          arguments: { path: '/deep.txt', content: 'x', extra: nested(100_000) } as never,
        },
        {
          id: `deep-text-${randomUUID()}`,
          name: 'read_file',
          arguments: `{"path":"/deep.txt","offset":${'['.repeat(100_000)}${']'.repeat(100_000)}}`,
        },
      ]);
      const calls = script.get(attacker) as LlmSimToolCall[];
      const { maxDelayMs, elapsedMs, messages } = await runAttack(runtime, attacker);
      expect(elapsedMs).toBeLessThan(MAX_TURN_MS);
      expect(maxDelayMs).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);
      for (const call of calls) {
        expect(toolResult(messages, call.id as string)).toEqual({
          content: `Arguments of ${call.name} are nested more than 100 levels deep; this call was not run.`,
          isError: true,
        });
      }
      expect(await (await runtime.fileSystem(attacker)).statFile('/deep.txt')).toBeNull();
      // The stored history can be sent to the model again: the next turns succeed.
      script.delete(attacker);
      expect(await runtime.runTextTurn(attacker, 'again')).toMatchObject({ success: true });
      const history = await runtime.messages(attacker);
      expect(() => JSON.stringify(history)).not.toThrow();
    });

    it('pages a 10 MB file of five million lines without stalling the process', async () => {
      const { runtime, script, attacker } = await attackRuntime(await makeFactory());
      const files = await runtime.fileSystem(attacker);
      const lineCount = 5 * 1024 * 1024 - 16;
      await files.writeFile('/lines.txt', 'a\n'.repeat(lineCount));
      const id = `read-${randomUUID()}`;
      script.set(attacker, [
        { id, name: 'read_file', arguments: { path: '/lines.txt', offset: lineCount - 3 } },
      ]);
      const { maxDelayMs, messages } = await runAttack(runtime, attacker);
      expect(maxDelayMs).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);
      const result = toolResult(messages, id);
      expect(result.isError, result.content).toBe(false);
      expect(JSON.parse(result.content)).toMatchObject({
        content: 'a\na\na\n',
        total_lines: lineCount,
        lines_shown: { start: lineCount - 2, end: lineCount },
      });
    });

    it('lists a directory of 100,000 entries in pages of maxListEntries without stalling the process', async () => {
      const { runtime, script, attacker } = await attackRuntime(await makeFactory());
      const files = await runtime.fileSystem(attacker);
      const entryCount = backend.includes('memory') ? 100_000 : 10_000;
      for (let start = 0; start < entryCount; start += 500) {
        await Promise.all(
          Array.from({ length: 500 }, (_, index) =>
            files.writeFile(`/many/f${start + index}.txt`, ''),
          ),
        );
      }
      const id = `list-${randomUUID()}`;
      script.set(attacker, [{ id, name: 'list_directory', arguments: { path: '/many' } }]);
      const { maxDelayMs, messages } = await runAttack(runtime, attacker);
      expect(maxDelayMs).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);
      // 500 entries are more than the runner's 50,000-character result limit: the count and the
      // truncation flag come first, so the model sees them in the truncated text.
      const result = toolResult(messages, id);
      expect(result.isError).toBe(false);
      expect(result.content).toMatch(
        new RegExp(`^\\{"path":"/many","count":${entryCount},"truncated":true,"entries":\\[`),
      );
    }, 60_000);

    it("completes another session's turn while every one of these attacks runs", async () => {
      const { runtime, script, attacker, harnessId } = await attackRuntime(await makeFactory());
      const files = await runtime.fileSystem(attacker);
      await files.writeFile('/lines.txt', 'a\n'.repeat(4 * 1024 * 1024));
      script.set(attacker, [
        { id: 'deep', name: 'write_file', arguments: { path: '/d', content: nested(100_000) } },
        { id: 'page', name: 'read_file', arguments: { path: '/lines.txt', offset: 4_000_000 } },
        {
          id: 'edit',
          name: 'edit_file',
          arguments: { path: '/lines.txt', old_text: 'a', new_text: 'b', replace_all: true },
        },
      ]);
      const bystander = (await runtime.createSession({ harnessId })).id;
      const { result, maxDelayMs } = await withEventLoopProbe(() =>
        Promise.all([
          runtime.runTextTurn(attacker, 'attack'),
          runtime.runTextTurn(bystander, 'hello'),
        ]),
      );
      expect(result.map((turn) => turn.success)).toEqual([true, true]);
      expect(maxDelayMs).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);
      const messages = await runtime.messages(attacker);
      expect(toolResult(messages, 'deep').isError).toBe(true);
      expect(toolResult(messages, 'page').isError).toBe(false);
      expect(toolResult(messages, 'edit').content).toContain('LIMIT_EXCEEDED');
    });

    it('refuses a replace_all edit of ten million occurrences with a typed tool error, quickly', async () => {
      const { runtime, script, attacker } = await attackRuntime(await makeFactory());
      const files = await runtime.fileSystem(attacker);
      const content = 'a'.repeat(10 * 1024 * 1024 - 16);
      await files.writeFile('/big.txt', content);
      const id = `edit-${randomUUID()}`;
      script.set(attacker, [
        {
          id,
          name: 'edit_file',
          arguments: { path: '/big.txt', old_text: 'a', new_text: 'bb', replace_all: true },
        },
      ]);
      const { maxDelayMs, messages } = await runAttack(runtime, attacker);
      expect(maxDelayMs).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);
      const result = toolResult(messages, id);
      expect(result.isError).toBe(true);
      expect(result.content).toContain('LIMIT_EXCEEDED');
      expect(result.content).toContain('maxEditReplacements');
      expect((await files.readFile('/big.txt')).content.length).toBe(content.length);
    });
  });
}

describeFileToolAttacksOn(
  'the in-memory workspace',
  async () => new InMemorySessionFileSystemFactory(),
);
describeFileToolAttacksOn('a real temp directory', async () => {
  const sessionsDirectory = await mkdtemp(join(tmpdir(), 'everruns-file-tools-attacks-'));
  directories.push(sessionsDirectory);
  return new RealDiskSessionFileSystemFactory({ sessionsDirectory });
});
