import type { EverrunsLogger } from '@everruns-ts/core';
import type { RuntimeHostAdapter } from '@everruns-ts/runtime/host';
import { configurationError } from './host-errors.js';
import type { StepQueue } from './step-queue.js';
import type { TurnNotifications } from './turn-notifications.js';
import type { TurnRecords } from './turn-records.js';

/** The parts of a running host that its submission, step worker and client-tool parts share. */
export interface HostContext {
  /** The adapter steps run with (stores, registries, journal, limits). */
  readonly adapter: RuntimeHostAdapter;
  /** The host's `turns` table. */
  readonly turns: TurnRecords;
  /** Enqueues steps and wakes workers. */
  readonly steps: StepQueue;
  /** The `LISTEN` connection and the handles waiting on it. */
  readonly notifications: TurnNotifications;
  /** How long a turn's session lease lasts without renewal, in milliseconds. */
  readonly turnLeaseMs: number;
  /**
   * How long after its start a step job goes on to run its turn's next step itself, in
   * milliseconds (0: every step is a job of its own).
   */
  readonly continueStepsMs: number;
  /**
   * How long, in milliseconds, a job running its turn's next steps itself lets pass before it
   * moves the turn's checkpoint again (0: before every next step).
   */
  readonly checkpointIntervalMs: number;
  /** Receives errors that have no caller to go to. */
  readonly onError: (error: unknown) => void;
  /** Where retries, fenced-off steps and lease take-overs are reported (silent by default). */
  readonly logger: EverrunsLogger;
  /** True once `stop()` began. */
  readonly stopped: boolean;
}

/** Throws `CONFIGURATION` when the host was stopped. */
export function assertRunning(context: HostContext): void {
  if (context.stopped) throw configurationError('The host was stopped');
}
