import { randomUUID } from 'node:crypto';
import type { SessionFileSystemFactory } from '@everruns-ts/core';
import type { LlmSimToolCall } from '@everruns-ts/driver-llmsim';
import { RealDiskSessionFileSystemFactory } from '@everruns-ts/fs-realdisk';
import type { InProcessRuntime } from '@everruns-ts/runtime';
import { InMemorySessionFileSystemFactory } from '@everruns-ts/stores-memory';
import { describe, expect, it } from 'vitest';

import {
  attackRuntime,
  MAX_EVENT_LOOP_DELAY_MS,
  MAX_TURN_MS,
  temporarySessionsDirectory,
  toolResult,
  withEventLoopProbe,
} from './test-support/attack-runtime.js';

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
      // The scan itself yields every 20 ms; what is left is the collector freeing the 10 MB text
      // and its five million line offsets at once, measured at 105-111 ms on the 2-core CI
      // machine when idle. Half the bound again covers that pause; a tool that held the loop for
      // the whole scan (seconds) still fails. Bringing the pause down belongs to issue 21.
      expect(maxDelayMs).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS * 1.5);
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
  const sessionsDirectory = await temporarySessionsDirectory('everruns-file-tools-attacks-');
  return new RealDiskSessionFileSystemFactory({ sessionsDirectory });
});
