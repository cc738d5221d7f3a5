// What both turn-integrity suites assert after a turn, and how they name a backend under test.
import {
  EverrunsError,
  type Message,
  type RuntimeBackends,
  type RuntimeEvent,
} from '@everruns-ts/core';
import type { LlmSimConfig } from '@everruns-ts/runtime';
import { expect } from 'vitest';

/** The function form of a simulated model (`LlmSimConfig.fromFunction`). */
export type LlmSimFunction = Parameters<typeof LlmSimConfig.fromFunction>[0];

/** A backend under test and how to drop it. */
export interface BackendsUnderTest {
  backends: RuntimeBackends;
  destroy?(): Promise<void>;
}

export async function expectAnyCode(promise: Promise<unknown>): Promise<EverrunsError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (!EverrunsError.isInstance(error)) throw error ?? new Error('expected a typed error');
  return error;
}

export async function expectCode(promise: Promise<unknown>, code: string): Promise<EverrunsError> {
  const error = await expectAnyCode(promise);
  expect(error.code, error.message).toBe(code);
  return error;
}

export async function waitUntil(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** The last turn ended with `end` then `session.idled`, and the session is idle. */
export async function expectEndedIdle(
  runtime: {
    events(sessionId?: string): RuntimeEvent[];
    getSession(sessionId: string): Promise<{ status: string } | null>;
  },
  sessionId: string,
  end: 'turn.failed' | 'turn.completed',
): Promise<void> {
  const types = runtime.events(sessionId).map((event) => event.type);
  const started = types.lastIndexOf('turn.started');
  const after = types
    .slice(started)
    .filter((type) => type.startsWith('turn.') || type === 'session.idled');
  expect(after).toEqual(['turn.started', end, 'session.idled']);
  expect((await runtime.getSession(sessionId))?.status).toBe('idle');
}

export function callIds(messages: readonly Message[]): string[] {
  return messages.flatMap((message) =>
    message.content.flatMap((part) => (part.type === 'tool_call' ? [part.id] : [])),
  );
}

export function resultOf(messages: readonly Message[], toolCallId: string) {
  for (const message of messages) {
    for (const part of message.content) {
      if (part.type === 'tool_result' && part.toolCallId === toolCallId) return part;
    }
  }
  return undefined;
}

/** Stored history: every tool call has exactly one result and every result answers a call. */
export function expectEachCallAnsweredOnce(messages: readonly Message[]): void {
  const calls = callIds(messages);
  const results = messages.flatMap((message) =>
    message.content.flatMap((part) => (part.type === 'tool_result' ? [part.toolCallId] : [])),
  );
  expect([...results].sort()).toEqual([...calls].sort());
  expect(new Set(calls).size).toBe(calls.length);
}

/** What OpenAI-compatible servers accept: results right after their calls, ids unique. */
export function expectWellFormed(messages: readonly Message[]): void {
  const seen = new Set<string>();
  let pending = new Set<string>();
  for (const message of messages) {
    if (message.role === 'tool_result') {
      for (const part of message.content) {
        expect(part.type).toBe('tool_result');
        if (part.type === 'tool_result') expect(pending.delete(part.toolCallId)).toBe(true);
      }
      continue;
    }
    expect([...pending]).toEqual([]);
    pending = new Set();
    for (const part of message.content) {
      if (part.type !== 'tool_call') continue;
      expect(seen.has(part.id)).toBe(false);
      seen.add(part.id);
      pending.add(part.id);
    }
  }
  expect([...pending]).toEqual([]);
}
