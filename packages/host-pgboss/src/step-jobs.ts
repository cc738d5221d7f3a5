import { createHash } from 'node:crypto';
import { type RuntimeTurnStep, turnStepKey } from '@everruns-ts/runtime/host';

/** The data of a job of the step queue. */
export interface StepJobData {
  /** A `RuntimeTurnStep`, parsed when the job runs. */
  step: unknown;
  /** The turn's generation the job belongs to (see `resumeTurn`). */
  generation: number;
  /**
   * For an act step: the calls whose `tool.started` the reason step wrote with its answer (its
   * outcome's `startedCalls`), so the act step does not start them again.
   */
  startedCalls?: string[];
}

/** The data of a job of the dead-letter queue: the step job's data as it was. */
export interface DeadJobData {
  step?: unknown;
  generation?: unknown;
}

const QUEUE_NAME = /^[A-Za-z0-9_.-]{1,100}$/;

/** True when `queue` is a step-queue name the host accepts. */
export function isValidQueueName(queue: string): boolean {
  return QUEUE_NAME.test(queue);
}

/** The dead-letter queue of a step queue. */
export function deadLetterQueueOf(queue: string): string {
  return `${queue}-dead`;
}

/**
 * The job id of the job that delivers a turn's ending recorded under the fencing token `fence`
 * (when the ending was decided outside a step job, as after every retry of a step failed).
 */
export function endingJobId(queue: string, turnId: string, fence: number): string {
  return uuidOf(`${queue}\n${turnId}\nending\n${fence}`);
}

/**
 * The job id of a step: a UUID derived from the queue, the step (`turnId/activity/iteration`) and
 * the generation, so enqueueing the same step twice inserts one job.
 */
export function stepJobId(queue: string, step: RuntimeTurnStep, generation: number): string {
  return uuidOf(`${queue}\n${turnStepKey(step)}\n${generation}`);
}

/** A UUID (version 8) derived from `text`: the same text gives the same job id. */
export function uuidOf(text: string): string {
  const hex = createHash('sha256').update(text).digest('hex').slice(0, 32).split('');
  hex[12] = '8';
  hex[16] = ((Number.parseInt(hex[16] as string, 16) & 0x3) | 0x8).toString(16);
  const value = hex.join('');
  return `${value.slice(0, 8)}-${value.slice(8, 12)}-${value.slice(12, 16)}-${value.slice(16, 20)}-${value.slice(20)}`;
}
