import { type AtomDependencies, EverrunsError } from '@everruns-ts/core';
import { SessionStorageToolCallJournal, type ToolCallJournal } from './tool-call-journal.js';

/**
 * What a host supplies to run the phases of a turn (upstream's `RuntimeHostAdapter`). The
 * in-process runtime builds one (`InProcessRuntime.hostAdapter`); a durable host builds its own
 * from the same pieces, or starts from the runtime's and overrides parts with
 * {@link withHostOverrides}.
 *
 * Required: the stores, the registries, the session file systems, the event bus (inside
 * `backends`) and the limits. A host may override, each optional:
 * - `organizationId`: the tenant (upstream's `org_id`), carried into every activity's tool
 *   context (`ToolContext.organizationId`; the memory tools keep organisations apart by it);
 * - `buildToolRegistry(scope)`: the tools a turn offers, per harness, agent and session;
 * - `hostHooks`: `beforeModelCall` / `beforeToolCall` / `afterToolCall` hooks run for every
 *   session after the capabilities' own (upstream's post-tool hooks);
 * - `budgetChecker(scope)`: asked before every model call; an exhausted budget ends the turn
 *   with `budget_exhausted`;
 * - `mcp`, `subagents`, `schedules`, `prices`, `onContextAssembled`: the resolvers of MCP tools,
 *   child sessions and scheduled messages, the prices and the context observer;
 * - `toolCallJournal`: where tool calls are recorded as started.
 */
export interface RuntimeHostAdapter extends AtomDependencies {
  /**
   * Where tool calls are recorded as started before they run. Defaults to a
   * {@link SessionStorageToolCallJournal} on `backends.storage`.
   */
  toolCallJournal?: ToolCallJournal;
}

/** The parts of a {@link RuntimeHostAdapter} a host overrides (see {@link withHostOverrides}). */
export type RuntimeHostOverrides = Partial<
  Pick<
    RuntimeHostAdapter,
    | 'organizationId'
    | 'buildToolRegistry'
    | 'hostHooks'
    | 'budgetChecker'
    | 'mcp'
    | 'subagents'
    | 'schedules'
    | 'prices'
    | 'onContextAssembled'
    | 'toolCallJournal'
  >
>;

/**
 * A copy of `adapter` with the host's overrides. The copy gets its own turn-setup cache, since
 * the tools and hooks of its turns differ from the original's; everything else (stores,
 * registries, file systems) is shared.
 */
export function withHostOverrides(
  adapter: RuntimeHostAdapter,
  overrides: RuntimeHostOverrides,
): RuntimeHostAdapter {
  const copy: RuntimeHostAdapter = { ...adapter, setupCache: new Map() };
  for (const [key, value] of Object.entries(overrides)) {
    if (value !== undefined) (copy as unknown as Record<string, unknown>)[key] = value;
  }
  return copy;
}

/**
 * The adapter a multi-tenant host uses for one organisation's turns: `adapter` with
 * `organizationId` set (see {@link withHostOverrides}). Throws `INVALID_INPUT` for an empty id.
 */
export function forOrganization(
  adapter: RuntimeHostAdapter,
  organizationId: string,
): RuntimeHostAdapter {
  if (typeof organizationId !== 'string' || organizationId.trim() === '') {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: 'organizationId must be a non-empty string',
    });
  }
  return withHostOverrides(adapter, { organizationId });
}

/** The journal an adapter uses: its own, or one on its session storage. */
export function toolCallJournalOf(adapter: RuntimeHostAdapter): ToolCallJournal {
  return adapter.toolCallJournal ?? new SessionStorageToolCallJournal(adapter.backends.storage);
}
