import {
  type BatchingEventBus,
  type EventBus,
  type EventRequest,
  everrunsError,
  type RuntimeEvent,
  wrapJointWrites,
} from '@everruns-ts/core';
import { type OtelTracingOptions, TurnTracer } from './turn-tracer.js';

/** What {@link instrumentRuntime} needs of a runtime: its stores' event bus. */
export interface InstrumentableRuntime {
  readonly backends: { readonly events: EventBus };
}

/** Tracing attached to a runtime; {@link RuntimeTracing.stop} detaches it. */
export interface RuntimeTracing {
  /** The span builder, for {@link TurnTracer.endAll}. */
  readonly tracer: TurnTracer;
  /**
   * Resolves once every event delivered so far is recorded (spans are built right after the bus
   * delivers; a turn's spans have ended once `flush` resolves after the turn).
   */
  flush(): Promise<void>;
  /** Stops listening and ends the spans still open (marked `everruns.span.unfinished`). */
  stop(): void;
}

/**
 * Traces the turns of an in-process runtime (`InProcessRuntime`): subscribes to its event bus
 * and records a span per turn, per model call and per tool call (see {@link TurnTracer}). Every
 * event the bus delivers is taken as this process's, so use it with a bus that delivers only
 * local events (the in-memory one); for stores whose bus hears other processes (PostgreSQL) and
 * for a durable host's workers, build with {@link instrumentEventBus} instead. Throws
 * `INVALID_INPUT` for bad options or a bus that cannot be subscribed to.
 *
 * @example
 * ```ts
 * const tracing = instrumentRuntime(runtime, { tracer: trace.getTracer('my-app') });
 * await runtime.runTextTurn(sessionId, 'What is 2 + 2?');
 * await tracing.flush();
 * tracing.stop();
 * ```
 */
export function instrumentRuntime(
  runtime: InstrumentableRuntime,
  options: OtelTracingOptions = {},
): RuntimeTracing {
  const bus = runtime.backends.events;
  if (typeof bus.subscribe !== 'function') {
    throw everrunsError('INVALID_INPUT', 'The runtime event bus cannot be subscribed to');
  }
  const tracer = new TurnTracer(options);
  // Events are recorded one after another, in the order the bus delivered them.
  let queue: Promise<void> = Promise.resolve();
  const unsubscribe = bus.subscribe((event) => {
    if (event.ephemeral) return;
    queue = queue.then(() => tracer.record(event));
  });
  return {
    tracer,
    flush: () => queue,
    stop() {
      unsubscribe();
      tracer.endAll();
    },
  };
}

/** An event bus that records spans for the events emitted through it. */
export type InstrumentedEventBus<B extends EventBus> = B & {
  /** The span builder, for {@link TurnTracer.endAll} at shutdown. */
  readonly turnTracer: TurnTracer;
};

/**
 * Wraps an event bus so the events this process emits through it become spans (see
 * {@link TurnTracer}); everything else is the wrapped bus's. Give the wrapper to the runtime
 * builder's or the durable host's backends: `{ ...backends, events: instrumentEventBus(
 * backends.events, { tracer, storage: backends.storage }) }`. With `storage`, the turn's trace
 * context is kept in session storage when the turn starts, so the steps another worker process
 * runs join the same trace; when the bus hears other processes (PostgreSQL), the turn span of
 * this process also ends when another process ends the turn. `emit` resolves after the span work
 * (a storage read or write on a turn's first event in a process); tracing failures go to
 * `onError` and never fail an emit.
 */
export function instrumentEventBus<B extends EventBus>(
  bus: B,
  options: OtelTracingOptions = {},
): InstrumentedEventBus<B> {
  const tracer = new TurnTracer(options);
  let listening = false;
  const listen = () => {
    if (listening || typeof bus.subscribe !== 'function') return;
    listening = true;
    try {
      bus.subscribe((event: RuntimeEvent) => tracer.recordRemoteEnding(event));
    } catch (error) {
      options.onError?.(error);
    }
  };
  // Events are recorded in emission order; a synchronous emit's event is queued.
  let queue: Promise<void> = Promise.resolve();
  const recordInOrder = (events: readonly RuntimeEvent[]): Promise<void> => {
    queue = queue.then(async () => {
      for (const event of events) if (!event.ephemeral) await tracer.record(event);
    });
    return queue;
  };
  const emit = async (request: EventRequest) => {
    if (request.type === 'turn.started') listen();
    const event = await bus.emit(request);
    await recordInOrder([event]);
    return event;
  };
  const batching = bus as Partial<BatchingEventBus>;
  const emitMany =
    typeof batching.emitMany === 'function'
      ? async (requests: EventRequest[]) => {
          if (requests.some((request) => request.type === 'turn.started')) listen();
          const events = await (batching.emitMany as BatchingEventBus['emitMany']).call(
            bus,
            requests,
          );
          await recordInOrder(events);
          return events;
        }
      : undefined;
  const emitSync =
    typeof bus.emitSync === 'function'
      ? (request: EventRequest) => {
          if (request.type === 'turn.started') listen();
          const event = (bus.emitSync as NonNullable<EventBus['emitSync']>).call(bus, request);
          // Deltas make no spans; a kept event is recorded after the ones before it.
          if (!event.ephemeral) void recordInOrder([event]);
          return event;
        }
      : undefined;
  // A message or a status written with its events in one round trip: the events the bus wrote
  // with it are recorded as an emit's would be (when it wrote none, the caller emits them through
  // `emit`/`emitMany` above).
  const { storeMessageAndEmit, updateSessionStatusAndEmit, setValueIfAbsentAndEmit } =
    wrapJointWrites(
      bus,
      (events) => {
        if (events.some((event) => event.type === 'turn.started')) listen();
        return recordInOrder(events);
      },
      {
        beforeStatusWrite: (requests) => {
          if (requests.some((request) => request.type === 'turn.started')) listen();
        },
      },
    );
  return new Proxy(bus, {
    get(target, property) {
      if (property === 'emit') return emit;
      if (property === 'emitMany' && emitMany) return emitMany;
      if (property === 'emitSync' && emitSync) return emitSync;
      if (property === 'storeMessageAndEmit' && storeMessageAndEmit) return storeMessageAndEmit;
      if (property === 'updateSessionStatusAndEmit' && updateSessionStatusAndEmit) {
        return updateSessionStatusAndEmit;
      }
      if (property === 'setValueIfAbsentAndEmit' && setValueIfAbsentAndEmit) {
        return setValueIfAbsentAndEmit;
      }
      if (property === 'turnTracer') return tracer;
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as InstrumentedEventBus<B>;
}
