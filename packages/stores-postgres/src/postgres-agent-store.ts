import type { Agent, RuntimeAgentStore } from '@everruns-ts/core';
import { DocumentTable } from './document-table.js';
import { openMcpSecrets, sealMcpSecrets } from './mcp-secrets.js';
import { requireString, type StoreContext } from './store-context.js';

/**
 * Agent definitions in the `agents` table, one JSON document per agent (the env and header values
 * of its MCP servers sealed with the store's secret key).
 */
export class PostgresAgentStore implements RuntimeAgentStore {
  readonly #agents: DocumentTable<Agent>;

  constructor(context: StoreContext) {
    this.#agents = new DocumentTable<Agent>(context, 'agents', 'agent', {
      toStored: (agent) => sealMcpSecrets(context, 'agent', agent),
      fromStored: (agent) => openMcpSecrets(context, 'agent', agent),
    });
  }

  /** The agent, or `null`. */
  async getAgent(agentId: string): Promise<Agent | null> {
    requireString(agentId, 'agentId');
    return this.#agents.get(agentId, 'getAgent');
  }

  /** Stores a new agent. Throws `DUPLICATE_ID` when the id exists. */
  async addAgent(agent: Agent): Promise<void> {
    requireString(agent?.id, 'agent.id');
    await this.#agents.insert(agent, 'addAgent');
  }

  /** Stores the agent, replacing one with the same id. */
  async upsertAgent(agent: Agent): Promise<void> {
    requireString(agent?.id, 'agent.id');
    await this.#agents.upsert(agent, 'upsertAgent');
  }

  /** Every agent, sorted by id. */
  async listAgents(): Promise<Agent[]> {
    return this.#agents.list('listAgents');
  }
}
