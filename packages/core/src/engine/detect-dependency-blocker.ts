import type { Agent, Harness, Session } from '../domain.js';

/** Why a session cannot run a turn. */
export interface DependencyBlocker {
  /** Stable code, for example `harness_missing` or `agent_disabled`. */
  code: 'harness_missing' | 'harness_disabled' | 'agent_missing' | 'agent_disabled';
  /** A message for the user, stored as the agent's answer of the failed turn. */
  message: string;
  /** The id of the missing or disabled definition. */
  dependencyId: string;
}

/**
 * Reports the first harness (of the chain) or agent the session depends on that is missing or
 * not active, or `null` when nothing blocks the session.
 *
 * @param harnessChain the chain as far as it could be loaded, root first (`null` when the
 *   session's own harness is missing)
 * @param agent the session's agent, or `null` when it has none or it is missing
 */
export function detectDependencyBlocker(
  session: Session,
  harnessChain: readonly Harness[] | null,
  agent: Agent | null,
): DependencyBlocker | null {
  if (!harnessChain || harnessChain.length === 0) {
    return {
      code: 'harness_missing',
      dependencyId: session.harnessId,
      message: `This session cannot run: its harness ${session.harnessId} no longer exists.`,
    };
  }
  for (const harness of harnessChain) {
    if (harness.status !== 'active') {
      return {
        code: 'harness_disabled',
        dependencyId: harness.id,
        message: `This session cannot run: its harness ${harness.name} (${harness.id}) is ${harness.status}.`,
      };
    }
  }
  if (session.agentId) {
    if (!agent) {
      return {
        code: 'agent_missing',
        dependencyId: session.agentId,
        message: `This session cannot run: its agent ${session.agentId} no longer exists.`,
      };
    }
    if (agent.status !== 'active') {
      return {
        code: 'agent_disabled',
        dependencyId: agent.id,
        message: `This session cannot run: its agent ${agent.name} (${agent.id}) is ${agent.status}.`,
      };
    }
  }
  return null;
}
