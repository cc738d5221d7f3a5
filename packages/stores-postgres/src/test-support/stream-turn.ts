import type { RuntimeEvent } from '@everruns-ts/core';

/** What `stream-turn-worker.ts` prints when done. */
export interface StreamTurnReport {
  /** Every event of the session the worker's own bus delivered, in order. */
  events: RuntimeEvent[];
  /** The turn's result. */
  result: unknown;
  /** How many stream parts the worker read. */
  parts: number;
}

/** The final answer's pieces: the middle one alone is larger than a NOTIFY payload. */
export const FINAL_CHUNKS = ['The sum ', 'é😀 long '.repeat(1200), ' is 4.'];
