import { randomBytes } from 'node:crypto';
import { EverrunsError } from '@everruns-ts/core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { PostgresBackends } from './postgres-backends.js';
import { postgresBackends } from './postgres-backends.js';
import {
  adminQuery,
  createTestBackends,
  DATABASE_URL,
  destroyTestBackends,
  TEST_SECRET_KEY,
} from './test-support/database.js';

interface Entry {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string | undefined;
}

function recordingLogger() {
  const entries: Entry[] = [];
  const at =
    (level: Entry['level']) =>
    (obj: object, msg?: string): void => {
      entries.push({ level, obj: obj as Record<string, unknown>, msg });
    };
  return {
    entries,
    logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') },
  };
}

const WAIT = { timeout: 20_000, interval: 25 };

describe('the PostgreSQL stores report to a logger', () => {
  let backends: PostgresBackends;
  const applicationName = `logger_${randomBytes(4).toString('hex')}`;
  const { entries, logger } = recordingLogger();

  beforeAll(async () => {
    backends = await createTestBackends({
      poolConfig: { application_name: applicationName },
      events: { logger },
    });
  });

  afterAll(async () => {
    await destroyTestBackends(backends);
  });

  it('warns when the LISTEN connection is lost and says info when it is back, without event data', async () => {
    const sessionId = `session_${randomBytes(4).toString('hex')}`;
    const received: string[] = [];
    const stop = backends.events.subscribe((event) => received.push(event.type), { sessionId });
    try {
      await stop.ready;
      const { rows } = await adminQuery<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %'`,
        [applicationName],
      );
      expect(rows).toHaveLength(1);
      await adminQuery('SELECT pg_terminate_backend($1)', [rows[0]?.pid]);
      await vi.waitFor(
        () =>
          expect(entries.map((entry) => [entry.level, entry.msg])).toContainEqual([
            'info',
            'PostgreSQL event bus: LISTEN reconnected',
          ]),
        WAIT,
      );
      const lost = entries.find((entry) => entry.level === 'warn');
      expect(lost?.msg).toContain('LISTEN connection lost');
      expect(lost?.obj).toMatchObject({ channel: backends.events.channel });
      // Delivery goes on after the reconnect.
      await backends.events.emit({
        type: 'turn.started',
        sessionId,
        data: { inputContent: 'a private question' },
      });
      await vi.waitFor(() => expect(received).toContain('turn.started'), WAIT);
      expect(JSON.stringify(entries)).not.toContain('a private question');
    } finally {
      stop();
    }
  });

  it('warns with the event type and ids (no data) when a subscriber throws', async () => {
    const sessionId = `session_${randomBytes(4).toString('hex')}`;
    const stop = backends.events.subscribe(() => {
      throw new Error('subscriber bug quoting secret text');
    });
    try {
      const event = await backends.events.emit({
        type: 'reason.started',
        sessionId,
        data: { model: 'secret-model-name' },
      });
      const dropped = entries.find((entry) => entry.msg?.includes('a subscriber threw'));
      expect(dropped?.level).toBe('warn');
      expect(dropped?.obj).toMatchObject({
        eventType: 'reason.started',
        eventId: event.id,
        sessionId,
        error: { name: 'Error' },
      });
      const logged = JSON.stringify(entries);
      expect(logged).not.toContain('secret-model-name');
      expect(logged).not.toContain('quoting secret text');
    } finally {
      stop();
    }
  });

  it('refuses a logger without the four level functions (CONFIGURATION)', () => {
    let caught: unknown;
    try {
      postgresBackends(
        { connectionString: DATABASE_URL },
        { secretKey: TEST_SECRET_KEY, events: { logger: { info() {} } as never } },
      );
    } catch (error) {
      caught = error;
    }
    expect(EverrunsError.hasCode(caught, 'CONFIGURATION')).toBe(true);
  });
});
