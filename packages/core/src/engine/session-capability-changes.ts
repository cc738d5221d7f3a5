import { z } from 'zod';
import type { Capability, CapabilityChange, SessionCapabilityChanges } from '../capability.js';
import type { CapabilityConfig, Session } from '../domain.js';
import { EverrunsError, errorMessage } from '../errors.js';
import { formatZodError } from '../format-zod-error.js';
import type { SessionSetupSnapshot, TurnSnapshot } from '../stores.js';
import { foldOverlay } from './fold-overlay.js';
import { resolveTurnSetup, sessionNotFoundError } from './resolve-turn-setup.js';
import type { AtomDependencies } from './turn-types.js';

// Live capability changes of a session: switch a capability on or off in the session's own
// capability list (persisted in the session store), report what the model will see differently,
// and emit `capability.activated` / `capability.deactivated`. A turn running on the session sees
// the change from its next reason step: the resolved setups of the session are dropped from the
// cache, and every step of a durable host resolves its setup afresh.
//
// Each change reads the session's list, then writes the new one. Changes of one session in one
// process run one at a time (queued by session id), so concurrent changes there compose (both
// land). Processes sharing the stores do not coordinate: two changes of one session made at the
// same moment in two processes are last-writer-wins (one of them may be lost).

/** Options of {@link activateSessionCapability} and {@link deactivateSessionCapability}. */
export interface CapabilityChangeOptions {
  /** The turn making the change (a tool's call), recorded on the event. */
  turnId?: string;
  /** Who asked: recorded on the event as `data.source`. Default `embedder`. */
  source?: string;
  /** Cancels the setup resolution (an MCP server's listing). */
  signal?: AbortSignal;
}

const idsSchema = z.object({
  sessionId: z.string().min(1, 'must not be empty'),
  capabilityId: z.string().min(1, 'must not be empty'),
});

/**
 * Switches a capability on for a session. Without `config`, an inherited capability the session
 * had switched off comes back with its inherited configuration, and one the session already has
 * is left as it is; with `config`, the session's entry carries it (replacing an inherited one's).
 * The configuration is checked by the capability's `configSchema` before anything is written.
 * Throws `INVALID_INPUT` (bad ids, a configuration the schema refuses or a configuration for a
 * capability without schema), `CAPABILITY_NOT_FOUND`, `SESSION_NOT_FOUND`, `DEPENDENCY_BLOCKED`.
 * Changes of one session in this process run one at a time; across processes sharing the stores
 * they are last-writer-wins.
 */
export async function activateSessionCapability(
  dependencies: AtomDependencies,
  sessionId: string,
  capabilityId: string,
  config?: unknown,
  options: CapabilityChangeOptions = {},
): Promise<CapabilityChange> {
  parseIds(sessionId, capabilityId);
  const capability = dependencies.capabilities.get(capabilityId);
  if (!capability) throw capabilityNotFound(capabilityId);
  if (config !== undefined) checkConfig(capability, config);
  return oneAtATime(sessionId, async () => {
    const setup = await loadSetup(dependencies, sessionId);
    return applyChange(
      dependencies,
      setup,
      capabilityId,
      'activated',
      activatedList(setup, capabilityId, config),
      options,
    );
  });
}

/** The session's own capability list once `capabilityId` is switched on (see above). */
function activatedList(
  setup: SessionSetupSnapshot,
  capabilityId: string,
  config: unknown,
): CapabilityConfig[] {
  const own = setup.session.capabilities;
  let next: CapabilityConfig[];
  const current = own.find((entry) => entry.id === capabilityId);
  if (config !== undefined) {
    next = [...own.filter((entry) => entry.id !== capabilityId), { id: capabilityId, config }];
  } else if (current && current.disabled !== true) {
    next = own;
  } else {
    next = own.filter((entry) => entry.id !== capabilityId);
    if (!foldIncludes(setup, next, capabilityId)) next = [...next, { id: capabilityId }];
  }
  return next;
}

/**
 * Switches a capability off for a session: the session's own entry goes, and when the harness or
 * agent switches it on, a `{ id, disabled: true }` entry switches it off for this session. A
 * capability that another active capability depends on stays resolved as that one's dependency
 * (the change then reports no tool removed). Throws `INVALID_INPUT`, `CAPABILITY_NOT_FOUND` (an
 * id neither registered nor in the session's list), `SESSION_NOT_FOUND`, `DEPENDENCY_BLOCKED`.
 * One at a time per session in this process, as {@link activateSessionCapability}.
 */
export async function deactivateSessionCapability(
  dependencies: AtomDependencies,
  sessionId: string,
  capabilityId: string,
  options: CapabilityChangeOptions = {},
): Promise<CapabilityChange> {
  parseIds(sessionId, capabilityId);
  return oneAtATime(sessionId, async () => {
    const setup = await loadSetup(dependencies, sessionId);
    const own = setup.session.capabilities;
    if (
      !dependencies.capabilities.has(capabilityId) &&
      !own.some((entry) => entry.id === capabilityId)
    ) {
      throw capabilityNotFound(capabilityId);
    }
    let next = own.filter((entry) => entry.id !== capabilityId);
    if (foldIncludes(setup, next, capabilityId)) {
      next = [...next, { id: capabilityId, disabled: true }];
    }
    return applyChange(dependencies, setup, capabilityId, 'deactivated', next, options);
  });
}

/** The change of each session running in this process now (the tail of its queue). */
const changesInFlight = new Map<string, Promise<void>>();

/** Runs `task` once the changes of `sessionId` queued before it in this process have ended. */
function oneAtATime<T>(sessionId: string, task: () => Promise<T>): Promise<T> {
  const previous = changesInFlight.get(sessionId) ?? Promise.resolve();
  const run = previous.then(task);
  const done = run.then(
    () => undefined,
    () => undefined,
  );
  changesInFlight.set(sessionId, done);
  void done.then(() => {
    if (changesInFlight.get(sessionId) === done) changesInFlight.delete(sessionId);
  });
  return run;
}

/** {@link SessionCapabilityChanges} of a session, bound to a turn (for a tool's context). */
export function sessionCapabilityChanges(
  dependencies: AtomDependencies,
  sessionId: string,
  options: CapabilityChangeOptions = {},
): SessionCapabilityChanges {
  return {
    activate: (capabilityId, config) =>
      activateSessionCapability(dependencies, sessionId, capabilityId, config, options),
    deactivate: (capabilityId) =>
      deactivateSessionCapability(dependencies, sessionId, capabilityId, options),
  };
}

function parseIds(sessionId: string, capabilityId: string): void {
  const parsed = idsSchema.safeParse({ sessionId, capabilityId });
  if (!parsed.success) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `Invalid capability change: ${formatZodError(parsed.error)}`,
    });
  }
}

function capabilityNotFound(capabilityId: string): EverrunsError {
  return new EverrunsError({
    code: 'CAPABILITY_NOT_FOUND',
    message: `Capability ${capabilityId} is not registered`,
    details: { capabilityId },
  });
}

function checkConfig(capability: Capability, config: unknown): void {
  if (!capability.configSchema) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `Capability ${capability.id} takes no configuration`,
      details: { capabilityId: capability.id },
    });
  }
  const parsed = capability.configSchema.safeParse(config);
  if (!parsed.success) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `Invalid configuration of capability ${capability.id}: ${formatZodError(parsed.error)}`,
      details: { capabilityId: capability.id },
    });
  }
}

async function loadSetup(
  dependencies: AtomDependencies,
  sessionId: string,
): Promise<SessionSetupSnapshot> {
  const { backends } = dependencies;
  if (backends.loadSessionSetup) {
    const loaded = await backends.loadSessionSetup(sessionId);
    if (!loaded) throw sessionNotFoundError(sessionId);
    return loaded;
  }
  const session = await backends.sessions.getSession(sessionId);
  if (!session) throw sessionNotFoundError(sessionId);
  let harnessChain: SessionSetupSnapshot['harnessChain'] = null;
  try {
    harnessChain = await backends.harnesses.getHarnessChain(session.harnessId);
  } catch (error) {
    if (!EverrunsError.hasCode(error, 'HARNESS_NOT_FOUND')) throw error;
  }
  const agent = session.agentId ? await backends.agents.getAgent(session.agentId) : null;
  return { session, harnessChain, agent };
}

function foldIncludes(
  setup: SessionSetupSnapshot,
  capabilities: CapabilityConfig[],
  capabilityId: string,
): boolean {
  const session: Session = { ...setup.session, capabilities };
  return foldOverlay(setup.harnessChain ?? [], setup.agent, session).capabilities.some(
    (entry) => entry.id === capabilityId,
  );
}

function same(left: CapabilityConfig, right: CapabilityConfig | undefined): boolean {
  return JSON.stringify(left) === JSON.stringify(right);
}

/** What the model sees of a setup: tool names and capability ids with a prompt section. */
async function describe(
  dependencies: AtomDependencies,
  setup: SessionSetupSnapshot,
  signal: AbortSignal | undefined,
): Promise<{ tools: string[]; prompts: string[] }> {
  const snapshot: TurnSnapshot = { ...setup, messages: [] };
  const resolved = await resolveTurnSetup(
    dependencies,
    setup.session.id,
    undefined,
    snapshot,
    signal,
  );
  const prompts: string[] = [];
  for (const { capability, config } of resolved.capabilities) {
    let text: string | null | undefined;
    if (typeof capability.systemPrompt === 'function') {
      try {
        text = await capability.systemPrompt({
          session: resolved.overlay.session,
          fileSystem: resolved.fileSystem,
          config,
          ...(signal ? { signal } : {}),
        });
      } catch (error) {
        throw new EverrunsError({
          code: 'CAPABILITY_FAILED',
          message: `Capability ${capability.id} failed to build its system prompt: ${errorMessage(error)}`,
          details: { capabilityId: capability.id },
          cause: error,
        });
      }
    } else text = capability.systemPrompt;
    if (text?.trim()) prompts.push(capability.id);
  }
  return { tools: resolved.toolSpecs.map((spec) => spec.name), prompts };
}

async function applyChange(
  dependencies: AtomDependencies,
  setup: SessionSetupSnapshot,
  capabilityId: string,
  action: CapabilityChange['action'],
  next: CapabilityConfig[],
  options: CapabilityChangeOptions,
): Promise<CapabilityChange> {
  const sessionId = setup.session.id;
  const own = setup.session.capabilities;
  const unchanged =
    next.length === own.length && next.every((entry, index) => same(entry, own[index]));
  const before = await describe(dependencies, setup, options.signal);
  // Resolving the new list first refuses a change the next turn could not run with.
  const after = unchanged
    ? before
    : await describe(
        dependencies,
        { ...setup, session: { ...setup.session, capabilities: next } },
        options.signal,
      );
  const change: CapabilityChange = {
    sessionId,
    capabilityId,
    action,
    changed: !unchanged,
    toolsAdded: after.tools.filter((name) => !before.tools.includes(name)),
    toolsRemoved: before.tools.filter((name) => !after.tools.includes(name)),
    promptSectionsAdded: after.prompts.filter((id) => !before.prompts.includes(id)),
    promptSectionsRemoved: before.prompts.filter((id) => !after.prompts.includes(id)),
    capabilities: unchanged ? own : next,
  };
  if (unchanged) return change;
  const stored = await dependencies.backends.sessions.updateSessionCapabilities(sessionId, next);
  change.capabilities = stored.capabilities;
  // Every setup resolved for this session's turns is stale: the next reason step resolves anew.
  for (const key of [...(dependencies.setupCache?.keys() ?? [])]) {
    if (key.startsWith(`${sessionId}/`)) dependencies.setupCache?.delete(key);
  }
  const entry = next.find((candidate) => candidate.id === capabilityId);
  await dependencies.backends.events.emit({
    type: action === 'activated' ? 'capability.activated' : 'capability.deactivated',
    sessionId,
    ...(options.turnId ? { turnId: options.turnId } : {}),
    data: {
      capabilityId,
      source: options.source ?? 'embedder',
      // The configuration itself stays out of the event log (it may hold credentials).
      configured: entry?.config !== undefined,
      toolsAdded: change.toolsAdded,
      toolsRemoved: change.toolsRemoved,
      promptSectionsAdded: change.promptSectionsAdded,
      promptSectionsRemoved: change.promptSectionsRemoved,
    },
  });
  return change;
}
