import { type Capability, defineCapability, defineTool, toolError } from '@everruns-ts/core';
import { z } from 'zod';

/** Id of the {@link sessionCapability}, as upstream (`session`). */
export const SESSION_CAPABILITY_ID = 'session';

/** Result of `get_session_info`. */
export interface SessionInfo {
  session_id: string;
  title: string | null;
  locale: string | null;
  status: string;
  harness_id: string;
  agent_id: string | null;
  tags: string[];
  created_at: string;
  updated_at: string;
}

const NO_SESSION_STORE =
  'The session store is not available to tools in this runtime (ToolContext.sessions is unset).';

const getSessionInfoTool = defineTool({
  name: 'get_session_info',
  description: 'Get the current session: id, title, locale, status, harness, agent and tags.',
  inputSchema: z.strictObject({}),
  idempotent: true,
  execute: async (_input, context) => {
    if (!context.sessions) return toolError(NO_SESSION_STORE);
    const session = await context.sessions.getSession(context.sessionId);
    if (!session) return toolError(`Session ${context.sessionId} does not exist.`);
    return {
      session_id: session.id,
      title: session.title ?? null,
      locale: session.locale ?? null,
      status: session.status,
      harness_id: session.harnessId,
      agent_id: session.agentId ?? null,
      tags: session.tags,
      created_at: session.createdAt,
      updated_at: session.updatedAt,
    } satisfies SessionInfo;
  },
});

const writeSessionTitleTool = defineTool({
  name: 'write_session_title',
  description: 'Set the title of the current session (a short summary of what it is about).',
  inputSchema: z.strictObject({
    title: z.string().trim().min(1).max(200).describe('The new title, at most 200 characters.'),
  }),
  idempotent: true,
  execute: async (input, context) => {
    if (!context.sessions) return toolError(NO_SESSION_STORE);
    const session = await context.sessions.updateSessionTitle(context.sessionId, input.title);
    return { session_id: session.id, title: session.title ?? input.title, updated: true };
  },
});

/**
 * The `session` capability: `get_session_info` and `write_session_title`, through the session
 * store the runtime puts on the tool context (`ToolContext.sessions`). No system-prompt text.
 */
export const sessionCapability: Capability = defineCapability({
  id: SESSION_CAPABILITY_ID,
  name: 'Session',
  description: 'Read and update the current session: its metadata and its title.',
  tools: [getSessionInfoTool, writeSessionTitleTool],
});
