import { z } from 'zod';
import { EverrunsError } from './errors.js';
import { lazySchema } from './lazy-schema.js';
import { isoFromMillis, isoNow } from './time.js';

/** Every event type the runtime emits. */
export const EVENT_TYPES = [
  'input.message',
  'session.activated',
  'turn.started',
  'reason.started',
  'reason.completed',
  'output.message.completed',
  'tool.started',
  'tool.completed',
  'turn.completed',
  'turn.failed',
  'session.idled',
  'approval.requested',
  'approval.decided',
  'output.message.delta',
  'reason.thinking.delta',
  'tool.call.delta',
  'context.compacted',
  'subagent.started',
  'subagent.completed',
  'capability.activated',
  'capability.deactivated',
  'command.executed',
] as const;
/** One event type. */
export type EventType = (typeof EVENT_TYPES)[number];

/**
 * The event types that are delivered to subscribers but never kept: the pieces of a model answer
 * as it streams (`output.message.delta` text, `reason.thinking.delta` reasoning text,
 * `tool.call.delta` tool-call argument text). The complete answer follows as
 * `output.message.completed`, which is kept. Buses do not store them (the PostgreSQL bus does not
 * write them to its table by default; the memory bus does not collect them).
 */
export const EPHEMERAL_EVENT_TYPES = [
  'output.message.delta',
  'reason.thinking.delta',
  'tool.call.delta',
] as const satisfies readonly EventType[];
/** One ephemeral event type. */
export type EphemeralEventType = (typeof EPHEMERAL_EVENT_TYPES)[number];

const ephemeralTypes: ReadonlySet<string> = new Set(EPHEMERAL_EVENT_TYPES);

/** Whether events of `type` are only delivered, never kept (see {@link EPHEMERAL_EVENT_TYPES}). */
export function isEphemeralEventType(type: string): type is EphemeralEventType {
  return ephemeralTypes.has(type);
}

/** Schema of {@link RuntimeEvent}. */
export const runtimeEventSchema = lazySchema(() =>
  z.object({
    id: z.string(),
    type: z.enum(EVENT_TYPES),
    sessionId: z.string(),
    turnId: z.string().optional(),
    /**
     * 1, 2, 3 … per session, in emission order. An ephemeral event (see
     * {@link EPHEMERAL_EVENT_TYPES}) takes no number of its own: it carries the `seq` of the last
     * kept event of its session (0 before the first), so it sorts after that event and before the
     * next; only kept events are numbered without gaps.
     */
    seq: z.number().int().nonnegative(),
    /** ISO timestamp. */
    ts: z.string(),
    data: z.record(z.string(), z.unknown()),
    /** True on an event that is delivered but never kept (see {@link EPHEMERAL_EVENT_TYPES}). */
    ephemeral: z.literal(true).optional(),
  }),
);
/** Something that happened in a session, as the event bus delivers it. */
export type RuntimeEvent = z.infer<typeof runtimeEventSchema>;

/** An event before the bus gives it an id, a sequence number and a timestamp. */
export interface EventRequest {
  type: EventType;
  sessionId: string;
  turnId?: string;
  data: Record<string, unknown>;
  /**
   * When the event happened, for an event stored after the fact (the reason step stores its
   * `reason.started` with the model's answer, stamped with the time the model was called). An
   * ISO 8601 time; a bus keeps it as `Date.prototype.toISOString` writes it (see
   * {@link eventTimeOf}). Default: the time the bus records the event.
   */
  ts?: string;
}

/**
 * The time stamp a bus gives the event of `request`: its `ts` as `toISOString` writes it, or now
 * when it has none. Throws `INVALID_INPUT` for a `ts` that is not a time.
 */
export function eventTimeOf(request: Pick<EventRequest, 'ts'>): string {
  const { ts } = request;
  if (ts === undefined) return isoNow();
  const millis = typeof ts === 'string' ? Date.parse(ts) : Number.NaN;
  if (!Number.isFinite(millis) || millis < 0) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `An event's ts must be an ISO 8601 time, got ${JSON.stringify(ts)?.slice(0, 80)}`,
    });
  }
  return isoFromMillis(millis);
}

/**
 * The mark of an `emit` function that does what its bus's `emitSync` does, returning the event as
 * a resolved promise (the in-memory bus's own `emit`). Where a bus's `emit` carries it,
 * `emitEvents` and the joint writes emit through `emitSync`: no promise per event. A wrapper that
 * replaces `emit` without the mark (to watch or fail emits) is called through its `emit`, as
 * always; mark a wrapper's `emit` (with {@link markEmitThroughSync}) only when its `emitSync` does
 * the same as it.
 */
export const EMIT_THROUGH_SYNC: unique symbol = Symbol.for('everruns-ts.emitThroughSync');

/** Marks `emit` with {@link EMIT_THROUGH_SYNC}; returns it. */
export function markEmitThroughSync<T extends EventBus['emit']>(emit: T): T {
  Object.defineProperty(emit, EMIT_THROUGH_SYNC, { value: true });
  return emit;
}

/**
 * The bus's `emitSync` when its `emit` is marked as doing the same ({@link EMIT_THROUGH_SYNC});
 * `undefined` otherwise.
 */
export function syncEmitOf(bus: EventBus): EventBus['emitSync'] {
  const emit = bus.emit as EventBus['emit'] & { [EMIT_THROUGH_SYNC]?: boolean };
  return typeof bus.emitSync === 'function' && emit?.[EMIT_THROUGH_SYNC] === true
    ? bus.emitSync
    : undefined;
}

/**
 * Where the runtime sends events. Implementations assign `seq` per session in call order.
 * `emit` must not throw for a delivery problem of one subscriber.
 */
export interface EventBus {
  /** Records one event and returns it with its id, sequence number and timestamp. */
  emit(request: EventRequest): Promise<RuntimeEvent>;
  /**
   * `emit` without the promise, for a bus that can record and deliver at once (the in-memory
   * one): returns the event, or throws what `emit` would reject with. Optional; the reason step
   * emits a streaming answer's pieces through it when present.
   */
  emitSync?(request: EventRequest): RuntimeEvent;
  /** Every event kept so far, in emission order; buses that keep nothing return `[]`. */
  collectedEvents?(sessionId?: string): RuntimeEvent[];
  /** Calls `listener` for every event emitted from now on; returns the unsubscribe function. */
  subscribe?(listener: (event: RuntimeEvent) => void): () => void;
}
