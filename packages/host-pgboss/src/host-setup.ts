import {
  createPostgresPool,
  isValidSchemaName,
  openDedicatedConnection,
  sendStatement,
} from '@everruns-ts/stores-postgres';
import type pg from 'pg';
import PgBoss from 'pg-boss';
import { configurationError } from './host-errors.js';
import { createHostTables } from './host-tables.js';
import { DEFAULT_STEP_TIMEOUT_SECONDS, type PgBossHostOptions } from './pg-boss-host-options.js';
import { scheduleQueueOf } from './pg-boss-schedules.js';
import { deadLetterQueueOf, isValidQueueName } from './step-jobs.js';

/** The names a host works with, defaults applied. */
export interface HostNames {
  queue: string;
  schema: string;
  bossSchema: string;
}

/**
 * The queue and schema names of `options`, defaults applied. Throws `CONFIGURATION` for a bad
 * name, and unless exactly one of `connectionString` and `pool` is given.
 */
export function resolveHostNames(options: PgBossHostOptions): HostNames {
  const queue = options.queue ?? 'everruns-turn-steps';
  const schema = options.schema ?? 'everruns_host';
  const bossSchema = options.bossSchema ?? 'pgboss';
  if (!isValidQueueName(queue)) {
    throw configurationError(`Invalid queue name ${JSON.stringify(queue)}`, { queue });
  }
  for (const name of [schema, bossSchema]) {
    if (!isValidSchemaName(name)) {
      throw configurationError(`Invalid PostgreSQL schema name ${JSON.stringify(name)}`, {
        schema: name,
      });
    }
  }
  if ((options.pool === undefined) === (options.connectionString === undefined)) {
    throw configurationError('Give PgBossHost.start either connectionString or pool');
  }
  return { queue, schema, bossSchema };
}

/** The caller's pool, or a pool of the host's own (then `ownsPool`) from `connectionString`. */
export function hostPool(options: PgBossHostOptions): { pool: pg.Pool; ownsPool: boolean } {
  if (options.pool) return { pool: options.pool, ownsPool: false };
  const pool = createPostgresPool({
    connectionString: options.connectionString,
    max: options.poolSize ?? 4,
    application_name: 'everruns-host-pgboss',
  });
  pool.on('error', (error) => options.onError?.(error));
  return { pool, ownsPool: true };
}

/** A pg-boss instance that runs its statements on `pool` (not yet started). */
export function createBoss(pool: pg.Pool, options: PgBossHostOptions, bossSchema: string): PgBoss {
  const boss = new PgBoss({
    db: { executeSql: (text: string, values: unknown[]) => sendStatement(pool, text, values) },
    schema: bossSchema,
    schedule: false,
    supervise: options.supervise ?? true,
    maintenanceIntervalSeconds: options.maintenanceIntervalSeconds ?? 30,
    pollingIntervalSeconds: options.pollingIntervalSeconds ?? 1,
  });
  boss.on('error', (error) => options.onError?.(error));
  return boss;
}

/**
 * Creates the host's tables, starts pg-boss (creating its schema) and creates the step queue, its
 * dead-letter queue and its schedule queue when missing. pg-boss creates its schema and each queue's partition
 * without IF NOT EXISTS, so processes starting at the same time take turns under a session-level
 * advisory lock held on a dedicated connection.
 */
export async function startQueues(
  boss: PgBoss,
  pool: pg.Pool,
  options: PgBossHostOptions,
  names: HostNames,
): Promise<void> {
  const retry = options.retry ?? {};
  const queueOptions = {
    retryLimit: retry.limit ?? 5,
    retryDelay: retry.delaySeconds ?? 1,
    retryBackoff: retry.backoff ?? true,
    expireInSeconds: options.stepTimeoutSeconds ?? DEFAULT_STEP_TIMEOUT_SECONDS,
  };
  const deadQueue = deadLetterQueueOf(names.queue);
  await withAdvisoryLock(pool, `everruns-host-pgboss-start:${names.bossSchema}`, async () => {
    await createHostTables(pool, names.schema);
    await boss.start();
    await createQueues(boss, [
      { name: deadQueue, ...queueOptions },
      { name: names.queue, ...queueOptions, deadLetter: deadQueue },
      // Due scheduled messages (capabilities-schedule), one job per due time.
      { name: scheduleQueueOf(names.queue), ...queueOptions },
    ]);
  });
}

/** Creates the queues that are missing. */
async function createQueues(
  boss: PgBoss,
  queues: Array<PgBoss.Queue & { name: string }>,
): Promise<void> {
  for (const queue of queues) {
    if (!(await boss.getQueue(queue.name))) await boss.createQueue(queue.name, queue);
  }
}

/** Runs `task` while holding a session-level advisory lock on a dedicated connection. */
async function withAdvisoryLock<T>(pool: pg.Pool, key: string, task: () => Promise<T>): Promise<T> {
  const connection = await openDedicatedConnection(pool);
  try {
    await connection.client.query('SELECT pg_advisory_lock(hashtext($1))', [key]);
    return await task();
  } finally {
    // Closing the connection releases the lock.
    await connection.close();
  }
}
