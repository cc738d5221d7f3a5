import type { Message, SessionFileSystem, SessionFileSystemFactory } from '@everruns-ts/core';
import type { LlmSimToolCall } from '@everruns-ts/driver-llmsim';
import { RealDiskSessionFileSystemFactory } from '@everruns-ts/fs-realdisk';
import type { InProcessRuntime } from '@everruns-ts/runtime';
import { InMemorySessionFileSystemFactory } from '@everruns-ts/stores-memory';
import { describe, expect, it } from 'vitest';
import type { GrepFilesResult } from './index.js';

import {
  attackRuntime,
  MAX_EVENT_LOOP_DELAY_MS,
  MAX_TURN_MS,
  temporarySessionsDirectory,
  toolResult,
  withEventLoopProbe,
} from './test-support/attack-runtime.js';

const grep = (id: string, args: Record<string, unknown>): LlmSimToolCall => ({
  id,
  name: 'grep_files',
  arguments: args,
});

async function runAttack(
  runtime: InProcessRuntime,
  sessionId: string,
): Promise<{
  turn: Awaited<ReturnType<InProcessRuntime['runTextTurn']>>;
  maxDelayMs: number;
  elapsedMs: number;
  messages: Message[];
}> {
  const { result, maxDelayMs, elapsedMs } = await withEventLoopProbe(() =>
    runtime.runTextTurn(sessionId, 'search the files'),
  );
  expect(result).toMatchObject({ success: true, response: 'done' });
  return { turn: result, maxDelayMs, elapsedMs, messages: await runtime.messages(sessionId) };
}

function describeAttacksOn(
  backend: string,
  makeFactory: (grepLimits?: { maxBytesScanned: number }) => Promise<SessionFileSystemFactory>,
) {
  describe(`grep_files and paths under attack on ${backend}`, () => {
    it('answers (a+)+$ over long lines at once, in linear time, without stalling the process', async () => {
      const { runtime, script, attacker } = await attackRuntime(await makeFactory());
      const files = await runtime.fileSystem(attacker);
      await files.writeFile('/bait.txt', `${'a'.repeat(40)}!\n${'a'.repeat(3_000)}!\n`.repeat(3));
      script.set(attacker, [
        grep('nested', { pattern: '(a+)+$' }),
        grep('nested-scoped', { pattern: '^(a|aa)+$', path_pattern: '*.txt' }),
      ]);
      const { maxDelayMs, elapsedMs, messages } = await runAttack(runtime, attacker);
      expect(elapsedMs).toBeLessThan(MAX_TURN_MS);
      expect(maxDelayMs).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);
      for (const id of ['nested', 'nested-scoped']) {
        const result = toolResult(messages, id);
        expect(result.isError, result.content).toBe(false);
        expect(JSON.parse(result.content)).toMatchObject({ count: 0, truncated: false });
      }
    });

    it('reports backreferences, lookaround and over-long patterns as tool errors naming them', async () => {
      const { runtime, script, attacker } = await attackRuntime(await makeFactory());
      await (await runtime.fileSystem(attacker)).writeFile('/a.txt', 'abab\n');
      script.set(attacker, [
        grep('backreference', { pattern: '(ab)\\1' }),
        grep('lookahead', { pattern: 'a(?=b)' }),
        grep('long', { pattern: 'a'.repeat(5_000) }),
        grep('long-glob', { pattern: 'a', path_pattern: '*'.repeat(5_000) }),
      ]);
      const { messages } = await runAttack(runtime, attacker);
      const error = (id: string) => {
        const result = toolResult(messages, id);
        expect(result.isError, result.content).toBe(true);
        return result.content;
      };
      expect(error('backreference')).toMatch(/grep_files failed \(INVALID_INPUT\).*backreference/);
      expect(error('lookahead')).toMatch(/grep_files failed \(INVALID_INPUT\).*lookahead/);
      expect(error('long')).toContain('grep_files failed (LIMIT_EXCEEDED)');
      expect(error('long-glob')).toContain('grep_files failed (LIMIT_EXCEEDED)');
    });

    it('matches a path_pattern of many ** segments in linear time', async () => {
      const { runtime, script, attacker } = await attackRuntime(await makeFactory());
      const files = await runtime.fileSystem(attacker);
      await files.writeFile(`/${'abcdefghij/'.repeat(30)}file.txt`, 'needle\n');
      script.set(attacker, [
        grep('stars', { pattern: 'needle', path_pattern: `${'**/'.repeat(100)}*.none` }),
        grep('stars-a', { pattern: 'needle', path_pattern: `/${'**a'.repeat(300)}b` }),
        grep('stars-hit', { pattern: 'needle', path_pattern: `${'**/'.repeat(100)}*.txt` }),
      ]);
      const { maxDelayMs, elapsedMs, messages } = await runAttack(runtime, attacker);
      expect(elapsedMs).toBeLessThan(MAX_TURN_MS);
      expect(maxDelayMs).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);
      expect(JSON.parse(toolResult(messages, 'stars').content)).toMatchObject({ count: 0 });
      expect(JSON.parse(toolResult(messages, 'stars-a').content)).toMatchObject({ count: 0 });
      expect(JSON.parse(toolResult(messages, 'stars-hit').content)).toMatchObject({ count: 1 });
    });

    it('refuses 10,000-character and 5,000-deep paths with INVALID_PATH, and the turn goes on', async () => {
      const { runtime, script, attacker } = await attackRuntime(await makeFactory());
      const long = `/${'a'.repeat(10_000)}`;
      const deep = `/${'d/'.repeat(5_000)}f.txt`;
      const call = (id: string, name: string, args: Record<string, unknown>) => ({
        id,
        name,
        arguments: args,
      });
      script.set(attacker, [
        call('delete-long', 'delete_file', { path: long, recursive: true }),
        call('write-long', 'write_file', { path: long, content: 'x' }),
        call('delete-deep', 'delete_file', { path: deep, recursive: true }),
        call('write-deep', 'write_file', { path: deep, content: 'x' }),
        call('read-deep', 'read_file', { path: deep }),
        call('list-deep', 'list_directory', { path: deep }),
      ]);
      const { messages } = await runAttack(runtime, attacker);
      for (const id of [
        'delete-long',
        'write-long',
        'delete-deep',
        'write-deep',
        'read-deep',
        'list-deep',
      ]) {
        const result = toolResult(messages, id);
        expect(result.isError, id).toBe(true);
        expect(result.content).toContain('(INVALID_PATH)');
        expect(result.content).not.toContain('call stack');
        expect(result.content.length).toBeLessThan(1_000);
      }
    });

    it("greps a large workspace in slices while another session's turn completes", async () => {
      const { runtime, script, attacker, harnessId } = await attackRuntime(await makeFactory());
      const files: SessionFileSystem = await runtime.fileSystem(attacker);
      // 2,000 files of 600 short lines: well over 100 ms of matching in one go on this machine.
      const body = `${'word '.repeat(7)}\n`.repeat(600);
      const writes: Promise<unknown>[] = [];
      for (let index = 0; index < 2_000; index++) {
        writes.push(files.writeFile(`/big/${index % 40}/file-${index}.txt`, body));
        if (writes.length >= 100) await Promise.all(writes.splice(0));
      }
      await Promise.all(writes);
      const bystander = (await runtime.createSession({ harnessId })).id;
      script.set(attacker, [
        grep('big', { pattern: '(\\w+\\s)+x' }),
        grep('big-hit', { pattern: 'word', path_pattern: '/big/7/*.txt' }),
      ]);
      let attackDoneAt = 0;
      let bystanderDoneAt = 0;
      let bystanderMs = 0;
      const { maxDelayMs, elapsedMs } = await withEventLoopProbe(async () => {
        const attack = runtime.runTextTurn(attacker, 'search everything').then((turn) => {
          attackDoneAt = performance.now();
          return turn;
        });
        // Let the attack reach its tool call, then start the other session's turn.
        while (!runtime.events(attacker).some((event) => event.type === 'tool.started')) {
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
        const started = performance.now();
        const other = await runtime.runTextTurn(bystander, 'hello');
        bystanderDoneAt = performance.now();
        bystanderMs = bystanderDoneAt - started;
        expect(other).toMatchObject({ success: true, response: 'done' });
        expect(await attack).toMatchObject({ success: true, response: 'done' });
      });
      expect(elapsedMs).toBeLessThan(MAX_TURN_MS * 3);
      expect(maxDelayMs).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);
      expect(bystanderDoneAt).toBeLessThan(attackDoneAt);
      expect(bystanderMs).toBeLessThan(2_000);
      const result = JSON.parse(toolResult(await runtime.messages(attacker), 'big').content);
      expect(result as GrepFilesResult).toMatchObject({ count: 0, truncated: false });
      const hits = JSON.parse(toolResult(await runtime.messages(attacker), 'big-hit').content);
      expect(hits as GrepFilesResult).toMatchObject({ count: 200, truncated: true });
    });

    it('says which limit left matches out when the workspace limits stop a grep', async () => {
      const factory = await makeFactory(
        // A workspace whose grep scans at most 2,000 bytes.
        { maxBytesScanned: 2_000 },
      );
      const { runtime, script, attacker } = await attackRuntime(factory);
      const files = await runtime.fileSystem(attacker);
      for (let index = 0; index < 5; index++) {
        await files.writeFile(`/f${index}.txt`, `hit\n${'x'.repeat(900)}\n`);
      }
      script.set(attacker, [grep('limited', { pattern: 'hit' })]);
      const { messages } = await runAttack(runtime, attacker);
      const result = JSON.parse(toolResult(messages, 'limited').content) as GrepFilesResult;
      expect(result).toMatchObject({
        count: 2,
        truncated: true,
        limits_reached: ['maxBytesScanned'],
      });
    });
  });
}

describeAttacksOn(
  'the in-memory workspace',
  async (grepLimits?: { maxBytesScanned: number }) =>
    new InMemorySessionFileSystemFactory(grepLimits ? { grepLimits } : {}),
);
describeAttacksOn('a real temp directory', async (grepLimits?: { maxBytesScanned: number }) => {
  const sessionsDirectory = await temporarySessionsDirectory('everruns-fs-attacks-');
  return new RealDiskSessionFileSystemFactory({
    sessionsDirectory,
    ...(grepLimits ? { grepLimits } : {}),
  });
});
describeAttacksOn(
  'an in-memory workspace that cannot load re2js (the tool brings the engine)',
  async (grepLimits?: { maxBytesScanned: number }) =>
    new InMemorySessionFileSystemFactory({
      ...(grepLimits ? { grepLimits } : {}),
      loadRegexEngine: () =>
        Promise.reject(
          Object.assign(new Error("Cannot find package 're2js'"), { code: 'ERR_MODULE_NOT_FOUND' }),
        ),
    }),
);
