import {
  type Capability,
  defineCapability,
  defineTool,
  EverrunsError,
  toolError,
} from '@everruns-ts/core';
import { z } from 'zod';

/** Id of the {@link capabilityRequestsCapability}. */
export const CAPABILITY_REQUESTS_CAPABILITY_ID = 'capability_requests';

/** Schema of {@link CapabilityRequestsConfig}. */
export const capabilityRequestsConfigSchema = z.strictObject({
  /** Capability ids the model may switch on for its session; nothing else. */
  allowed: z.array(z.string().min(1)).min(1, 'name at least one capability id'),
  /** Whether the model may also switch those capabilities off again. Default false. */
  allowDeactivate: z.boolean().default(false),
});

/** The embedder's allow-list for `request_capability`. */
export type CapabilityRequestsConfig = z.output<typeof capabilityRequestsConfigSchema>;

/** Result of `request_capability`. */
export interface CapabilityRequestResult {
  capability_id: string;
  action: 'activate' | 'deactivate';
  /** False when the capability was already so. */
  changed: boolean;
  tools_added: string[];
  tools_removed: string[];
  note: string;
}

const requestCapabilityTool = defineTool({
  name: 'request_capability',
  description:
    'Switch one of the allowed capabilities on (or, when allowed, off) for this session. Its tools and instructions are available from your next step.',
  inputSchema: z.strictObject({
    capability_id: z.string().min(1).describe('The id of an allowed capability.'),
    action: z
      .enum(['activate', 'deactivate'])
      .default('activate')
      .describe('activate (default) or deactivate.'),
  }),
  execute: async (input, context) => {
    const config = context.config as CapabilityRequestsConfig;
    if (!config.allowed.includes(input.capability_id)) {
      return toolError(
        `Capability ${input.capability_id} may not be requested; allowed: ${config.allowed.join(', ')}.`,
      );
    }
    if (input.action === 'deactivate' && !config.allowDeactivate) {
      return toolError('Switching capabilities off is not allowed in this session.');
    }
    if (input.capability_id === CAPABILITY_REQUESTS_CAPABILITY_ID) {
      return toolError(`${CAPABILITY_REQUESTS_CAPABILITY_ID} cannot change itself.`);
    }
    const changes = context.capabilityChanges;
    if (!changes) {
      return toolError(
        'This runtime does not let tools change capabilities (ToolContext.capabilityChanges is unset).',
      );
    }
    try {
      const change =
        input.action === 'activate'
          ? await changes.activate(input.capability_id)
          : await changes.deactivate(input.capability_id);
      return {
        capability_id: input.capability_id,
        action: input.action,
        changed: change.changed,
        tools_added: change.toolsAdded,
        tools_removed: change.toolsRemoved,
        note: change.changed
          ? 'The change applies from your next step.'
          : `The capability was already ${input.action === 'activate' ? 'on' : 'off'}.`,
      } satisfies CapabilityRequestResult;
    } catch (error) {
      // A capability the platform lacks or a session it cannot run with is the model's to hear.
      if (error instanceof EverrunsError) return toolError(error.message);
      throw error;
    }
  },
});

/**
 * The opt-in `capability_requests` capability: a `request_capability` tool through which the model
 * switches on (and, with `allowDeactivate`, off) capabilities of its own session, limited to the
 * ids the embedder lists in `allowed` (required). The change goes through the runtime's live
 * capability changes (`ToolContext.capabilityChanges`): persisted on the session, emitted as
 * `capability.activated` / `capability.deactivated` (source `tool:request_capability`), and seen
 * from the turn's next reason step.
 */
export const capabilityRequestsCapability: Capability<CapabilityRequestsConfig> =
  defineCapability<CapabilityRequestsConfig>({
    id: CAPABILITY_REQUESTS_CAPABILITY_ID,
    name: 'Capability Requests',
    description:
      'Lets the agent switch on capabilities of its session from an allow-list the embedder sets.',
    configSchema: capabilityRequestsConfigSchema as z.ZodType<CapabilityRequestsConfig>,
    systemPrompt: ({ config }) =>
      [
        `You can switch on these capabilities for this session with request_capability when a task needs them: ${config.allowed.join(', ')}.`,
        config.allowDeactivate
          ? 'Switch one off again (action "deactivate") when you no longer need it.'
          : '',
        'Their tools appear from your next step.',
      ]
        .filter(Boolean)
        .join('\n'),
    tools: [requestCapabilityTool],
  });
