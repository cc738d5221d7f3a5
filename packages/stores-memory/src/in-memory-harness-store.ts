import { everrunsError, type Harness, type RuntimeHarnessStore } from '@everruns-ts/core';
import { compareStrings, freezeCopy } from './freeze-copy.js';

/**
 * Harness definitions kept in a `Map`. Harnesses are stored as frozen copies: the objects it
 * returns cannot be changed, and changing the object given to `addHarness` afterwards changes
 * nothing stored.
 */
export class InMemoryHarnessStore implements RuntimeHarnessStore {
  readonly #harnesses = new Map<string, Harness>();

  /** The harness, or `null`. */
  async getHarness(harnessId: string): Promise<Harness | null> {
    return this.#harnesses.get(harnessId) ?? null;
  }

  /**
   * The harness and its ancestors, root first. Throws `HARNESS_NOT_FOUND` for a missing harness
   * or parent and `INVALID_INPUT` when the parents form a cycle.
   */
  async getHarnessChain(harnessId: string): Promise<Harness[]> {
    const chain: Harness[] = [];
    const seen = new Set<string>();
    let currentId: string | undefined = harnessId;
    while (currentId !== undefined) {
      if (seen.has(currentId)) {
        throw everrunsError('INVALID_INPUT', `Harness ${currentId} is its own ancestor`, {
          details: { harnessId, cycleAt: currentId },
        });
      }
      seen.add(currentId);
      const harness = this.#harnesses.get(currentId);
      if (harness === undefined) {
        throw everrunsError(
          'HARNESS_NOT_FOUND',
          currentId === harnessId
            ? `Harness ${harnessId} not found`
            : `Parent harness ${currentId} of ${harnessId} not found`,
          { details: { harnessId: currentId } },
        );
      }
      chain.push(harness);
      currentId = harness.parentHarnessId;
    }
    return chain.reverse();
  }

  /** Stores a new harness. Throws `DUPLICATE_ID` when the id exists. */
  async addHarness(harness: Harness): Promise<void> {
    if (this.#harnesses.has(harness.id)) {
      throw everrunsError('DUPLICATE_ID', `Harness ${harness.id} already exists`, {
        details: { harnessId: harness.id },
      });
    }
    this.#harnesses.set(harness.id, freezeCopy(harness));
  }

  /** Stores the harness, replacing one with the same id. */
  async upsertHarness(harness: Harness): Promise<void> {
    this.#harnesses.set(harness.id, freezeCopy(harness));
  }

  /** Every harness, sorted by id. */
  async listHarnesses(): Promise<Harness[]> {
    return [...this.#harnesses.values()].sort((left, right) => compareStrings(left.id, right.id));
  }
}
