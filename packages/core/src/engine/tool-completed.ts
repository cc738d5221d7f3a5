import type { EventRequest } from '../event.js';
import type { ToolCall } from '../message.js';

/** What a `tool.completed` event says, as {@link toolCompletedRequest} builds it. */
export interface ToolCompletion {
  sessionId: string;
  turnId: string;
  toolCallId: string;
  toolName: string;
  isError: boolean;
  /** The tool's own time up to its result, in ms (0 for a result a client submitted). */
  durationMs: number;
  /** The id of the stored `tool_result` message. */
  messageId: string;
  /** The act step's iteration, for a tool the runtime ran. */
  iteration?: number;
  /** The result as stored for the model, for a tool the runtime ran. */
  result?: string;
  /** Set for a result a client submitted (a client-side tool). */
  clientSide?: true;
}

/**
 * The `tool.completed` event request for a stored tool result: one shape for the tools the act
 * step runs and the results a client submits.
 */
export function toolCompletedRequest(completion: ToolCompletion): EventRequest {
  const data: Record<string, unknown> = {
    toolCallId: completion.toolCallId,
    toolName: completion.toolName,
    isError: completion.isError,
    durationMs: completion.durationMs,
    messageId: completion.messageId,
  };
  if (completion.iteration !== undefined) data.iteration = completion.iteration;
  if (completion.result !== undefined) data.result = completion.result;
  if (completion.clientSide) data.clientSide = true;
  return {
    type: 'tool.completed',
    sessionId: completion.sessionId,
    turnId: completion.turnId,
    data,
  };
}

/** The `tool.started` event request of a call the act step is about to run. */
export function toolStartedRequest(
  sessionId: string,
  turnId: string,
  call: Pick<ToolCall, 'id' | 'name'>,
  iteration: number,
): EventRequest {
  return {
    type: 'tool.started',
    sessionId,
    turnId,
    data: { toolCallId: call.id, toolName: call.name, iteration },
  };
}
