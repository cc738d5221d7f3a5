// What the file tools' attack tests share: the bounds they assert, a probe of event-loop stalls,
// a runtime whose scripted model attacks, and temporary session directories removed afterwards.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Message, SessionFileSystemFactory, ToolResultPart } from '@everruns-ts/core';
import { LlmSimConfig, type LlmSimToolCall } from '@everruns-ts/driver-llmsim';
import { type InProcessRuntime, InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { afterAll } from 'vitest';
import { FILE_SYSTEM_CAPABILITY_ID, fileSystemCapability } from '../index.js';

/** Longest the event loop may stall because of one tool call; the stores aim for about 20 ms. */
export const MAX_EVENT_LOOP_DELAY_MS = 100;
/** A generous bound on a whole attack turn, far below what a backtracking engine would take. */
export const MAX_TURN_MS = 10_000;

const directories: string[] = [];
afterAll(async () => {
  await Promise.all(directories.map((path) => rm(path, { recursive: true, force: true })));
});

/** A fresh temporary directory for session workspaces, removed after the test file. */
export async function temporarySessionsDirectory(prefix: string): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), prefix));
  directories.push(directory);
  return directory;
}

/** The probe of event-loop stalls every attack suite uses. */
export { withEventLoopProbe } from '@everruns-ts/runtime-suites';

/**
 * A runtime whose scripted model makes, in each session, the calls `script` gives for it in the
 * first step of a turn and then answers "done" (a session without calls answers "done" at once).
 */
export async function attackRuntime(factory: SessionFileSystemFactory) {
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
  await warmUp(runtime, script, harnessId);
  return { runtime, script, attacker, harnessId };
}

/**
 * One ordinary turn with a file tool call in a session of its own, before any probe: the first
 * turn of a process compiles the runtime's and the tools' code (and their schemas) once, work that
 * measured up to ~100 ms of CPU when it fell inside the first attack's probe. The bounds are about
 * what a hostile call costs, not that one-time start.
 */
async function warmUp(
  runtime: InProcessRuntime,
  script: Map<string, LlmSimToolCall[]>,
  harnessId: string,
): Promise<void> {
  const session = (await runtime.createSession({ harnessId })).id;
  script.set(session, [
    { id: 'warm-write', name: 'write_file', arguments: { path: '/warm.txt', content: 'a\nb\n' } },
    { id: 'warm-read', name: 'read_file', arguments: { path: '/warm.txt', offset: 1 } },
    {
      id: 'warm-edit',
      name: 'edit_file',
      arguments: { path: '/warm.txt', old_text: 'a', new_text: 'c' },
    },
  ]);
  const result = await runtime.runTextTurn(session, 'warm up');
  script.delete(session);
  if (!result.success) throw new Error(`the warm-up turn failed: ${JSON.stringify(result.error)}`);
}

export function toolResult(
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
