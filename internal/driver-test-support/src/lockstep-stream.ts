import type { LlmStreamEvent } from '@everruns-ts/core';
import type { Reply } from './fake-provider-server.js';

// Proof that a driver hands deltas over as they arrive, without timing anything: the source of
// the stream (a fake server, a stream the test controls) writes its next stage only once the test
// has received the delta of the stage before. A driver that waited for more of the body would
// never deliver that delta, so the source would never go on: the read fails by name.

/** An event stream a fake server writes in stages, each next stage only when released. */
export interface LockstepSse {
  /** The reply to script into {@link startFakeServer}. */
  reply: Reply;
  /** Lets the server write its next stage (and end the response after the last one). */
  release(): void;
  /** How many stages the server has written so far. */
  readonly written: number;
}

/**
 * An event stream written in `stages`: the first at once, each later one only after a
 * {@link LockstepSse.release}; the response ends after the last stage. A stage's pieces may cut
 * an event anywhere (even inside a UTF-8 character).
 */
export function lockstepSse(stages: Array<Array<string | Buffer>>): LockstepSse {
  let written = 0;
  let released = 0;
  let wake: (() => void) | undefined;
  const reply: Reply = async (response) => {
    response.socket?.setNoDelay(true);
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    response.flushHeaders();
    for (const [index, stage] of stages.entries()) {
      while (index > released) await new Promise<void>((resolve) => (wake = resolve));
      if (response.destroyed) return;
      for (const piece of stage) response.write(piece);
      written = index + 1;
    }
    response.end();
  };
  return {
    reply,
    release() {
      released += 1;
      wake?.();
    },
    get written() {
      return written;
    },
  };
}

/** A delta {@link readInLockstep} waits for before it lets the source go on. */
export interface LockstepStep {
  /** What the delta is, for the failure message. */
  label: string;
  /** Whether `event` is the awaited delta. */
  matches(event: LlmStreamEvent): boolean;
}

/**
 * Reads `stream` step by step: for each of `steps`, reads events until one matches, then calls
 * `release()` so the source writes what comes next; after the last step, reads to the end.
 * Returns every event read. When a step's delta has not come `patienceMs` after the source wrote
 * it (10 s by default: a hang detector, not a speed check), fails with an error naming the step:
 * the driver is holding back what it already received. The stream ending first fails too.
 */
export async function readInLockstep(
  stream: AsyncIterable<LlmStreamEvent>,
  steps: readonly LockstepStep[],
  release: () => void,
  options: { patienceMs?: number } = {},
): Promise<LlmStreamEvent[]> {
  const patienceMs = options.patienceMs ?? 10_000;
  const iterator = stream[Symbol.asyncIterator]();
  const events: LlmStreamEvent[] = [];
  for (const step of steps) {
    while (true) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stalled = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => {
          reject(
            new Error(
              `no ${step.label} from the driver ${patienceMs} ms after the source sent it, while the source held back the rest: the driver buffers instead of streaming`,
            ),
          );
        }, patienceMs);
      });
      let next: IteratorResult<LlmStreamEvent>;
      try {
        next = await Promise.race([iterator.next(), stalled]);
      } catch (error) {
        // Not awaited: a stuck driver may never settle its cleanup.
        void iterator.return?.()?.catch(() => undefined);
        throw error;
      } finally {
        clearTimeout(timer);
      }
      if (next.done) throw new Error(`the stream ended before ${step.label}`);
      events.push(next.value);
      if (step.matches(next.value)) break;
    }
    release();
  }
  while (true) {
    const next = await iterator.next();
    if (next.done) return events;
    events.push(next.value);
  }
}
