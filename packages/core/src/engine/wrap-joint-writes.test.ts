// A bus wrapper built with wrapJointWrites sees the events every joint write of the bus stored
// (message, status, claimed value), and hides a joint method the bus does not have.
import { describe, expect, it } from 'vitest';
import type { EventRequest, RuntimeEvent } from '../event.js';
import { wrapJointWrites } from './emit-events.js';

const event = (type: RuntimeEvent['type'], seq: number): RuntimeEvent => ({
  id: `event_${seq}`,
  type,
  sessionId: 'session_1',
  seq,
  ts: '2026-12-02T00:00:00.000Z',
  data: {},
});

describe('wrapJointWrites', () => {
  it('hands the events of each joint write to onEvents, after the bus wrote them', async () => {
    const seen: string[] = [];
    const bus = {
      emit: async (request: EventRequest) => event(request.type, 0),
      subscribe: () => () => {},
      storeMessageAndEmit: async () => ({
        message: {} as never,
        events: [event('output.message.completed', 1)],
      }),
      updateSessionStatusAndEmit: async () => ({
        session: {} as never,
        events: [event('session.idled', 2)],
      }),
      setValueIfAbsentAndEmit: async () => ({ set: true, events: [event('tool.started', 3)] }),
    };
    const methods = wrapJointWrites(bus as never, (events) => {
      for (const written of events) seen.push(`${written.seq} ${written.type}`);
    });
    await methods.storeMessageAndEmit?.({} as never, 'session_1', {} as never, () => []);
    await methods.updateSessionStatusAndEmit?.({} as never, 'session_1', 'idle', []);
    const claimed = await methods.setValueIfAbsentAndEmit?.({} as never, 'session_1', 'k', 'v', []);
    expect(claimed?.set).toBe(true);
    expect(seen).toEqual(['1 output.message.completed', '2 session.idled', '3 tool.started']);
  });

  it('leaves out a joint method the bus lacks, and passes on a write that stored no events', async () => {
    const seen: RuntimeEvent[] = [];
    const bus = {
      emit: async (request: EventRequest) => event(request.type, 0),
      subscribe: () => () => {},
      setValueIfAbsentAndEmit: async () => ({ set: false, events: null }),
    };
    const methods = wrapJointWrites(bus as never, (events) => {
      seen.push(...events);
    });
    expect(methods.storeMessageAndEmit).toBeUndefined();
    expect(methods.updateSessionStatusAndEmit).toBeUndefined();
    expect(await methods.setValueIfAbsentAndEmit?.({} as never, 'session_1', 'k', 'v', [])).toEqual(
      { set: false, events: null },
    );
    expect(seen).toEqual([]);
  });
});
