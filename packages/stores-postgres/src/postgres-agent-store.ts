import { type Agent, everrunsError, type RuntimeAgentStore } from '@everruns-ts/core';
import { violatedConstraint } from './postgres-errors.js';
import {
  checkSize,
  compareStrings,
  parseStored,
  requireString,
  type StoreContext,
  stringifyForStore,
} from './store-context.js';
import { encodeText, textDigest } from './text-codec.js';

/** Agent definitions in the `agents` table, one JSON document per agent. */
export class PostgresAgentStore implements RuntimeAgentStore {
  readonly #context: StoreContext;

  constructor(context: StoreContext) {
    this.#context = context;
  }

  /** The agent, or `null`. */
  async getAgent(agentId: string): Promise<Agent | null> {
    requireString(agentId, 'agentId');
    const data = await this.#data(agentId);
    return data === null ? null : parseStored<Agent>(data, 'agent');
  }

  /** Stores a new agent. Throws `DUPLICATE_ID` when the id exists. */
  async addAgent(agent: Agent): Promise<void> {
    requireString(agent?.id, 'agent.id');
    const data = stringifyForStore(agent, 'agent');
    checkSize(this.#context, data, `Agent ${agent.id}`);
    const { db } = this.#context;
    await db.run('addAgent', async (client, attempt) => {
      try {
        await client.query(
          `INSERT INTO ${db.table('agents')} (id_hash, id, data) VALUES ($1, $2, $3)`,
          [textDigest(agent.id), encodeText(agent.id), data],
        );
      } catch (error) {
        if (violatedConstraint(error) === undefined) throw error;
        if (attempt.afterConnectionLoss && (await this.#data(agent.id)) === data) return;
        throw everrunsError('DUPLICATE_ID', `Agent ${agent.id} already exists`, {
          details: { agentId: agent.id },
        });
      }
    });
  }

  /** Every agent, sorted by id. */
  async listAgents(): Promise<Agent[]> {
    const { db } = this.#context;
    const result = await db.run('listAgents', (client) =>
      client.query<{ data: string }>(`SELECT data FROM ${db.table('agents')}`),
    );
    return result.rows
      .map((row) => parseStored<Agent>(row.data, 'agent'))
      .sort((left, right) => compareStrings(left.id, right.id));
  }

  async #data(agentId: string): Promise<string | null> {
    const { db } = this.#context;
    const result = await db.run('getAgent', (client) =>
      client.query<{ data: string }>(`SELECT data FROM ${db.table('agents')} WHERE id_hash = $1`, [
        textDigest(agentId),
      ]),
    );
    return result.rows[0]?.data ?? null;
  }
}
