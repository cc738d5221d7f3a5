import { createHash } from 'node:crypto';
import type { InputMessage, SessionFileSystemFactory, TurnSetup } from '@everruns-ts/core';
import {
  InProcessSubagents,
  type RuntimeHostAdapter,
  type TurnResult,
} from '@everruns-ts/runtime/host';
import type { TurnSubmission } from './turn-submission.js';

/**
 * The id of the one turn a subagent's child session runs for the tool call that created it,
 * derived from the child's id: every attempt of the parent's call (a re-run after a crash, on any
 * worker) names the same turn, so it finds the turn the first attempt submitted instead of
 * submitting another.
 */
export function subagentTurnId(childSessionId: string): string {
  const hash = createHash('sha256').update(`${childSessionId}\nsubagent-turn`).digest('hex');
  return `turn_${hash.slice(0, 32)}`;
}

/**
 * Lends the calling step's worker slot while it waits: starts one more step loop in this process
 * and resolves with the function that stops it again.
 */
export type LendWorkerSlot = () => Promise<() => Promise<void>>;

/** What {@link stepSubagents} needs of the host. */
export interface StepSubagentsOptions {
  /** The step's adapter (fenced backends, the step's setup cache). */
  adapter: RuntimeHostAdapter & { setupCache: Map<string, TurnSetup> };
  /** Submits and awaits turns. */
  submission: TurnSubmission;
  /** Keeps this process's capacity while the parent's act job waits for its child. */
  lendSlot: LendWorkerSlot;
}

/**
 * The `SubagentHost` of one step of the pg-boss host. The child session is created and linked as
 * in-process (`InProcessSubagents` of `@everruns-ts/runtime/host`: once per parent turn and tool
 * call, kept under `subagentLinkKey` in the parent's storage); its turn is submitted through the
 * host like any turn, with the id {@link subagentTurnId}, so its steps are jobs any worker runs.
 * The parent's act job waits for that turn to end (the host's turn notifications, polled at least
 * once a second; the tool call's signal stops the wait, not the child's turn). While it waits, the
 * job lends its worker slot: one more step loop runs in this process until the wait ends, so a
 * worker with `concurrency: 1` (or a chain of nested subagents) cannot deadlock on its own
 * children. A re-run of the parent's call after a crash finds the same child and the same child
 * turn and waits for it again: the child resumes where its steps stood, no second child is made.
 */
export function stepSubagents(options: StepSubagentsOptions): InProcessSubagents {
  const { adapter, submission, lendSlot } = options;
  return new InProcessSubagents({
    backends: adapter.backends,
    fileSystems: adapter.fileSystems as SessionFileSystemFactory,
    setupCache: adapter.setupCache,
    runTurn: (sessionId, input, signal) =>
      runSubagentTurn(submission, lendSlot, sessionId, input, signal),
  });
}

/**
 * Submits the child's turn unless an earlier attempt did (then attaches to it), lends the worker
 * slot and waits for the turn's result. Rejects with `ABORTED` when `signal` fires, with the
 * error the child's turn failed with when it failed.
 */
async function runSubagentTurn(
  submission: TurnSubmission,
  lendSlot: LendWorkerSlot,
  sessionId: string,
  input: InputMessage,
  signal: AbortSignal,
): Promise<TurnResult> {
  const turnId = subagentTurnId(sessionId);
  // Looked up first: submitting a turn id that exists would refuse it only after the lease step.
  if (!(await submission.status(turnId))) {
    try {
      await submission.submitTurn(sessionId, input, { turnId });
    } catch (error) {
      // Another attempt of the same call (a stale one still running) submitted it meanwhile.
      if (!(await submission.status(turnId))) throw error;
    }
  }
  const release = await lendSlot();
  try {
    return await submission.handle(turnId, sessionId).result({ signal });
  } finally {
    await release();
  }
}
