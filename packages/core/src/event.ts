import { z } from 'zod';

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
] as const;
/** One event type. */
export type EventType = (typeof EVENT_TYPES)[number];

/** Schema of {@link RuntimeEvent}. */
export const runtimeEventSchema = z.object({
  id: z.string(),
  type: z.enum(EVENT_TYPES),
  sessionId: z.string(),
  turnId: z.string().optional(),
  /** 1, 2, 3 … per session, in emission order. */
  seq: z.number().int().positive(),
  /** ISO timestamp. */
  ts: z.string(),
  data: z.record(z.string(), z.unknown()),
});
/** Something that happened in a session, as the event bus delivers it. */
export type RuntimeEvent = z.infer<typeof runtimeEventSchema>;

/** An event before the bus gives it an id, a sequence number and a timestamp. */
export interface EventRequest {
  type: EventType;
  sessionId: string;
  turnId?: string;
  data: Record<string, unknown>;
}

/**
 * Where the runtime sends events. Implementations assign `seq` per session in call order.
 * `emit` must not throw for a delivery problem of one subscriber.
 */
export interface EventBus {
  /** Records one event and returns it with its id, sequence number and timestamp. */
  emit(request: EventRequest): Promise<RuntimeEvent>;
  /** Every event kept so far, in emission order; buses that keep nothing return `[]`. */
  collectedEvents?(sessionId?: string): RuntimeEvent[];
  /** Calls `listener` for every event emitted from now on; returns the unsubscribe function. */
  subscribe?(listener: (event: RuntimeEvent) => void): () => void;
}
