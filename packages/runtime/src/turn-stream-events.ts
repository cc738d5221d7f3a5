import {
  type BatchingEventBus,
  type EventBus,
  type EventRequest,
  type LlmUsage,
  markEmitThroughSync,
  type RuntimeEvent,
  syncEmitOf,
  wrapJointWrites,
} from '@everruns-ts/core';
import type { TurnStopReason } from './turn-plan.js';
import type { TurnResult } from './turn-step.js';
import type { TurnStreamPart } from './turn-stream-parts.js';

/** Options of {@link TurnEventTranslator}. */
export interface TurnEventTranslatorOptions {
  /**
   * The turn to translate: events of other turns (and events without a `turnId`) yield nothing.
   * Without it every event given is taken as the turn's.
   */
  turnId?: string;
  /**
   * Also end the parts with a `turn-finish` built from the events: `turn.completed` (success) or
   * `turn.failed` (failure), with the last answer's text as `response`. Off by default: the
   * in-process `streamTurn` ends with the `TurnResult` the turn resolves with instead. A host that
   * only sees the events (a durable host's subscriber in another process) turns it on. A turn
   * that pauses for client tool results emits neither event, so no `turn-finish` comes from the
   * events then; an aborted turn (`turn.failed` with stop reason `aborted`) ends with its `error`
   * part only, as the in-process stream of a turn that rejected with `ABORTED`. The result built
   * from the events has no `output` (structured output).
   */
  finishFromEvents?: boolean;
}

type ErrorPart = Extract<TurnStreamPart, { type: 'error' }>;
type TurnError = ErrorPart['error'];

/**
 * Translates the events of one turn, in the order they were emitted (kept and ephemeral alike),
 * into {@link TurnStreamPart}s: `turn.started` → `turn-start`; `reason.started` → `step-start`;
 * `output.message.delta` → `text-delta`; `reason.thinking.delta` → `reasoning-delta`;
 * `tool.call.delta` → `tool-call-start` (first piece of a call) and `tool-call-delta`;
 * `output.message.completed` → a `text-delta` with the whole text when none streamed for that
 * step (a driver without `stream`), then one `tool-call` per stored call (preceded by its
 * `tool-call-start` when none streamed); `reason.completed` → `step-finish` (preceded by an
 * `error` part when the model call failed); `tool.completed` → `tool-result`; `turn.failed` →
 * `error` (unless the step's error just said the same); with
 * {@link TurnEventTranslatorOptions.finishFromEvents}, `turn.completed`/`turn.failed` →
 * `turn-finish`. Other events yield nothing. Tool-call arguments that are not a JSON object
 * (the model's mistake, answered with a tool error) become `{}` in the `tool-call` part; JSON
 * text of an object is parsed.
 *
 * One translator per turn; it keeps a little state (the current step, the calls already
 * started, the last answer's text).
 */
export class TurnEventTranslator {
  readonly #turnId: string | undefined;
  readonly #finishFromEvents: boolean;
  #iteration = 1;
  #textStreamed = false;
  /** Stream ids of the calls started in the current step, by the provider's index. */
  readonly #startedByIndex = new Map<number, string>();
  /** Ids of the calls started in the current step. */
  readonly #startedIds = new Set<string>();
  #lastText = '';
  #lastError: TurnError | undefined;
  #toolCalls = 0;

  constructor(options: TurnEventTranslatorOptions = {}) {
    this.#turnId = options.turnId;
    this.#finishFromEvents = options.finishFromEvents === true;
  }

  /** The parts one event yields (often none), in order. */
  translate(event: RuntimeEvent): TurnStreamPart[] {
    if (this.#turnId !== undefined && event.turnId !== this.#turnId) return [];
    const data = event.data;
    switch (event.type) {
      case 'turn.started':
        return [
          {
            type: 'turn-start',
            sessionId: event.sessionId,
            turnId: stringOr(data.turnId, event.turnId ?? ''),
          },
        ];
      case 'reason.started': {
        this.#iteration = positiveOr(data.iteration, this.#iteration);
        this.#textStreamed = false;
        this.#startedByIndex.clear();
        this.#startedIds.clear();
        this.#lastError = undefined;
        return [{ type: 'step-start', iteration: this.#iteration }];
      }
      case 'output.message.delta': {
        const text = stringOr(data.delta, '');
        if (text === '') return [];
        this.#textStreamed = true;
        return [{ type: 'text-delta', iteration: this.#iterationOf(data), text }];
      }
      case 'reason.thinking.delta': {
        const text = stringOr(data.delta, '');
        if (text === '') return [];
        return [{ type: 'reasoning-delta', iteration: this.#iterationOf(data), text }];
      }
      case 'tool.call.delta':
        return this.#toolCallDelta(data);
      case 'output.message.completed':
        return this.#answerCompleted(data);
      case 'reason.completed':
        return this.#stepFinished(data);
      case 'tool.completed':
        return [
          {
            type: 'tool-result',
            iteration: this.#iterationOf(data),
            toolCallId: stringOr(data.toolCallId, ''),
            toolName: stringOr(data.toolName, ''),
            result: stringOr(data.result, ''),
            isError: data.isError === true,
          },
        ];
      case 'turn.failed':
        return this.#turnFailed(event, data);
      case 'turn.completed':
        return this.#finishFromEvents
          ? [{ type: 'turn-finish', result: this.#resultOf(event, data, true) }]
          : [];
      default:
        return [];
    }
  }

  #iterationOf(data: Record<string, unknown>): number {
    return positiveOr(data.iteration, this.#iteration);
  }

  #toolCallDelta(data: Record<string, unknown>): TurnStreamPart[] {
    const iteration = this.#iterationOf(data);
    const index = typeof data.index === 'number' ? data.index : 0;
    const parts: TurnStreamPart[] = [];
    let toolCallId = this.#startedByIndex.get(index);
    if (toolCallId === undefined) {
      toolCallId = stringOr(data.toolCallId, `${iteration}:${index}`);
      this.#startedByIndex.set(index, toolCallId);
      this.#startedIds.add(toolCallId);
      parts.push({
        type: 'tool-call-start',
        iteration,
        toolCallId,
        toolName: stringOr(data.toolName, ''),
      });
    }
    const argumentsDelta = stringOr(data.argumentsDelta, '');
    if (argumentsDelta !== '') {
      parts.push({ type: 'tool-call-delta', iteration, toolCallId, argumentsDelta });
    }
    return parts;
  }

  #answerCompleted(data: Record<string, unknown>): TurnStreamPart[] {
    const text = stringOr(data.text, '');
    this.#lastText = text;
    // A dependency blocker's message: the turn fails next, its text is the result's response.
    if (data.blocker !== undefined) return [];
    const iteration = this.#iterationOf(data);
    const parts: TurnStreamPart[] = [];
    if (!this.#textStreamed && text !== '') {
      parts.push({ type: 'text-delta', iteration, text });
    }
    const calls = Array.isArray(data.calls) ? data.calls : [];
    for (const entry of calls) {
      const call = (entry ?? {}) as { id?: unknown; name?: unknown; arguments?: unknown };
      const toolCallId = stringOr(call.id, '');
      const toolName = stringOr(call.name, '');
      if (!this.#startedIds.has(toolCallId)) {
        parts.push({ type: 'tool-call-start', iteration, toolCallId, toolName });
      }
      parts.push({
        type: 'tool-call',
        iteration,
        toolCallId,
        toolName,
        arguments: argumentsObject(call.arguments),
      });
    }
    this.#toolCalls += calls.length;
    return parts;
  }

  #stepFinished(data: Record<string, unknown>): TurnStreamPart[] {
    const iteration = this.#iterationOf(data);
    const success = data.success !== false;
    const parts: TurnStreamPart[] = [];
    if (!success) {
      const error = turnErrorOf(data.error, 'llm_error');
      this.#lastError = error;
      // A failed step's turn answers with the step's user-facing text (the planner's `response`).
      this.#lastText = typeof data.text === 'string' ? data.text : '';
      parts.push({ type: 'error', error });
    }
    const usage = usageOf(data.usage);
    parts.push({
      type: 'step-finish',
      iteration,
      success,
      ...(usage ? { usage } : {}),
      ...(typeof data.stopReason === 'string' ? { stopReason: data.stopReason } : {}),
    });
    return parts;
  }

  #turnFailed(event: RuntimeEvent, data: Record<string, unknown>): TurnStreamPart[] {
    const error = turnErrorOf(
      data.error,
      stringOr(data.errorCode, stringOr(data.stopReason, 'error')),
    );
    const parts: TurnStreamPart[] = [];
    const last = this.#lastError;
    if (!last || last.code !== error.code || last.message !== error.message) {
      parts.push({ type: 'error', error });
    }
    // An aborted turn ends with its error, as a stream whose turn rejected with `ABORTED`.
    if (this.#finishFromEvents && data.stopReason !== 'aborted') {
      parts.push({ type: 'turn-finish', result: this.#resultOf(event, data, false) });
    }
    return parts;
  }

  #resultOf(event: RuntimeEvent, data: Record<string, unknown>, success: boolean): TurnResult {
    const result: TurnResult = {
      turnId: stringOr(data.turnId, event.turnId ?? ''),
      response: this.#lastText,
      iterations: typeof data.iterations === 'number' ? data.iterations : this.#iteration,
      toolCallsCount:
        typeof data.toolCallsCount === 'number' ? data.toolCallsCount : this.#toolCalls,
      success,
      stopReason: stringOr(data.stopReason, success ? 'end_turn' : 'error') as TurnStopReason,
    };
    if (!success) {
      result.error = turnErrorOf(data.error, stringOr(data.errorCode, result.stopReason));
    }
    const usage = usageOf(data.usage);
    if (usage) result.usage = usage;
    return result;
  }
}

function stringOr(value: unknown, fallback: string): string {
  return typeof value === 'string' ? value : fallback;
}

function positiveOr(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : fallback;
}

function turnErrorOf(value: unknown, code: string): TurnError {
  const error = (value !== null && typeof value === 'object' ? value : {}) as Record<
    string,
    unknown
  >;
  const details = error.details;
  return {
    code: stringOr(error.code, code),
    message: stringOr(error.message, `The turn failed (${code})`),
    ...(details !== null && typeof details === 'object' && !Array.isArray(details)
      ? { details: details as Record<string, unknown> }
      : {}),
  };
}

function usageOf(value: unknown): LlmUsage | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const usage = value as Partial<LlmUsage>;
  if (typeof usage.inputTokens !== 'number' || typeof usage.outputTokens !== 'number') {
    return undefined;
  }
  return usage as LlmUsage;
}

function argumentsObject(value: unknown): Record<string, unknown> {
  let parsed = value;
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value);
    } catch {
      return {};
    }
  }
  return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
    ? (parsed as Record<string, unknown>)
    : {};
}

/**
 * The runtime's event bus seen through a tap: every event emitted through it (with its id and
 * `seq`) is also handed to the listener registered for its session in `listeners`, once `emit`
 * resolves, before the emitter goes on (an `emitSync` of the bus, when it has one, likewise
 * before it returns). With no listener registered the bus is called directly.
 * A throwing listener never reaches the emitter. Every other member is the bus's own.
 */
export function tapEventBus(
  bus: EventBus,
  listeners: ReadonlyMap<string, (event: RuntimeEvent) => void>,
): EventBus {
  const deliver = (listener: (event: RuntimeEvent) => void, event: RuntimeEvent) => {
    try {
      listener(event);
    } catch {
      // A stream's listener failing must not fail the turn.
    }
  };
  // The synchronous emit of a bus that has one (the in-memory bus): the listener is called
  // before it returns, as the bus's own subscribers are.
  const busEmitSync = bus.emitSync?.bind(bus);
  const emitSync =
    busEmitSync !== undefined
      ? (request: EventRequest): RuntimeEvent => {
          const event = busEmitSync(request);
          const listener = listeners.size === 0 ? undefined : listeners.get(request.sessionId);
          if (listener !== undefined) deliver(listener, event);
          return event;
        }
      : undefined;
  const emit: EventBus['emit'] = (request) => {
    const listener = listeners.size === 0 ? undefined : listeners.get(request.sessionId);
    if (listener === undefined) return bus.emit(request);
    if (emitSync !== undefined) {
      // No promise hop between the bus and the listener.
      let event: RuntimeEvent;
      try {
        event = emitSync(request);
      } catch (error) {
        return Promise.reject(error);
      }
      return Promise.resolve(event);
    }
    return bus.emit(request).then((event) => {
      deliver(listener, event);
      return event;
    });
  };
  // The tap's `emit` does what its `emitSync` does when the bus's own two do the same.
  if (emitSync !== undefined && syncEmitOf(bus) !== undefined) markEmitThroughSync(emit);
  const batching = bus as Partial<BatchingEventBus>;
  const emitMany: BatchingEventBus['emitMany'] | undefined =
    typeof batching.emitMany === 'function'
      ? (requests) => {
          const many = (batching.emitMany as BatchingEventBus['emitMany']).call(bus, requests);
          if (listeners.size === 0) return many;
          return many.then((events) => {
            for (const event of events) {
              const listener = listeners.get(event.sessionId);
              if (listener !== undefined) deliver(listener, event);
            }
            return events;
          });
        }
      : undefined;
  const { storeMessageAndEmit, updateSessionStatusAndEmit, setValueIfAbsentAndEmit } =
    wrapJointWrites(
      bus,
      (events) => {
        for (const event of events) {
          const listener = listeners.get(event.sessionId);
          if (listener !== undefined) deliver(listener, event);
        }
      },
      { active: () => listeners.size > 0 },
    );
  // The bus's other methods, bound to it once each.
  let bound: Map<PropertyKey, { method: unknown; bound: unknown }> | undefined;
  return new Proxy(bus, {
    get(target, property) {
      if (property === 'emit') return emit;
      if (property === 'emitMany' && emitMany !== undefined) return emitMany;
      if (property === 'emitSync' && emitSync !== undefined) return emitSync;
      if (property === 'storeMessageAndEmit' && storeMessageAndEmit !== undefined) {
        return storeMessageAndEmit;
      }
      if (property === 'updateSessionStatusAndEmit' && updateSessionStatusAndEmit !== undefined) {
        return updateSessionStatusAndEmit;
      }
      if (property === 'setValueIfAbsentAndEmit' && setValueIfAbsentAndEmit !== undefined) {
        return setValueIfAbsentAndEmit;
      }
      const value = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      const known = bound?.get(property);
      if (known !== undefined && known.method === value) return known.bound;
      const method = value.bind(target);
      bound ??= new Map();
      bound.set(property, { method: value, bound: method });
      return method;
    },
  });
}
