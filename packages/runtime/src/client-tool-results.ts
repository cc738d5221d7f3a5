import {
  EverrunsError,
  formatZodError,
  lazySchema,
  type Message,
  messageToolCalls,
  storeMessageAndEmit,
  type ToolCall,
  toolCompletedRequest,
  truncateResult,
} from '@everruns-ts/core';
import { z } from 'zod';
import type { RuntimeHostAdapter } from './runtime-host-adapter.js';
import { type RuntimeTurnState, runtimeTurnStateSchema } from './turn-plan.js';

/** Schema of one {@link ClientToolResult}. */
export const clientToolResultSchema = lazySchema(() =>
  z.object({
    toolCallId: z.string().min(1, 'must not be empty'),
    content: z.string(),
    isError: z.boolean().optional(),
  }),
);
/** The result of one client-side tool call, as a host's client submits it. */
export type ClientToolResult = z.input<typeof clientToolResultSchema>;

/** Schema of a submission: at least one result, each call id once. */
export const clientToolResultsSchema = lazySchema(() =>
  z
    .array(clientToolResultSchema)
    .min(1, 'submit at least one result')
    .refine(
      (results) => new Set(results.map((result) => result.toolCallId)).size === results.length,
      {
        message: 'each toolCallId may appear once',
      },
    ),
);

/**
 * The reserved session-storage key prefix under which a turn paused for client-side tool results
 * keeps the state it resumes from (`<prefix><turnId>`).
 */
export const WAITING_TURN_KEY_PREFIX = 'everruns:runtime/waiting-turn/';

/** Persists the `resume` state of a turn that waits for client-side tool results. */
export async function rememberWaitingTurn(
  adapter: RuntimeHostAdapter,
  resume: RuntimeTurnState,
): Promise<void> {
  await adapter.backends.storage.setValue(
    resume.sessionId,
    `${WAITING_TURN_KEY_PREFIX}${resume.turnId}`,
    JSON.stringify(resume),
  );
}

/**
 * The `resume` state of a waiting turn, or `null` when the turn is not waiting (unknown, running
 * or finished). Throws `STATE_INVALID` when the stored state does not parse.
 */
export async function loadWaitingTurn(
  adapter: RuntimeHostAdapter,
  sessionId: string,
  turnId: string,
): Promise<RuntimeTurnState | null> {
  const raw = await adapter.backends.storage.getValue(
    sessionId,
    `${WAITING_TURN_KEY_PREFIX}${turnId}`,
  );
  if (raw === null) return null;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = undefined;
  }
  const parsed = runtimeTurnStateSchema.safeParse(value);
  if (!parsed.success) {
    throw new EverrunsError({
      code: 'STATE_INVALID',
      message: `The stored state of waiting turn ${turnId} does not parse`,
      details: { sessionId, turnId },
    });
  }
  return parsed.data;
}

/**
 * Rejects a new turn while another turn of the session waits for client-side tool results: throws
 * `TURN_WAITING_FOR_TOOL_RESULTS` (details `sessionId`, `turnId`, `pendingToolCallIds`), writing
 * nothing. The waiting turn's calls keep waiting until the client submits their results (results
 * with `isError: true` abandon them), so a stored tool call never goes without its result.
 * `turnId` is the new turn's id (a replayed input step of the waiting turn itself passes).
 * `waitingKeys` are the session storage keys under {@link WAITING_TURN_KEY_PREFIX} when the
 * caller already read them (`SessionSetupSnapshot.storageKeys`); listed here otherwise.
 */
export async function assertNoTurnWaitsForToolResults(
  adapter: RuntimeHostAdapter,
  sessionId: string,
  turnId: string,
  waitingKeys?: readonly string[],
): Promise<void> {
  const keys =
    waitingKeys ?? (await adapter.backends.storage.listKeys(sessionId, WAITING_TURN_KEY_PREFIX));
  for (const key of keys) {
    const waitingTurnId = key.slice(WAITING_TURN_KEY_PREFIX.length);
    if (waitingTurnId === turnId) continue;
    const resume = await loadWaitingTurn(adapter, sessionId, waitingTurnId);
    if (!resume) continue;
    const pending = await pendingClientToolCalls(adapter, resume);
    throw new EverrunsError({
      code: 'TURN_WAITING_FOR_TOOL_RESULTS',
      message: `Turn ${waitingTurnId} of session ${sessionId} waits for the results of client-side tool calls ${pending.map((call) => call.id).join(', ')}; submit them (isError: true abandons a call) before starting a new turn`,
      details: {
        sessionId,
        turnId: waitingTurnId,
        pendingToolCallIds: pending.map((call) => call.id),
      },
    });
  }
}

/** Forgets the `resume` state of a turn that continues (or was abandoned). */
export async function forgetWaitingTurn(
  adapter: RuntimeHostAdapter,
  sessionId: string,
  turnId: string,
): Promise<void> {
  await adapter.backends.storage.deleteValue(sessionId, `${WAITING_TURN_KEY_PREFIX}${turnId}`);
}

/**
 * The tool calls of a waiting turn that still lack a result: the calls of the model answer the
 * turn paused after (iteration `resume.iteration - 1`) without a stored `tool_result`.
 */
export async function pendingClientToolCalls(
  adapter: RuntimeHostAdapter,
  resume: RuntimeTurnState,
): Promise<ToolCall[]> {
  const { messages } = adapter.backends;
  const answer = await messages.getByIdempotencyKey(
    resume.sessionId,
    `${resume.turnId}/reason/${resume.iteration - 1}`,
  );
  if (!answer) return [];
  const pending: ToolCall[] = [];
  for (const call of messageToolCalls(answer)) {
    const stored = await messages.getByIdempotencyKey(
      resume.sessionId,
      `${resume.turnId}/tool/${call.id}`,
    );
    if (!stored) pending.push(call);
  }
  return pending;
}

/** What {@link storeClientToolResults} did. */
export interface StoredClientToolResults {
  /** The stored `tool_result` messages, in submission order. */
  stored: Message[];
  /** Calls that still lack a result (the turn keeps waiting while any remain). */
  remaining: ToolCall[];
}

/**
 * Validates and stores submitted results of client-side tool calls of a waiting turn: one
 * `tool_result` message per call, idempotent by the act step's key `<turnId>/tool/<callId>`, with
 * `tool.completed` events. Throws `INVALID_INPUT` (writing nothing) when the submission does not
 * parse or names a call that is not pending.
 */
export async function storeClientToolResults(
  adapter: RuntimeHostAdapter,
  resume: RuntimeTurnState,
  results: unknown,
): Promise<StoredClientToolResults> {
  const parsed = clientToolResultsSchema.safeParse(results);
  if (!parsed.success) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `Invalid tool results: ${formatZodError(parsed.error)}`,
    });
  }
  const { sessionId, turnId } = resume;
  const pending = await pendingClientToolCalls(adapter, resume);
  const byId = new Map(pending.map((call) => [call.id, call]));
  const unknown = parsed.data.filter((result) => !byId.has(result.toolCallId));
  if (unknown.length > 0) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `Turn ${turnId} has no pending tool call ${unknown.map((result) => result.toolCallId).join(', ')}`,
      details: {
        sessionId,
        turnId,
        toolCallIds: unknown.map((result) => result.toolCallId),
        pending: pending.map((call) => call.id),
      },
    });
  }
  const iteration = resume.iteration - 1;
  const stored: Message[] = [];
  for (const result of parsed.data) {
    const call = byId.get(result.toolCallId) as ToolCall;
    const isError = result.isError ?? false;
    const { message } = await storeMessageAndEmit(
      adapter.backends,
      sessionId,
      {
        role: 'tool_result',
        turnId,
        idempotencyKey: `${turnId}/tool/${call.id}`,
        content: [
          {
            type: 'tool_result',
            toolCallId: call.id,
            content: truncateResult(result.content, adapter.limits.maxToolResultChars),
            isError,
          },
        ],
        metadata: { toolName: call.name, iteration, clientSide: true },
      },
      (written) => [
        toolCompletedRequest({
          sessionId,
          turnId,
          toolCallId: call.id,
          toolName: call.name,
          isError,
          durationMs: 0,
          messageId: written.id,
          clientSide: true,
        }),
      ],
    );
    stored.push(message);
    byId.delete(call.id);
  }
  return { stored, remaining: [...byId.values()] };
}
