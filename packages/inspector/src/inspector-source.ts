import {
  type AssembledTurnContext,
  type AtomDependencies,
  assembleTurnContext,
  type Capability,
  CapabilityRegistry,
  DEFAULT_TURN_LIMITS,
  DriverRegistry,
  type FileStat,
  type Message,
  type RuntimeBackends,
  type RuntimeEvent,
  type Session,
  type SessionFileSystemFactory,
  type TurnLimits,
  turnContextWithoutSecrets,
} from '@everruns-ts/core';
import type { InProcessRuntime } from '@everruns-ts/runtime';
import { InMemorySessionFileSystemFactory } from '@everruns-ts/stores-memory';
import type { InspectorApprovals } from './inspector-approvals.js';

/** The contexts the model received in one turn, and where the inspector found them. */
export interface TurnContextView {
  /**
   * `recorded`: every reason step's context, captured as it was sent;
   * `runtime`: the last reason step's context, kept by the in-process runtime (`turnContext`);
   * `current`: nothing was kept for this turn (another process ran it, or it is still running),
   * so this is what the next reason step of the session would send (`loadContext`).
   */
  source: 'recorded' | 'runtime' | 'current';
  contexts: AssembledTurnContext[];
}

/** Options of {@link InspectorSource.subscribe}. */
export interface InspectorSubscribeOptions {
  /**
   * Only this session's events. The source may filter for itself (a bus that can then also
   * catch up what a lost connection missed); callers filter as well.
   */
  sessionId?: string;
}

/** Ends a subscription of {@link InspectorSource.subscribe}. */
export interface InspectorSubscription {
  (): void;
  /**
   * When present: resolves once events of other processes reach the listener (a cross-process
   * bus's `LISTEN` is in place), rejects when that failed.
   */
  readonly ready?: Promise<void>;
}

/** Where the inspector reads sessions from. */
export interface InspectorSource {
  /** Shown in the page header, for example `memory (demo)` or `postgres`. */
  readonly label: string;
  listSessions(): Promise<Session[]>;
  getSession(sessionId: string): Promise<Session | null>;
  messages(sessionId: string): Promise<Message[]>;
  events(sessionId: string): Promise<RuntimeEvent[]>;
  /** The context the next reason step of the session would send. */
  loadContext(sessionId: string): Promise<AssembledTurnContext>;
  /** What the model received in a turn. */
  turnContexts(sessionId: string, turnId: string): Promise<TurnContextView>;
  /** The session's workspace files (directories included), when the source can reach them. */
  listFiles?(sessionId: string): Promise<FileStat[]>;
  /** The session's turn limits, for replaying the host planner. */
  limits(): Readonly<TurnLimits>;
  /** Pending file approvals the page can decide. */
  readonly approvals?: InspectorApprovals;
  /**
   * Calls `listener` for every event of every session as it is emitted, ephemeral deltas
   * (`output.message.delta`, `reason.thinking.delta`, `tool.call.delta`) included; returns the
   * unsubscribe function. Absent when the source cannot follow sessions live (its event bus has
   * no `subscribe`, or would only report this process's own events while the turns run
   * elsewhere): the page then refreshes on demand.
   */
  subscribe?(
    listener: (event: RuntimeEvent) => void,
    options?: InspectorSubscribeOptions,
  ): InspectorSubscription;
  /** Releases what the source opened (a database pool). */
  close?(): Promise<void>;
}

/** Options of {@link backendsInspectorSource}. */
export interface BackendsInspectorSourceOptions {
  backends: RuntimeBackends;
  /**
   * The capabilities the sessions use, so their system prompts and tools can be assembled.
   * Sessions naming a capability that is not here show a `CAPABILITY_NOT_FOUND` error instead.
   */
  capabilities?: Capability[] | CapabilityRegistry;
  /** Where the sessions' workspaces live. Default: empty in-memory workspaces. */
  fileSystems?: SessionFileSystemFactory;
  limits?: Partial<TurnLimits>;
  label?: string;
  approvals?: InspectorApprovals;
  /**
   * Follow events live through `backends.events.subscribe` (see {@link InspectorSource.subscribe}).
   * Default true. Set false when the bus only delivers the events this process emits while the
   * sessions run in another process, so the page does not wait for events that never come.
   */
  follow?: boolean;
  /** Called by `close()`. */
  close?(): Promise<void>;
}

/**
 * Reads sessions straight from a set of stores, without a runtime: for sessions another process
 * (a durable host, a server) runs. Turn contexts are not recorded there, so a turn shows the
 * session's current context (`loadContext`).
 */
export function backendsInspectorSource(options: BackendsInspectorSourceOptions): InspectorSource {
  const registry =
    options.capabilities instanceof CapabilityRegistry
      ? options.capabilities
      : registryOf(options.capabilities ?? []);
  const limits: TurnLimits = { ...DEFAULT_TURN_LIMITS, ...options.limits };
  const dependencies: AtomDependencies = {
    backends: options.backends,
    capabilities: registry,
    drivers: new DriverRegistry(),
    fileSystems: options.fileSystems ?? new InMemorySessionFileSystemFactory(),
    limits,
  };
  return createSource({
    label: options.label ?? 'stores',
    backends: options.backends,
    fileSystems: dependencies.fileSystems,
    limits,
    loadContext: async (sessionId) =>
      turnContextWithoutSecrets(await assembleTurnContext(dependencies, sessionId)),
    keptContext: () => undefined,
    recorded: undefined,
    follow: options.follow !== false,
    ...(options.approvals ? { approvals: options.approvals } : {}),
    ...(options.close ? { close: options.close } : {}),
  });
}

/** Options of {@link runtimeInspectorSource}. */
export interface RuntimeInspectorSourceOptions {
  /**
   * Record the context of every reason step from now on (the runtime itself keeps only each
   * finished turn's last one). Hooks the runtime's `hostAdapter.onContextAssembled`. Default true.
   */
  captureContexts?: boolean;
  /** How many turns keep their recorded contexts. Default 200. */
  keepTurns?: number;
  label?: string;
  approvals?: InspectorApprovals;
}

/**
 * Reads the sessions of an in-process runtime: its stores, its workspaces, and the contexts its
 * turns sent to the model.
 */
export function runtimeInspectorSource(
  runtime: InProcessRuntime,
  options: RuntimeInspectorSourceOptions = {},
): InspectorSource {
  let recorded: Map<string, AssembledTurnContext[]> | undefined;
  if (options.captureContexts !== false) {
    const kept = new Map<string, AssembledTurnContext[]>();
    const keepTurns = options.keepTurns ?? 200;
    const adapter = runtime.hostAdapter;
    const previous = adapter.onContextAssembled;
    adapter.onContextAssembled = (context) => {
      previous?.(context);
      if (context.turnId === undefined) return;
      const list = kept.get(context.turnId) ?? [];
      list.push(turnContextWithoutSecrets(context));
      kept.set(context.turnId, list);
      if (kept.size > keepTurns) {
        const oldest = kept.keys().next().value;
        if (oldest !== undefined) kept.delete(oldest);
      }
    };
    recorded = kept;
  }
  return createSource({
    label: options.label ?? 'in-process runtime',
    backends: runtime.backends,
    fileSystems: runtime.hostAdapter.fileSystems,
    limits: runtime.hostAdapter.limits,
    loadContext: (sessionId) => runtime.loadContext(sessionId),
    keptContext: (turnId) => runtime.turnContext(turnId),
    recorded,
    follow: true,
    ...(options.approvals ? { approvals: options.approvals } : {}),
  });
}

interface SourceParts {
  label: string;
  backends: RuntimeBackends;
  fileSystems: SessionFileSystemFactory;
  limits: Readonly<TurnLimits>;
  loadContext(sessionId: string): Promise<AssembledTurnContext>;
  keptContext(turnId: string): AssembledTurnContext | undefined;
  recorded: Map<string, AssembledTurnContext[]> | undefined;
  follow: boolean;
  approvals?: InspectorApprovals;
  close?(): Promise<void>;
}

const MAX_LISTED_FILES = 500;

function createSource(parts: SourceParts): InspectorSource {
  const { backends } = parts;
  const source: InspectorSource = {
    label: parts.label,
    async listSessions() {
      const sessions = await backends.sessions.listSessions();
      return [...sessions].sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : -1));
    },
    getSession: (sessionId) => backends.sessions.getSession(sessionId),
    messages: (sessionId) => backends.messages.load(sessionId),
    events: (sessionId) => loadEvents(backends, sessionId),
    loadContext: (sessionId) => parts.loadContext(sessionId),
    async turnContexts(sessionId, turnId) {
      const captured = parts.recorded?.get(turnId);
      if (captured && captured.length > 0) return { source: 'recorded', contexts: captured };
      const kept = parts.keptContext(turnId);
      if (kept) return { source: 'runtime', contexts: [kept] };
      return { source: 'current', contexts: [await parts.loadContext(sessionId)] };
    },
    async listFiles(sessionId) {
      const fileSystem = await parts.fileSystems.forSession(sessionId);
      const files: FileStat[] = [];
      const queue = ['/'];
      while (queue.length > 0 && files.length < MAX_LISTED_FILES) {
        const directory = queue.shift() as string;
        for (const entry of await fileSystem.listDirectory(directory)) {
          files.push(entry);
          if (entry.isDirectory) queue.push(entry.path);
        }
      }
      return files.sort((a, b) => (a.path < b.path ? -1 : 1));
    },
    limits: () => parts.limits,
  };
  if (parts.approvals) Object.assign(source, { approvals: parts.approvals });
  const bus = backends.events;
  if (parts.follow && typeof bus.subscribe === 'function') {
    // Buses whose subscribe takes options (the PostgreSQL bus: a session filter) get them.
    const subscribe = bus.subscribe.bind(bus) as (
      listener: (event: RuntimeEvent) => void,
      options?: InspectorSubscribeOptions,
    ) => InspectorSubscription;
    source.subscribe = (listener, options) =>
      options?.sessionId === undefined
        ? subscribe(listener)
        : subscribe(listener, { sessionId: options.sessionId });
  }
  if (parts.close) source.close = parts.close;
  return source;
}

interface PagedEventBus {
  loadEvents(
    sessionId: string,
    page?: { afterSeq?: number; limit?: number },
  ): Promise<RuntimeEvent[]>;
}

async function loadEvents(backends: RuntimeBackends, sessionId: string): Promise<RuntimeEvent[]> {
  const bus = backends.events as RuntimeBackends['events'] & Partial<PagedEventBus>;
  if (typeof bus.loadEvents !== 'function') return bus.collectedEvents?.(sessionId) ?? [];
  const events: RuntimeEvent[] = [];
  for (;;) {
    const page = await bus.loadEvents(sessionId, {
      afterSeq: events.at(-1)?.seq ?? 0,
      limit: 1000,
    });
    events.push(...page);
    if (page.length < 1000) return events;
  }
}

function registryOf(capabilities: Capability[]): CapabilityRegistry {
  const registry = new CapabilityRegistry();
  for (const capability of capabilities) registry.register(capability);
  return registry;
}
