// Helpers of this package's tests (not built, not published).
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import {
  defineCapability,
  defineTool,
  type ErrorCode,
  EverrunsError,
  InputMessage,
  newId,
} from '@everruns-ts/core';
import { LlmSimConfig } from '@everruns-ts/driver-llmsim';
import { expect } from 'vitest';
import { z } from 'zod';
import {
  executeInputActivity,
  executeReasonActivity,
  initialTurnState,
  planNextHostTurn,
} from './host-entry.js';
import { type InProcessRuntime, InProcessRuntimeBuilder, inMemoryBackends } from './index.js';

/** Awaits a rejection with an `EverrunsError` of `code` and returns it. */
export async function expectCode(
  promise: Promise<unknown>,
  code: ErrorCode,
): Promise<EverrunsError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (!EverrunsError.isInstance(error))
    throw error ?? new Error(`expected ${code}, nothing thrown`);
  expect(error.code).toBe(code);
  return error;
}

/** Every entry under `directory`, links not followed. */
export function tree(directory: string, prefix = ''): string[] {
  const entries: string[] = [];
  for (const name of readdirSync(directory).sort()) {
    const full = join(directory, name);
    const stat = lstatSync(full);
    if (stat.isSymbolicLink()) entries.push(`${prefix}${name} -> ${readlinkSync(full)}`);
    else if (stat.isDirectory()) {
      entries.push(`${prefix}${name}/`);
      entries.push(...tree(full, `${prefix}${name}/`));
    } else entries.push(`${prefix}${name}: ${readFileSync(full, 'utf8')}`);
  }
  return entries;
}

/**
 * A runtime on in-memory stores with one session whose model answers the user with two calls,
 * `add(2, 2)` (idempotent: may run twice after a crash) and `multiply(3, 3)` (may not), then "done".
 * `runs` lists the tools that ran, `lookups` every message looked up by idempotency key.
 */
export async function computeRuntime() {
  const runs: string[] = [];
  const tool = (name: string, idempotent: boolean) =>
    defineTool({
      name,
      description: `${name} two numbers`,
      inputSchema: z.object({ a: z.number(), b: z.number() }),
      idempotent,
      execute: ({ a, b }) => {
        runs.push(name);
        return name === 'add' ? a + b : a * b;
      },
    });
  const backends = inMemoryBackends();
  const lookups: string[] = [];
  const getByIdempotencyKey = backends.messages.getByIdempotencyKey.bind(backends.messages);
  backends.messages.getByIdempotencyKey = (sessionId: string, key: string) => {
    lookups.push(key);
    return getByIdempotencyKey(sessionId, key);
  };
  const runtime = await new InProcessRuntimeBuilder()
    .backends(backends)
    .capability(
      defineCapability({
        id: 'calc',
        name: 'Calc',
        description: 'Numbers',
        tools: [tool('add', true), tool('multiply', false)],
      }),
    )
    .llmSim(
      LlmSimConfig.fromFunction((request) =>
        request.messages.at(-1)?.role === 'user'
          ? {
              toolCalls: [
                { name: 'add', arguments: { a: 2, b: 2 } },
                { name: 'multiply', arguments: { a: 3, b: 3 } },
              ],
            }
          : 'done',
      ),
    )
    .singleSession((s) => s.harness('h', 'You compute.').withCapability('calc'))
    .build();
  return { runtime, sessionId: runtime.defaultSessionId() as string, runs, lookups };
}

/**
 * A new turn's input step and first reason step on `runtime`'s host adapter, as a host runs them
 * (the model of {@link computeRuntime} answers with its two calls): the reason step's state, its
 * answer and the plan after it.
 */
export async function firstAnswer(runtime: InProcessRuntime, sessionId: string) {
  const adapter = runtime.hostAdapter;
  const turnId = newId('turn');
  const state = initialTurnState({ sessionId, turnId, maxIterations: 5 });
  const input = await executeInputActivity(adapter, {
    sessionId,
    turnId,
    input: InputMessage.user('compute'),
  });
  const reasonState = planNextHostTurn('input', state, input).state;
  const answer = await executeReasonActivity(adapter, reasonState);
  return { reasonState, answer, plan: planNextHostTurn('reason', reasonState, answer) };
}
