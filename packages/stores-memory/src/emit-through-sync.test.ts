import {
  EMIT_THROUGH_SYNC,
  type EventBus,
  type EventRequest,
  emitEvents,
  type RuntimeEvent,
  storeMessageAndEmit,
  syncEmitOf,
} from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import { CollectingEventBus } from './collecting-event-bus.js';
import { InMemoryMessageStore } from './in-memory-message-store.js';

const requests = (sessionId: string): EventRequest[] => [
  { type: 'turn.started', sessionId, turnId: 't1', data: { n: 1 } },
  { type: 'reason.started', sessionId, turnId: 't1', data: { n: 2 } },
];

describe('emitting through emitSync', () => {
  it('the in-memory bus emits through emitSync; a subclass that overrides emit sees every event', async () => {
    expect(syncEmitOf(new CollectingEventBus())).toBeTypeOf('function');
    const seen: string[] = [];
    class Watching extends CollectingEventBus {
      override async emit(request: EventRequest): Promise<RuntimeEvent> {
        seen.push(request.type);
        return super.emit(request);
      }
    }
    const bus = new Watching();
    expect(syncEmitOf(bus)).toBeUndefined();
    const events = await emitEvents(bus, requests('s1'));
    expect(events.map((event) => [event.type, event.seq])).toEqual([
      ['turn.started', 1],
      ['reason.started', 2],
    ]);
    const messages = new InMemoryMessageStore();
    await storeMessageAndEmit(
      { messages, events: bus },
      's1',
      {
        role: 'user',
        content: [{ type: 'text', text: 'hi' }],
      },
      () => [{ type: 'input.message', sessionId: 's1', data: {} }],
    );
    expect(seen).toEqual(['turn.started', 'reason.started', 'input.message']);
    expect(bus.collectedEvents('s1').map((event) => event.seq)).toEqual([1, 2, 3]);
  });

  it('a wrapper that replaces emit (a Proxy) is called through it, and its failure reaches the caller', async () => {
    const inner = new CollectingEventBus();
    const wrapper = new Proxy(inner, {
      get(target, property) {
        if (property === 'emit') {
          return async (request: EventRequest) => {
            if (request.type === 'reason.started') throw new Error('bus down');
            return target.emit(request);
          };
        }
        const value = Reflect.get(target, property, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as EventBus;
    expect(syncEmitOf(wrapper)).toBeUndefined();
    await expect(emitEvents(wrapper, requests('s2'))).rejects.toThrow('bus down');
    expect(inner.collectedEvents('s2').map((event) => event.type)).toEqual(['turn.started']);
  });

  it('marks only what says it emits the same through emitSync', () => {
    const plain: EventBus = {
      emit: async () => {
        throw new Error('unused');
      },
      emitSync: () => {
        throw new Error('unused');
      },
    };
    expect(syncEmitOf(plain)).toBeUndefined();
    expect(
      (CollectingEventBus.prototype.emit as unknown as Record<symbol, unknown>)[EMIT_THROUGH_SYNC],
    ).toBe(true);
  });
});
