import { everrunsError, type RuntimeEvent, type SessionStorageStore } from '@everruns-ts/core';
import {
  type Attributes,
  type Context,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';
import { z } from 'zod';

/** The instrumentation scope name the spans are recorded under. */
export const OTEL_SCOPE_NAME = '@everruns-ts/otel';

/**
 * The session storage key prefix under which a turn's trace context (`traceparent`) is kept
 * while the turn runs: `otel.traceparent.<turnId>`.
 */
export const TRACE_CONTEXT_KEY_PREFIX = 'otel.traceparent.';

/** Options of {@link instrumentRuntime} and {@link instrumentEventBus}. */
export interface OtelTracingOptions {
  /** The tracer to record with. Default: `tracerProvider`'s, else the global provider's. */
  tracer?: Tracer;
  /** Where the tracer comes from when `tracer` is not given. Default: the global provider. */
  tracerProvider?: TracerProvider;
  /**
   * Record message content on the spans: the turn's input text, the model's answers and tool
   * calls, tool arguments and results (`gen_ai.input.messages`, `gen_ai.output.messages`,
   * `gen_ai.tool.call.arguments`, `gen_ai.tool.call.result`). Default false: content may hold
   * personal data or secrets, and spans leave the process.
   */
  captureContent?: boolean;
  /**
   * Where a turn's trace context is kept so the spans of every process that runs a step of the
   * turn join one trace (a durable host's workers): the stores' session storage. Without it the
   * spans of a step run elsewhere start traces of their own.
   */
  storage?: SessionStorageStore;
  /** Receives failures of the tracing itself (a storage error); they never fail a turn. */
  onError?: (error: unknown) => void;
}

const optionsSchema = z.object({
  tracer: z.custom<Tracer>(
    (value) => typeof (value as Tracer | undefined)?.startSpan === 'function',
    'tracer must have startSpan',
  ),
  tracerProvider: z.custom<TracerProvider>(
    (value) => typeof (value as TracerProvider | undefined)?.getTracer === 'function',
    'tracerProvider must have getTracer',
  ),
  captureContent: z.boolean(),
  storage: z.custom<SessionStorageStore>(
    (value) =>
      typeof (value as SessionStorageStore | undefined)?.getValue === 'function' &&
      typeof (value as SessionStorageStore | undefined)?.setValue === 'function',
    'storage must be a session storage store',
  ),
  onError: z.custom<(error: unknown) => void>((value) => typeof value === 'function'),
});

interface OpenTurn {
  span: Span;
  context: Context;
  sessionId: string;
  inputTokens: number;
  outputTokens: number;
  lastText?: string;
}

interface OpenCall {
  span: Span;
  lastSeen: number;
}

/**
 * Builds OpenTelemetry spans from a turn's runtime events, following the GenAI semantic
 * conventions: `invoke_agent` for the turn (`turn.started` … `turn.completed`/`turn.failed`),
 * `chat <model>` for each model call (`reason.started` … `reason.completed`) and
 * `execute_tool <name>` for each tool call (`tool.started` … `tool.completed`). Used by
 * {@link instrumentRuntime} and {@link instrumentEventBus}; give it events in the order they
 * were emitted.
 */
export class TurnTracer {
  readonly #tracer: Tracer;
  readonly #captureContent: boolean;
  readonly #storage: SessionStorageStore | undefined;
  readonly #onError: (error: unknown) => void;
  readonly #turns = new Map<string, OpenTurn>();
  /** Remote parents of turns started in another process, by turn id. */
  readonly #remote = new Map<string, { context: Context; lastSeen: number }>();
  readonly #chats = new Map<string, OpenCall>();
  readonly #tools = new Map<string, OpenCall>();
  /** Tool-call arguments the model wrote, by `<turnId>/<toolCallId>` (content capture only). */
  readonly #arguments = new Map<string, string>();

  constructor(options: OtelTracingOptions = {}) {
    const parsed = optionsSchema.partial().safeParse(options);
    if (!parsed.success) {
      throw everrunsError('INVALID_INPUT', `Invalid tracing options: ${parsed.error.message}`, {
        details: { issues: parsed.error.issues },
      });
    }
    this.#tracer =
      options.tracer ?? (options.tracerProvider ?? trace).getTracer(OTEL_SCOPE_NAME, '0.1.0');
    this.#captureContent = options.captureContent === true;
    this.#storage = options.storage;
    this.#onError = options.onError ?? (() => {});
  }

  /**
   * Records one event emitted by this process. Resolves once the turn's trace context is stored
   * (on `turn.started`) or read (a step of a turn another process started); never rejects.
   */
  async record(event: RuntimeEvent): Promise<void> {
    try {
      await this.#record(event);
    } catch (error) {
      this.#onError(error);
    }
  }

  /**
   * Ends the turn span this process holds for a turn another process ended (a
   * `turn.completed`/`turn.failed` heard from the bus). Other events are ignored.
   */
  recordRemoteEnding(event: RuntimeEvent): void {
    if (event.type !== 'turn.completed' && event.type !== 'turn.failed') return;
    if (!event.turnId || !this.#turns.has(event.turnId)) return;
    this.#endTurn(event);
  }

  /** Ends every span still open (they are marked unfinished), for shutdown. */
  endAll(): void {
    for (const open of [...this.#tools.values(), ...this.#chats.values()]) {
      open.span.setAttribute('everruns.span.unfinished', true);
      open.span.end();
    }
    for (const open of this.#turns.values()) {
      open.span.setAttribute('everruns.span.unfinished', true);
      open.span.end();
    }
    this.#tools.clear();
    this.#chats.clear();
    this.#turns.clear();
    this.#remote.clear();
    this.#arguments.clear();
  }

  async #record(event: RuntimeEvent): Promise<void> {
    const turnId = event.turnId;
    if (!turnId) return;
    const data = event.data;
    switch (event.type) {
      case 'turn.started':
        await this.#startTurn(event, turnId);
        return;
      case 'reason.started': {
        const parent = await this.#parent(event.sessionId, turnId);
        const model = stringOr(data.model, 'unknown');
        const provider = stringOr(data.providerType, 'unknown');
        const span = this.#tracer.startSpan(
          `chat ${model}`,
          {
            kind: SpanKind.CLIENT,
            startTime: new Date(event.ts),
            attributes: {
              'gen_ai.operation.name': 'chat',
              'gen_ai.request.model': model,
              'gen_ai.system': provider,
              'gen_ai.provider.name': provider,
              'gen_ai.conversation.id': event.sessionId,
              'everruns.turn.id': turnId,
              'everruns.iteration': numberOr(data.iteration, 0),
            },
          },
          parent,
        );
        this.#chats.set(`${turnId}/${numberOr(data.iteration, 0)}`, {
          span,
          lastSeen: Date.now(),
        });
        return;
      }
      case 'output.message.completed': {
        const open = this.#chats.get(`${turnId}/${numberOr(data.iteration, 0)}`);
        const calls = Array.isArray(data.calls)
          ? (data.calls as Array<{ id?: unknown; name?: unknown; arguments?: unknown }>)
          : [];
        const turn = this.#turns.get(turnId);
        if (turn && typeof data.text === 'string' && data.text) turn.lastText = data.text;
        if (!this.#captureContent) return;
        for (const call of calls) {
          if (typeof call.id === 'string') {
            this.#arguments.set(`${turnId}/${call.id}`, JSON.stringify(call.arguments ?? {}));
          }
        }
        open?.span.setAttribute(
          'gen_ai.output.messages',
          JSON.stringify([
            {
              role: 'assistant',
              parts: [
                ...(typeof data.text === 'string' && data.text
                  ? [{ type: 'text', content: data.text }]
                  : []),
                ...calls.map((call) => ({
                  type: 'tool_call',
                  id: call.id,
                  name: call.name,
                  arguments: call.arguments,
                })),
              ],
            },
          ]),
        );
        return;
      }
      case 'reason.completed': {
        const key = `${turnId}/${numberOr(data.iteration, 0)}`;
        const open = this.#chats.get(key);
        if (!open) return;
        this.#chats.delete(key);
        const usage = data.usage as { inputTokens?: unknown; outputTokens?: unknown } | undefined;
        if (usage) {
          const input = numberOr(usage.inputTokens, 0);
          const output = numberOr(usage.outputTokens, 0);
          open.span.setAttributes({
            'gen_ai.usage.input_tokens': input,
            'gen_ai.usage.output_tokens': output,
          });
          const turn = this.#turns.get(turnId);
          if (turn) {
            turn.inputTokens += input;
            turn.outputTokens += output;
          }
        }
        if (typeof data.stopReason === 'string') {
          open.span.setAttribute('gen_ai.response.finish_reasons', [data.stopReason]);
        }
        if (data.success === false) failSpan(open.span, data.error);
        open.span.end(new Date(event.ts));
        return;
      }
      case 'tool.started': {
        const parent = await this.#parent(event.sessionId, turnId);
        this.#tools.set(`${turnId}/${stringOr(data.toolCallId, '')}`, {
          span: this.#startTool(event, turnId, parent),
          lastSeen: Date.now(),
        });
        return;
      }
      case 'tool.completed': {
        const key = `${turnId}/${stringOr(data.toolCallId, '')}`;
        let span = this.#tools.get(key)?.span;
        this.#tools.delete(key);
        // A result without a start here: a client tool's result, or a replayed call.
        span ??= this.#startTool(event, turnId, await this.#parent(event.sessionId, turnId));
        if (this.#captureContent) {
          const args = this.#arguments.get(key);
          if (args !== undefined) span.setAttribute('gen_ai.tool.call.arguments', args);
          if (typeof data.result === 'string') {
            span.setAttribute('gen_ai.tool.call.result', data.result);
          }
        }
        this.#arguments.delete(key);
        if (data.isError === true) {
          span.setAttribute('error.type', 'tool_error');
          span.setStatus({ code: SpanStatusCode.ERROR, message: 'The tool call failed' });
        }
        span.end(new Date(event.ts));
        return;
      }
      case 'turn.completed':
      case 'turn.failed':
        this.#endTurn(event);
        await this.#forgetTraceContext(event.sessionId, turnId);
        return;
      default:
        return;
    }
  }

  async #startTurn(event: RuntimeEvent, turnId: string): Promise<void> {
    if (this.#turns.has(turnId)) return;
    const attributes: Attributes = {
      'gen_ai.operation.name': 'invoke_agent',
      'gen_ai.conversation.id': event.sessionId,
      'everruns.turn.id': turnId,
    };
    if (this.#captureContent && typeof event.data.inputContent === 'string') {
      attributes['gen_ai.input.messages'] = JSON.stringify([
        { role: 'user', parts: [{ type: 'text', content: event.data.inputContent }] },
      ]);
    }
    // A turn resumed by another generation may already have a trace: join it.
    const existing = await this.#storedContext(event.sessionId, turnId);
    const span = this.#tracer.startSpan(
      'invoke_agent',
      { kind: SpanKind.INTERNAL, startTime: new Date(event.ts), attributes },
      existing ?? ROOT_CONTEXT,
    );
    const spanContext = trace.setSpan(ROOT_CONTEXT, span);
    this.#turns.set(turnId, {
      span,
      context: spanContext,
      sessionId: event.sessionId,
      inputTokens: 0,
      outputTokens: 0,
    });
    if (this.#storage && !existing) {
      const value = formatTraceparent(span.spanContext());
      const key = `${TRACE_CONTEXT_KEY_PREFIX}${turnId}`;
      if (this.#storage.setValueIfAbsent) {
        await this.#storage.setValueIfAbsent(event.sessionId, key, value);
      } else {
        await this.#storage.setValue(event.sessionId, key, value);
      }
    }
  }

  #startTool(event: RuntimeEvent, turnId: string, parent: Context): Span {
    const name = stringOr(event.data.toolName, 'unknown');
    return this.#tracer.startSpan(
      `execute_tool ${name}`,
      {
        kind: SpanKind.INTERNAL,
        startTime: new Date(event.ts),
        attributes: {
          'gen_ai.operation.name': 'execute_tool',
          'gen_ai.tool.name': name,
          'gen_ai.tool.call.id': stringOr(event.data.toolCallId, ''),
          'gen_ai.conversation.id': event.sessionId,
          'everruns.turn.id': turnId,
          'everruns.iteration': numberOr(event.data.iteration, 0),
        },
      },
      parent,
    );
  }

  #endTurn(event: RuntimeEvent): void {
    const turnId = event.turnId as string;
    this.#remote.delete(turnId);
    const open = this.#turns.get(turnId);
    if (!open) return;
    this.#turns.delete(turnId);
    const data = event.data;
    const usage = data.usage as { inputTokens?: unknown; outputTokens?: unknown } | undefined;
    open.span.setAttributes({
      // The turn's own total when the event carries it (steps of other processes included).
      'gen_ai.usage.input_tokens': numberOr(usage?.inputTokens, open.inputTokens),
      'gen_ai.usage.output_tokens': numberOr(usage?.outputTokens, open.outputTokens),
      'everruns.turn.iterations': numberOr(data.iterations, 0),
      'everruns.turn.tool_calls': numberOr(data.toolCallsCount, 0),
    });
    if (typeof data.stopReason === 'string') {
      open.span.setAttribute('everruns.turn.stop_reason', data.stopReason);
    }
    if (this.#captureContent && event.type === 'turn.completed' && open.lastText !== undefined) {
      open.span.setAttribute(
        'gen_ai.output.messages',
        JSON.stringify([{ role: 'assistant', parts: [{ type: 'text', content: open.lastText }] }]),
      );
    }
    if (event.type === 'turn.failed') failSpan(open.span, data.error, data.errorCode);
    open.span.end(new Date(event.ts));
  }

  /** The context a step's span hangs under: the local turn span, else the stored one. */
  async #parent(sessionId: string, turnId: string): Promise<Context> {
    const local = this.#turns.get(turnId);
    if (local) return local.context;
    const cached = this.#remote.get(turnId);
    if (cached) {
      cached.lastSeen = Date.now();
      return cached.context;
    }
    const stored = await this.#storedContext(sessionId, turnId);
    if (!stored) return ROOT_CONTEXT;
    this.#remote.set(turnId, { context: stored, lastSeen: Date.now() });
    this.#pruneRemote();
    return stored;
  }

  async #storedContext(sessionId: string, turnId: string): Promise<Context | undefined> {
    if (!this.#storage) return undefined;
    const value = await this.#storage.getValue(sessionId, `${TRACE_CONTEXT_KEY_PREFIX}${turnId}`);
    const spanContext = value === null ? undefined : parseTraceparent(value);
    return spanContext ? trace.setSpanContext(ROOT_CONTEXT, spanContext) : undefined;
  }

  async #forgetTraceContext(sessionId: string, turnId: string): Promise<void> {
    await this.#storage?.deleteValue(sessionId, `${TRACE_CONTEXT_KEY_PREFIX}${turnId}`);
  }

  /** Keeps the cache of other processes' turns small: the 1,000 most recently used. */
  #pruneRemote(): void {
    if (this.#remote.size <= 1_000) return;
    const oldest = [...this.#remote.entries()].sort((a, b) => a[1].lastSeen - b[1].lastSeen);
    for (const [turnId] of oldest.slice(0, this.#remote.size - 1_000)) {
      this.#remote.delete(turnId);
    }
  }
}

/**
 * A W3C `traceparent` header value for a span context: `00-<trace id>-<span id>-<flags>`.
 */
export function formatTraceparent(spanContext: SpanContext): string {
  const flags = (spanContext.traceFlags & 0xff).toString(16).padStart(2, '0');
  return `00-${spanContext.traceId}-${spanContext.spanId}-${flags}`;
}

/** The remote span context of a W3C `traceparent` value, or undefined when malformed. */
export function parseTraceparent(value: string): SpanContext | undefined {
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(value.trim());
  if (!match) return undefined;
  const [, traceId, spanId, flags] = match as unknown as [string, string, string, string];
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId, traceFlags: Number.parseInt(flags, 16), isRemote: true };
}

function failSpan(span: Span, error: unknown, fallbackCode?: unknown): void {
  const details = (error ?? {}) as {
    code?: unknown;
    message?: unknown;
    details?: { errorCode?: unknown };
  };
  const type =
    stringOr(details.details?.errorCode, '') ||
    stringOr(details.code, '') ||
    stringOr(fallbackCode, '') ||
    'error';
  span.setAttribute('error.type', type);
  // The message names the failure, never content: errors carry codes and redacted text.
  span.setStatus({ code: SpanStatusCode.ERROR, message: stringOr(details.message, type) });
}

function stringOr(value: unknown, fallback: string): string {
  return typeof value === 'string' ? value : fallback;
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}
