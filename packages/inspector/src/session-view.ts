import {
  DEFAULT_TURN_LIMITS,
  type LlmUsage,
  type Message,
  messageText,
  messageToolCalls,
  type RuntimeEvent,
  type ToolCall,
} from '@everruns-ts/core';
import {
  type CompletedActivity,
  initialTurnState,
  planNextHostTurn,
  type RuntimeTurnPlan,
  type RuntimeTurnState,
} from '@everruns-ts/runtime/host';

/** One tool call of a turn: what the model asked for and what came back. */
export interface ToolCallView {
  id: string;
  name: string;
  /** The arguments exactly as the model sent them. */
  arguments: unknown;
  /** The reason step that asked for it. */
  iteration: number | undefined;
  /** `requested`: no `tool.started` yet; `running`: started, no result; `completed`: result stored. */
  status: 'requested' | 'running' | 'completed';
  /** The result text the model sees. */
  result?: string;
  isError?: boolean;
  /** From the `tool.completed` event. */
  durationMs?: number;
  startedAt?: string;
  completedAt?: string;
}

/** One turn of a session, folded from its messages and events. */
export interface TurnView {
  turnId: string;
  /** `running` until `turn.completed` or `turn.failed`; `waiting` for client-side tool results. */
  status: 'running' | 'completed' | 'failed' | 'waiting';
  startedAt: string | undefined;
  endedAt: string | undefined;
  /** The user's text that started the turn. */
  input: string;
  /** The text of the last agent message. */
  response: string;
  /** Reason steps recorded (agent messages). */
  iterations: number;
  toolCalls: ToolCallView[];
  stopReason?: string;
  error?: { code: string; message: string };
  /** The turn's summed usage, with cache and reasoning details when the model reported them. */
  usage?: LlmUsage;
  /** Models named by the turn's `reason.started` events. */
  models: string[];
  /**
   * Where the turn compacted the session's history (`context.compacted` events), oldest first;
   * absent when it did not.
   */
  compactions?: CompactionPointView[];
}

/** One compaction point: the history through `throughSeq` was summarised for the model. */
export interface CompactionPointView {
  at: string;
  iteration?: number;
  throughSeq: number;
  previousThroughSeq?: number;
  tokensBefore?: number;
  tokensAfter?: number;
  summary: string;
}

/** One row of a session's timeline: a message or an event, in the order they happened. */
export type TimelineEntry =
  | { kind: 'message'; at: string; turnId: string | undefined; message: Message }
  | { kind: 'event'; at: string; turnId: string | undefined; event: RuntimeEvent };

/** One replayed planner decision. */
export interface HostPlanStep {
  completedActivity: CompletedActivity;
  /** What the planner decided: `scheduleReason`, `scheduleAct`, `waitForToolResults`, `complete`. */
  decision: RuntimeTurnPlan['kind'];
  /** Iteration of the state the decision produced. */
  iteration: number;
  /** Short human description of the decision. */
  summary: string;
}

/** The planner replayed over the stored history of a session's last turn. */
export interface HostPlanView {
  turnId: string;
  /** Every decision the planner made for this turn, replayed from the stored messages and events. */
  steps: HostPlanStep[];
  /** The arguments of the last call to `planNextHostTurn`, as a host would pass them. */
  completedActivity: CompletedActivity;
  state: RuntimeTurnState;
  output: unknown;
  pendingUserMessages: number;
  /** What `planNextHostTurn` returns for those arguments: what a host would do next. */
  plan: RuntimeTurnPlan;
  /** What is under way now, when something is (a tool running, a model call). */
  inProgress: string | undefined;
  /** How the turn was recorded as ending, when it ended (`turn.completed` / `turn.failed`). */
  recordedEnd: { type: string; stopReason: string | undefined } | undefined;
}

/** Limits used when replaying the planner. */
export interface ReplayLimits {
  /** The session's iteration limit (from the assembled context). Default 50. */
  maxIterations?: number;
  /** Default 5. */
  maxRepeatedToolCalls?: number;
  /** The session's status, to recognise a turn waiting for client-side tool results. */
  sessionStatus?: string;
}

/**
 * Merges messages and events into one timeline. Each list keeps its own order; the two are
 * interleaved by timestamp, and an event that points at a message (`data.messageId`) never comes
 * before that message.
 */
export function buildTimeline(
  messages: readonly Message[],
  events: readonly RuntimeEvent[],
): TimelineEntry[] {
  const timeline: TimelineEntry[] = [];
  const emitted = new Set<string>();
  const messageIds = new Set(messages.map((message) => message.id));
  let m = 0;
  let e = 0;
  while (m < messages.length || e < events.length) {
    const message = messages[m];
    const event = events[e];
    let takeMessage: boolean;
    if (!message) takeMessage = false;
    else if (!event) takeMessage = true;
    else if (message.createdAt < event.ts) takeMessage = true;
    else if (event.ts < message.createdAt) takeMessage = false;
    else {
      const referenced = event.data.messageId;
      takeMessage =
        typeof referenced === 'string' && messageIds.has(referenced) && !emitted.has(referenced);
    }
    if (takeMessage && message) {
      emitted.add(message.id);
      timeline.push({ kind: 'message', at: message.createdAt, turnId: message.turnId, message });
      m++;
    } else if (event) {
      timeline.push({ kind: 'event', at: event.ts, turnId: event.turnId, event });
      e++;
    }
  }
  return timeline;
}

/** Folds a session's messages and events into its turns, oldest first. */
export function buildTurns(
  messages: readonly Message[],
  events: readonly RuntimeEvent[],
): TurnView[] {
  const order: string[] = [];
  const byTurn = new Map<string, { messages: Message[]; events: RuntimeEvent[] }>();
  const bucket = (turnId: string) => {
    let entry = byTurn.get(turnId);
    if (!entry) {
      entry = { messages: [], events: [] };
      byTurn.set(turnId, entry);
      order.push(turnId);
    }
    return entry;
  };
  for (const message of messages) if (message.turnId) bucket(message.turnId).messages.push(message);
  for (const event of events) if (event.turnId) bucket(event.turnId).events.push(event);
  return order.map((turnId) => {
    const entry = byTurn.get(turnId) as { messages: Message[]; events: RuntimeEvent[] };
    return foldTurn(turnId, entry.messages, entry.events);
  });
}

function foldTurn(turnId: string, messages: Message[], events: RuntimeEvent[]): TurnView {
  const calls = new Map<string, ToolCallView>();
  let input = '';
  let response = '';
  let iterations = 0;
  for (const message of messages) {
    if (message.role === 'user' && input === '') input = messageText(message);
    if (message.role === 'agent') {
      iterations++;
      response = messageText(message);
      const iteration =
        typeof message.metadata?.iteration === 'number' ? message.metadata.iteration : iterations;
      for (const call of messageToolCalls(message)) {
        calls.set(call.id, {
          id: call.id,
          name: call.name,
          arguments: call.arguments,
          iteration,
          status: 'requested',
        });
      }
    }
    if (message.role === 'tool_result') {
      for (const part of message.content) {
        if (part.type !== 'tool_result') continue;
        const call = calls.get(part.toolCallId);
        if (!call) continue;
        call.status = 'completed';
        call.result = part.content;
        call.isError = part.isError;
        call.completedAt = message.createdAt;
      }
    }
  }
  const view: TurnView = {
    turnId,
    status: 'running',
    startedAt: messages[0]?.createdAt ?? events[0]?.ts,
    endedAt: undefined,
    input,
    response,
    iterations,
    toolCalls: [],
    models: [],
  };
  for (const event of events) {
    const data = event.data;
    switch (event.type) {
      case 'turn.started':
        view.startedAt = event.ts;
        break;
      case 'reason.started':
        if (typeof data.model === 'string' && !view.models.includes(data.model))
          view.models.push(data.model);
        break;
      case 'context.compacted':
        if (typeof data.throughSeq === 'number') {
          const point: CompactionPointView = {
            at: event.ts,
            throughSeq: data.throughSeq,
            summary: typeof data.summary === 'string' ? data.summary : '',
          };
          if (typeof data.iteration === 'number') point.iteration = data.iteration;
          if (typeof data.previousThroughSeq === 'number') {
            point.previousThroughSeq = data.previousThroughSeq;
          }
          if (typeof data.tokensBefore === 'number') point.tokensBefore = data.tokensBefore;
          if (typeof data.tokensAfter === 'number') point.tokensAfter = data.tokensAfter;
          view.compactions = [...(view.compactions ?? []), point];
        }
        break;
      case 'tool.started': {
        const call = calls.get(String(data.toolCallId));
        if (call) {
          call.startedAt = event.ts;
          if (call.status === 'requested') call.status = 'running';
        }
        break;
      }
      case 'tool.completed': {
        const call = calls.get(String(data.toolCallId));
        if (call) {
          if (typeof data.durationMs === 'number') call.durationMs = data.durationMs;
          if (typeof data.isError === 'boolean') call.isError = data.isError;
          call.completedAt ??= event.ts;
          call.status = 'completed';
        }
        break;
      }
      case 'turn.completed':
      case 'turn.failed': {
        view.status = event.type === 'turn.completed' ? 'completed' : 'failed';
        view.endedAt = event.ts;
        if (typeof data.stopReason === 'string') view.stopReason = data.stopReason;
        const usage = data.usage as TurnView['usage'] | undefined;
        if (usage && typeof usage.inputTokens === 'number') view.usage = usage;
        const error = data.error as { code?: unknown; message?: unknown } | undefined;
        if (error && typeof error.code === 'string') {
          view.error = { code: error.code, message: String(error.message ?? '') };
        }
        break;
      }
      default:
        break;
    }
  }
  view.toolCalls = [...calls.values()];
  return view;
}

/**
 * Replays `planNextHostTurn` over the stored history of the session's last turn: starting from
 * the turn's input, it feeds the planner each recorded step (input, every reason step's agent
 * message, every act step's tool results) exactly as a durable host would, and returns every
 * decision plus the last call's arguments and result, which is what a host resuming this session
 * now would do next. `undefined` when the session has no turn.
 */
export function replayHostPlan(
  sessionId: string,
  messages: readonly Message[],
  events: readonly RuntimeEvent[],
  limits: ReplayLimits = {},
): HostPlanView | undefined {
  const turnId = lastTurnId(messages, events);
  if (!turnId) return undefined;
  const turnMessages = messages.filter((message) => message.turnId === turnId);
  const turnEvents = events.filter((event) => event.turnId === turnId);
  const inputMessage = turnMessages.find((message) => message.role === 'user');
  const turnStarted = turnEvents.find((event) => event.type === 'turn.started');
  if (!inputMessage && !turnStarted) return undefined;

  let state = initialTurnState({
    sessionId,
    turnId,
    maxIterations: limits.maxIterations ?? DEFAULT_TURN_LIMITS.maxIterations,
    maxRepeatedToolCalls: limits.maxRepeatedToolCalls ?? DEFAULT_TURN_LIMITS.maxRepeatedToolCalls,
  });
  const steps: HostPlanStep[] = [];
  let last: {
    completedActivity: CompletedActivity;
    state: RuntimeTurnState;
    output: unknown;
    pendingUserMessages: number;
    plan: RuntimeTurnPlan;
  };
  const decide = (
    completedActivity: CompletedActivity,
    output: unknown,
    pendingUserMessages = 0,
  ): RuntimeTurnPlan => {
    const before = state;
    const plan = planNextHostTurn(completedActivity, before, output, pendingUserMessages);
    last = { completedActivity, state: before, output, pendingUserMessages, plan };
    steps.push({
      completedActivity,
      decision: plan.kind,
      iteration: plan.state.iteration,
      summary: summarizePlan(plan),
    });
    state = plan.state;
    return plan;
  };

  const inputMessageId = inputMessage?.id ?? String(turnStarted?.data.inputMessageId ?? '');
  let plan = decide('input', {
    turnId,
    messageId: inputMessageId || 'unknown',
    seq: inputMessage?.seq ?? 0,
    maxIterations: state.maxIterations,
  });
  const pendingUserMessages = messages.filter(
    (message) =>
      message.role === 'user' &&
      message.turnId !== turnId &&
      inputMessage !== undefined &&
      message.seq > inputMessage.seq,
  ).length;
  const results = new Map<string, { isError: boolean; messageId: string }>();
  for (const message of turnMessages) {
    if (message.role !== 'tool_result') continue;
    for (const part of message.content) {
      if (part.type === 'tool_result')
        results.set(part.toolCallId, { isError: part.isError, messageId: message.id });
    }
  }
  const agentMessages = turnMessages.filter((message) => message.role === 'agent');
  let inProgress: string | undefined;
  for (const [index, agent] of agentMessages.entries()) {
    if (plan.kind !== 'scheduleReason') break;
    const isLast = index === agentMessages.length - 1;
    plan = decide('reason', reasonOutput(agent), isLast ? pendingUserMessages : 0);
    if (plan.kind !== 'scheduleAct') continue;
    const calls = plan.act.toolCalls;
    const missing = calls.filter((call) => !results.has(call.id));
    if (missing.length > 0) {
      if (limits.sessionStatus === 'waiting_for_tool_results') {
        plan = decide('act', actOutput(calls, results, { waiting: true }));
      } else {
        const started = new Set(
          turnEvents
            .filter((event) => event.type === 'tool.started')
            .map((event) => String(event.data.toolCallId)),
        );
        const running = missing.filter((call) => started.has(call.id));
        inProgress =
          running.length > 0
            ? `act step running: ${running.map((call) => call.name).join(', ')} started, no result yet`
            : `act step scheduled: ${missing.length} tool call(s) without a result`;
      }
      break;
    }
    plan = decide('act', actOutput(calls, results, { waiting: false }));
  }
  if (plan.kind === 'scheduleReason') {
    const failed = turnEvents.find(
      (event) =>
        event.type === 'reason.completed' &&
        event.data.success === false &&
        event.data.iteration === plan.state.iteration,
    );
    if (failed) {
      const error = (failed.data.error as { code: string; message: string } | undefined) ?? {
        code: 'llm_error',
        message: 'The model call failed',
      };
      plan = decide('reason', {
        success: false,
        text: typeof failed.data.text === 'string' ? failed.data.text : '',
        toolCalls: [],
        replayed: false,
        error,
      });
    } else {
      const started = turnEvents.some(
        (event) => event.type === 'reason.started' && event.data.iteration === plan.state.iteration,
      );
      inProgress = started
        ? `reason step ${plan.state.iteration} running: the model was called, no answer stored yet`
        : `reason step ${plan.state.iteration} scheduled`;
    }
  }
  const end = [...turnEvents]
    .reverse()
    .find((event) => event.type === 'turn.completed' || event.type === 'turn.failed');
  // The input decision above always sets `last`.
  const final = last!;
  return {
    turnId,
    steps,
    completedActivity: final.completedActivity,
    state: final.state,
    output: final.output,
    pendingUserMessages: final.pendingUserMessages,
    plan: final.plan,
    inProgress: end ? undefined : inProgress,
    recordedEnd: end
      ? {
          type: end.type,
          stopReason: typeof end.data.stopReason === 'string' ? end.data.stopReason : undefined,
        }
      : undefined,
  };
}

function lastTurnId(
  messages: readonly Message[],
  events: readonly RuntimeEvent[],
): string | undefined {
  for (let index = events.length - 1; index >= 0; index--) {
    const event = events[index];
    if (event?.type === 'turn.started' && event.turnId) return event.turnId;
  }
  for (let index = messages.length - 1; index >= 0; index--) {
    const message = messages[index];
    if (message?.role === 'user' && message.turnId) return message.turnId;
  }
  return undefined;
}

function reasonOutput(message: Message): Record<string, unknown> {
  const metadata = message.metadata ?? {};
  const output: Record<string, unknown> = {
    success: true,
    messageId: message.id,
    text: messageText(message),
    toolCalls: messageToolCalls(message),
    replayed: true,
  };
  if (metadata.usage) output.usage = metadata.usage;
  if (typeof metadata.stopReason === 'string') output.stopReason = metadata.stopReason;
  if (typeof metadata.responseId === 'string') output.responseId = metadata.responseId;
  const blocker = metadata.blocker as { message?: string } | undefined;
  if (blocker) {
    output.success = false;
    output.error = {
      code: 'DEPENDENCY_BLOCKED',
      message: String(blocker.message ?? 'blocked'),
      details: { blocker },
    };
  }
  return output;
}

function actOutput(
  calls: readonly ToolCall[],
  results: ReadonlyMap<string, { isError: boolean; messageId: string }>,
  options: { waiting: boolean },
): Record<string, unknown> {
  return {
    results: calls
      .filter((call) => results.has(call.id))
      .map((call) => ({
        toolCallId: call.id,
        toolName: call.name,
        isError: results.get(call.id)?.isError ?? false,
        messageId: results.get(call.id)?.messageId,
        replayed: true,
        durationMs: 0,
      })),
    waitingForToolResults: options.waiting,
    blocked: false,
    callSignature: callSignature(calls),
  };
}

/** The same identity of a step's calls the act atom computes (names + stable JSON arguments). */
export function callSignature(calls: readonly ToolCall[]): string {
  return calls
    .map(
      (call) =>
        `${call.name}:${typeof call.arguments === 'string' ? call.arguments : stableStringify(call.arguments)}`,
    )
    .join('|');
}

function stableStringify(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'undefined';
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  return `{${keys.map((key) => `${JSON.stringify(key)}:${stableStringify(record[key])}`).join(',')}}`;
}

function summarizePlan(plan: RuntimeTurnPlan): string {
  switch (plan.kind) {
    case 'scheduleReason':
      return `call the model (iteration ${plan.state.iteration})`;
    case 'scheduleAct':
      return `run ${plan.act.toolCalls.map((call) => call.name).join(', ')}`;
    case 'waitForToolResults':
      return 'wait for client-side tool results';
    case 'complete':
      return `complete the turn: ${plan.outcome.stopReason}${plan.outcome.success ? '' : ' (failed)'}`;
  }
}
