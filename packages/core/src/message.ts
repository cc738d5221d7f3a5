import { z } from 'zod';
import { lazySchema } from './lazy-schema.js';

/** Schema of {@link ToolCall}. */
export const toolCallSchema = z.object({
  /** Provider-assigned id; a result refers back to it. */
  id: z.string().min(1),
  /** Tool name as the model wrote it (may name no tool). */
  name: z.string(),
  /**
   * Arguments as the model sent them: normally a JSON object. A string is raw text the driver
   * could not parse; the act step reports it to the model as a tool error.
   */
  arguments: z.unknown(),
});
/** A model's request to run one tool. */
export type ToolCall = z.infer<typeof toolCallSchema>;

/** Schema of {@link ContentPart}. */
export const contentPartSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text'), text: z.string() }),
  z.object({
    type: z.literal('image'),
    mediaType: z.string(),
    /** Base64 data, or a URL in `url`. */
    data: z.string().optional(),
    url: z.string().optional(),
  }),
  z.object({
    type: z.literal('tool_call'),
    id: z.string().min(1),
    name: z.string(),
    arguments: z.unknown(),
  }),
  z.object({
    type: z.literal('tool_result'),
    toolCallId: z.string().min(1),
    /** What the model sees: text, JSON-encoded when the tool returned structured data. */
    content: z.string(),
    isError: z.boolean().default(false),
  }),
  z.object({
    type: z.literal('reasoning'),
    /** The model's reasoning (thinking) text; empty for redacted reasoning. Never answer text. */
    text: z.string(),
    /**
     * The provider's signature over the text (Anthropic thinking blocks). Sent back unchanged;
     * a provider that checks signatures refuses reasoning without one.
     */
    signature: z.string().optional(),
    /**
     * Reasoning the provider withheld, as the opaque data it sent (Anthropic `redacted_thinking`).
     * Stored and sent back byte for byte; not meant for display.
     */
    redactedData: z.string().optional(),
  }),
]);
/** One part of a message's content. */
export type ContentPart = z.infer<typeof contentPartSchema>;
/** A text part. */
export type TextPart = Extract<ContentPart, { type: 'text' }>;
/** A tool call part. */
export type ToolCallPart = Extract<ContentPart, { type: 'tool_call' }>;
/** A tool result part. */
export type ToolResultPart = Extract<ContentPart, { type: 'tool_result' }>;
/**
 * A reasoning part of an agent message: what the model thought before answering, kept so it can
 * be sent back where the provider requires it (DeepSeek thinking-mode tool loops, Anthropic
 * thinking with tool use). Drivers that cannot send it back leave it out of their requests.
 */
export type ReasoningPart = Extract<ContentPart, { type: 'reasoning' }>;

/** Who wrote a message. */
export const messageRoleSchema = z.enum(['user', 'agent', 'tool_result']);
/** See {@link messageRoleSchema}. */
export type MessageRole = z.infer<typeof messageRoleSchema>;

/** Schema of {@link Message}. */
export const messageSchema = lazySchema(() =>
  z.object({
    id: z.string().min(1),
    sessionId: z.string().min(1),
    /** 1, 2, 3 … per session, no gaps. */
    seq: z.number().int().positive(),
    turnId: z.string().optional(),
    role: messageRoleSchema,
    content: z.array(contentPartSchema),
    /**
     * Deterministic key of the step that wrote this message. A second write with the same key in
     * the same session returns the first message instead of appending.
     */
    idempotencyKey: z.string().optional(),
    /** Free-form facts such as usage or stop reason. */
    metadata: z.record(z.string(), z.unknown()).optional(),
    createdAt: z.string(),
  }),
);
/** A persisted, append-only message. */
export type Message = z.infer<typeof messageSchema>;

/** Schema of {@link NewMessage}. */
export const newMessageSchema = lazySchema(() =>
  messageSchema
    .omit({ id: true, sessionId: true, seq: true, createdAt: true })
    .extend({ id: z.string().min(1).optional(), createdAt: z.string().optional() }),
);
/** A message before the store has given it a position. */
export type NewMessage = z.infer<typeof newMessageSchema>;

/** Schema of {@link InputMessage}. */
export const inputMessageSchema = z.object({
  role: z.literal('user').default('user'),
  content: z
    .array(contentPartSchema)
    .min(1, 'must have at least one part')
    .refine(
      (parts) => parts.every((part) => part.type === 'text' || part.type === 'image'),
      'user input may only hold text and image parts',
    ),
  metadata: z.record(z.string(), z.unknown()).optional(),
});

/** What a user sends to start a turn. Build one with `InputMessage.user(text)`. */
export type InputMessage = z.infer<typeof inputMessageSchema>;

/** Helpers for {@link InputMessage}. */
export const InputMessage = {
  /** The schema inputs are validated against. */
  schema: inputMessageSchema,
  /** A user message with one text part. */
  user(text: string): InputMessage {
    return { role: 'user', content: [{ type: 'text', text }] };
  },
} as const;

/** Concatenated text of a message's text parts. */
export function messageText(message: Pick<Message, 'content'>): string {
  let text = '';
  for (const part of message.content) if (part.type === 'text') text += part.text;
  return text;
}

/** The tool calls of a message, in order. */
export function messageToolCalls(message: Pick<Message, 'content'>): ToolCall[] {
  const calls: ToolCall[] = [];
  for (const part of message.content) {
    if (part.type === 'tool_call')
      calls.push({ id: part.id, name: part.name, arguments: part.arguments });
  }
  return calls;
}

/** The reasoning parts of a message, in order. */
export function messageReasoning(message: Pick<Message, 'content'>): ReasoningPart[] {
  return message.content.filter((part): part is ReasoningPart => part.type === 'reasoning');
}
