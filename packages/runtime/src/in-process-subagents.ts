import {
  EverrunsError,
  errorMessage,
  type InputMessage,
  newId,
  type RuntimeBackends,
  type Session,
  type SessionFileSystemFactory,
  type SubagentCallScope,
  type SubagentHost,
  type SubagentRunRequest,
  type SubagentRunResult,
  subagentLinkKey,
  type TurnSetup,
} from '@everruns-ts/core';
import { createAndSeedSession } from './create-and-seed-session.js';
import type { TurnResult } from './turn-step.js';

/** The parent's storage key under which a tool call's child session id is kept (from core). */
export { subagentLinkKey };

/** What {@link InProcessSubagents} needs of its runtime. */
export interface InProcessSubagentsOptions {
  backends: RuntimeBackends;
  fileSystems: SessionFileSystemFactory;
  /** Resolved setups of running turns (`sessionId/turnId`), for the model the parent uses. */
  setupCache?: Map<string, TurnSetup>;
  /** Runs one turn in a session (the runtime's `runTurn`). */
  runTurn(sessionId: string, input: InputMessage, signal: AbortSignal): Promise<TurnResult>;
}

/**
 * The in-process {@link SubagentHost}: creates a child session linked to its parent
 * (`parentSessionId`; `workspaceSessionId` when it shares the parent's files), once per tool call
 * (the link is kept in the parent's session storage under {@link subagentLinkKey}, so a re-run of
 * the call resumes the same child), runs one turn in it with the call's signal, and emits
 * `subagent.started` / `subagent.completed` on the parent.
 */
export class InProcessSubagents implements SubagentHost {
  readonly #options: InProcessSubagentsOptions;

  constructor(options: InProcessSubagentsOptions) {
    this.#options = options;
  }

  async children(sessionId: string): Promise<Session[]> {
    const sessions = await this.#options.backends.sessions.listSessions();
    return sessions.filter((session) => session.parentSessionId === sessionId);
  }

  async run(scope: SubagentCallScope, request: SubagentRunRequest): Promise<SubagentRunResult> {
    const { backends } = this.#options;
    const key = subagentLinkKey(scope.turnId, scope.toolCallId);
    let childId = await backends.storage.getValue(scope.sessionId, key);
    const resumed = childId !== null;
    if (childId === null) {
      const child = await this.#createChild(scope, request);
      let claimed = true;
      if (backends.storage.setValueIfAbsent) {
        claimed = await backends.storage.setValueIfAbsent(scope.sessionId, key, child.id);
      } else {
        await backends.storage.setValue(scope.sessionId, key, child.id);
      }
      childId = claimed ? child.id : await backends.storage.getValue(scope.sessionId, key);
      if (childId === null) throw new Error(`The link of subagent ${child.id} was lost`);
    }
    const child = await backends.sessions.getSession(childId);
    if (!child) {
      throw new EverrunsError({
        code: 'SESSION_NOT_FOUND',
        message: `Subagent session ${childId} does not exist`,
        details: { sessionId: childId },
      });
    }
    await backends.events.emit({
      type: 'subagent.started',
      sessionId: scope.sessionId,
      turnId: scope.turnId,
      data: {
        toolCallId: scope.toolCallId,
        childSessionId: child.id,
        name: request.name,
        resumed,
        ...(child.agentId ? { agentId: child.agentId } : {}),
        ...(request.metadata ? { metadata: request.metadata } : {}),
      },
    });
    let result: TurnResult;
    try {
      result = await this.#options.runTurn(
        child.id,
        {
          role: 'user',
          content: [{ type: 'text', text: request.instructions }],
          metadata: {
            subagent: { parentSessionId: scope.sessionId, toolCallId: scope.toolCallId },
          },
        },
        scope.signal,
      );
    } catch (error) {
      await backends.events.emit({
        type: 'subagent.completed',
        sessionId: scope.sessionId,
        turnId: scope.turnId,
        data: {
          toolCallId: scope.toolCallId,
          childSessionId: child.id,
          success: false,
          stopReason: EverrunsError.hasCode(error, 'ABORTED') ? 'aborted' : 'error',
          error: {
            code: EverrunsError.isInstance(error) ? error.code : 'INTERNAL',
            message: errorMessage(error),
          },
        },
      });
      throw error;
    }
    const outcome: SubagentRunResult = {
      sessionId: child.id,
      turnId: result.turnId,
      response: result.response ?? '',
      success: result.success,
      stopReason: result.stopReason,
      iterations: result.iterations,
      ...(result.error
        ? { error: { code: result.error.code, message: result.error.message } }
        : {}),
      resumed,
    };
    await backends.events.emit({
      type: 'subagent.completed',
      sessionId: scope.sessionId,
      turnId: scope.turnId,
      data: {
        toolCallId: scope.toolCallId,
        childSessionId: child.id,
        childTurnId: result.turnId,
        success: outcome.success,
        stopReason: outcome.stopReason,
        iterations: outcome.iterations,
        ...(outcome.error ? { error: outcome.error } : {}),
      },
    });
    return outcome;
  }

  async #createChild(scope: SubagentCallScope, request: SubagentRunRequest): Promise<Session> {
    const { backends, fileSystems, setupCache } = this.#options;
    const parent = await backends.sessions.getSession(scope.sessionId);
    if (!parent) {
      throw new EverrunsError({
        code: 'SESSION_NOT_FOUND',
        message: `Session ${scope.sessionId} does not exist`,
        details: { sessionId: scope.sessionId },
      });
    }
    const parentModel =
      setupCache?.get(`${scope.sessionId}/${scope.turnId}`)?.overlay.modelId ?? parent.modelId;
    const modelId = request.modelId ?? (request.inheritModel ? parentModel : undefined);
    const session: Session = {
      id: newId('session'),
      harnessId: parent.harnessId,
      parentSessionId: parent.id,
      title: request.name,
      tags: [],
      capabilities: request.capabilities ?? [],
      initialFiles: [],
      status: 'started',
      createdAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(),
      ...(request.agentId ? { agentId: request.agentId } : {}),
      ...(request.systemPrompt ? { systemPrompt: request.systemPrompt } : {}),
      ...(modelId ? { modelId } : {}),
      ...(request.maxIterations ? { maxIterations: request.maxIterations } : {}),
      ...(parent.locale ? { locale: parent.locale } : {}),
      ...(request.inheritWorkspace
        ? { workspaceSessionId: parent.workspaceSessionId ?? parent.id }
        : {}),
    };
    if (request.agentId && !(await backends.agents.getAgent(request.agentId))) {
      throw new EverrunsError({
        code: 'AGENT_NOT_FOUND',
        message: `Agent ${request.agentId} does not exist`,
        details: { agentId: request.agentId },
      });
    }
    // A child sharing its parent's workspace finds the parent's files there: nothing is seeded.
    if (request.inheritWorkspace) return backends.sessions.createSession(session);
    return createAndSeedSession(backends, fileSystems, session, []);
  }
}

/**
 * A {@link SessionFileSystemFactory} that gives a session linked to another's workspace
 * (`workspaceSessionId`, a subagent sharing its parent's files) that workspace. The link is read
 * once per session and remembered (it never changes).
 */
export function workspaceLinkingFileSystems(
  fileSystems: SessionFileSystemFactory,
  sessions: RuntimeBackends['sessions'],
): SessionFileSystemFactory {
  const workspaceOf = new Map<string, string>();
  const resolve = async (sessionId: string): Promise<string> => {
    const session = await sessions.getSession(sessionId);
    if (!session) return sessionId;
    const workspace = session.workspaceSessionId ?? sessionId;
    workspaceOf.set(sessionId, workspace);
    return workspace;
  };
  return {
    // A known session goes straight to the factory (no async frames on the turn's path).
    forSession: (sessionId) => {
      const known = workspaceOf.get(sessionId);
      if (known !== undefined) return fileSystems.forSession(known);
      return resolve(sessionId).then((workspace) => fileSystems.forSession(workspace));
    },
    ...(fileSystems.forToolCall
      ? {
          forToolCall: (workspace, scope) =>
            fileSystems.forToolCall?.(workspace, scope) ?? workspace,
        }
      : {}),
  };
}
