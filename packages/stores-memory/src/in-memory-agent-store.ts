import { type Agent, everrunsError, type RuntimeAgentStore } from '@everruns-ts/core';
import { compareStrings, freezeCopy } from './freeze-copy.js';

/** Agent definitions kept in a `Map` (made on the first write), as frozen copies. */
export class InMemoryAgentStore implements RuntimeAgentStore {
  #agents: Map<string, Agent> | undefined;

  /** The agent, or `null`. */
  async getAgent(agentId: string): Promise<Agent | null> {
    return this.#agents?.get(agentId) ?? null;
  }

  /** Stores a new agent. Throws `DUPLICATE_ID` when the id exists. */
  async addAgent(agent: Agent): Promise<void> {
    if (this.#agents?.has(agent.id)) {
      throw everrunsError('DUPLICATE_ID', `Agent ${agent.id} already exists`, {
        details: { agentId: agent.id },
      });
    }
    this.#map().set(agent.id, freezeCopy(agent));
  }

  /** Stores the agent, replacing one with the same id. */
  async upsertAgent(agent: Agent): Promise<void> {
    this.#map().set(agent.id, freezeCopy(agent));
  }

  /** The agent map, made on first use. */
  #map(): Map<string, Agent> {
    this.#agents ??= new Map();
    return this.#agents;
  }

  /** Every agent, sorted by id. */
  async listAgents(): Promise<Agent[]> {
    return [...(this.#agents?.values() ?? [])].sort((left, right) =>
      compareStrings(left.id, right.id),
    );
  }
}
