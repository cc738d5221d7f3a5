import {
  CapabilityRegistry,
  DriverRegistry,
  EverrunsError,
  newId,
  PlatformDefinition,
} from '@everruns-ts/core';
import { InMemorySessionStore } from '@everruns-ts/stores-memory';
import { describe, expect, it, vi } from 'vitest';
import { holdTurnLease, turnLeaseHolder } from './host-turn-lease.js';
import { PgBossHost } from './index.js';

interface Entry {
  level: string;
  obj: Record<string, unknown>;
  msg: string | undefined;
}

function recordingLogger() {
  const entries: Entry[] = [];
  const at = (level: string) => (obj: object, msg?: string) => {
    entries.push({ level, obj: obj as Record<string, unknown>, msg });
  };
  return {
    entries,
    logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') },
  };
}

describe('the durable host reports to its logger', () => {
  it('warns once when the session lease a step holds is taken over by another holder', async () => {
    const sessions = new InMemorySessionStore();
    const now = new Date().toISOString();
    const session = await sessions.createSession({
      id: newId('session'),
      harnessId: 'harness_1',
      tags: [],
      capabilities: [],
      tools: [],
      initialFiles: [],
      status: 'active',
      createdAt: now,
      updatedAt: now,
    });
    const turnId = newId('turn');
    const { entries, logger } = recordingLogger();
    const stop = await holdTurnLease(sessions, session.id, turnId, 60, logger);
    try {
      // Another runtime takes the session: the step's holder lets go and the other claims it.
      await sessions.releaseTurnLease(session.id, turnLeaseHolder(turnId));
      await sessions.claimTurnLease(session.id, 'runtime/elsewhere', 60_000);
      await vi.waitFor(() => expect(entries).toHaveLength(1), { timeout: 10_000, interval: 10 });
      expect(entries[0]).toEqual({
        level: 'warn',
        obj: {
          sessionId: session.id,
          turnId,
          holder: turnLeaseHolder(turnId),
          takenBy: 'runtime/elsewhere',
        },
        msg: 'host turn lease taken over by another holder; the step can no longer write to the session',
      });
      // Later renewals fail too, and are not reported again.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(entries).toHaveLength(1);
    } finally {
      stop();
    }
  });

  it('refuses a logger without the four level functions with CONFIGURATION, before connecting', async () => {
    const error = await PgBossHost.start({
      connectionString: 'postgres://nobody@127.0.0.1:1/none',
      backends: {} as never,
      platform: new PlatformDefinition(new CapabilityRegistry(), new DriverRegistry()),
      logger: { warn() {}, error() {} } as never,
    }).catch((caught: unknown) => caught);
    expect(EverrunsError.hasCode(error, 'CONFIGURATION')).toBe(true);
    expect(String((error as Error).message)).toContain('logger');
  });
});
