import type { LlmCallOptions, LlmDriver, LlmRequest, LlmStreamEvent } from '@everruns-ts/core';
import type { LlmSimDriver } from '@everruns-ts/runtime';

/**
 * The simulated model, streamed in lockstep with the test: each piece of `stream()` waits until
 * the test lets one more through, so the page can be checked between any two pieces.
 */
export class SteppedDriver implements LlmDriver {
  readonly providerType: string;
  /** The pieces let through so far, in order (finish events included). */
  readonly yielded: LlmStreamEvent[] = [];
  readonly #sim: LlmSimDriver;
  #permits = 0;
  #unlimited = false;
  #wake: (() => void) | undefined;

  constructor(sim: LlmSimDriver) {
    this.#sim = sim;
    this.providerType = sim.providerType;
  }

  generate(request: LlmRequest, options?: LlmCallOptions) {
    return this.#sim.generate(request, options);
  }

  async *stream(request: LlmRequest, options?: LlmCallOptions): AsyncIterable<LlmStreamEvent> {
    for await (const piece of this.#sim.stream(request, options)) {
      // Every piece waits for its permit, the finish too: otherwise the finish would follow the
      // last delta at once and the page could move on before the test saw that delta.
      await this.#permit();
      this.yielded.push(piece);
      yield piece;
    }
  }

  /** Lets one more piece through. */
  step(): void {
    this.#permits += 1;
    this.#wake?.();
  }

  /** Lets everything through from now on. */
  releaseAll(): void {
    this.#unlimited = true;
    this.#wake?.();
  }

  async #permit(): Promise<void> {
    while (!this.#unlimited && this.#permits === 0) {
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
    if (!this.#unlimited) this.#permits -= 1;
  }
}
