import {
  type AfterToolCallContext,
  type AfterToolCallResult,
  type Capability,
  defineCapability,
} from '@everruns-ts/core';
import { z } from 'zod';

/** Id of the {@link toolOutputPersistenceCapability}, as upstream (`tool_output_persistence`). */
export const TOOL_OUTPUT_PERSISTENCE_CAPABILITY_ID = 'tool_output_persistence';

/** The workspace directory the full outputs are written to. */
export const TOOL_OUTPUTS_DIRECTORY = '/.tool-outputs';

/** Default of `thresholdChars`: upstream's output budget of 16 KiB. */
export const DEFAULT_THRESHOLD_CHARS = 16 * 1024;
/** Default of `headChars`. */
export const DEFAULT_HEAD_CHARS = 4096;
/** Default of `tailChars`. */
export const DEFAULT_TAIL_CHARS = 2048;

/** Configuration of `tool_output_persistence` (all optional). */
export const toolOutputPersistenceConfigSchema = z
  .strictObject({
    /**
     * A result longer than this many characters (UTF-16 code units) is written to the workspace
     * and replaced by a preview. Default 16,384 (upstream's 16 KiB budget).
     */
    thresholdChars: z.number().int().min(100).max(1_000_000_000).optional(),
    /** Characters of the output's start shown in the preview. Default 4,096. */
    headChars: z.number().int().min(0).max(1_000_000).optional(),
    /** Characters of the output's end shown in the preview. Default 2,048. */
    tailChars: z.number().int().min(0).max(1_000_000).optional(),
  })
  .refine(
    (config) =>
      (config.headChars ?? DEFAULT_HEAD_CHARS) + (config.tailChars ?? DEFAULT_TAIL_CHARS) <
      (config.thresholdChars ?? DEFAULT_THRESHOLD_CHARS),
    { message: 'headChars + tailChars must be less than thresholdChars', path: ['headChars'] },
  );

/** Configuration of `tool_output_persistence`. */
export type ToolOutputPersistenceConfig = z.infer<typeof toolOutputPersistenceConfigSchema>;

/**
 * The workspace path of a call's full output: `/.tool-outputs/<id>.txt`, where `<id>` keeps the
 * letters, digits, `-` and `_` of the tool call id (as upstream); an id that loses characters, or
 * is longer than 100, gets a hash of the whole id appended so two ids never share a file.
 */
export function toolOutputPath(toolCallId: string): string {
  const kept = toolCallId.replace(/[^A-Za-z0-9_-]/g, '');
  const name =
    kept === toolCallId && kept.length > 0 && kept.length <= 100
      ? kept
      : `${kept.slice(0, 80) || 'call'}-${fnv1a(toolCallId)}`;
  return `${TOOL_OUTPUTS_DIRECTORY}/${name}.txt`;
}

/** FNV-1a over the UTF-16 code units, as 8 hex digits. */
function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index++) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, '0');
}

/** What {@link toolOutputPreview} describes. */
export interface ToolOutputPreviewInput {
  /** The whole output. */
  content: string;
  /** Where it was written. */
  path: string;
  /** Its size in the workspace, in bytes. */
  sizeBytes: number;
  headChars: number;
  tailChars: number;
}

/**
 * The text the model gets instead of a persisted output: a first line naming the file, its size
 * (characters, bytes, lines) and how to read it with `read_file` (0-based line `offset`, `limit`
 * in lines), then the output's first `headChars` and last `tailChars` characters around a marker
 * that names the lines left out. Cuts never split a surrogate pair.
 */
export function toolOutputPreview(input: ToolOutputPreviewInput): string {
  const { content, path } = input;
  let headEnd = Math.min(input.headChars, content.length);
  if (headEnd > 0 && isHighSurrogate(content.charCodeAt(headEnd - 1))) headEnd--;
  let tailStart = Math.max(headEnd, content.length - input.tailChars);
  if (tailStart < content.length && isLowSurrogate(content.charCodeAt(tailStart))) tailStart++;
  const head = content.slice(0, headEnd);
  const tail = content.slice(tailStart);
  const totalLines = countLines(content);
  // 1-based lines: the omitted part starts on the line where the head stops and ends on the line
  // where the tail starts.
  const firstOmitted = countNewlines(head) + 1;
  const lastOmitted = totalLines - countNewlines(tail);
  const omitted = tailStart - headEnd;
  return (
    `[tool_output_persistence: the full output (${content.length} characters, ${input.sizeBytes} bytes, ` +
    `${totalLines} lines) is saved in the workspace at ${path}. Shown here: its first ${head.length} ` +
    `and last ${tail.length} characters. Read the rest with read_file: path "${path}", offset = ` +
    'first line to read (0-based), limit = number of lines.]\n' +
    `${head}\n…[${omitted} characters not shown: lines ${firstOmitted} to ${lastOmitted} ` +
    `(read_file offset ${firstOmitted - 1})]…\n${tail}`
  );
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;
const isLowSurrogate = (code: number) => code >= 0xdc00 && code <= 0xdfff;

function countNewlines(text: string): number {
  let count = 0;
  for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', at + 1)) count++;
  return count;
}

/** Lines as a file reader counts them: a final newline does not start another line. */
function countLines(text: string): number {
  if (text.length === 0) return 0;
  return countNewlines(text) + (text.endsWith('\n') ? 0 : 1);
}

/** The message prefixed to an output that could not be saved (the runtime then cuts it). */
function notSavedNotice(path: string, length: number, error: unknown): string {
  const reason = error instanceof Error ? error.message : String(error);
  return `[tool_output_persistence: the full output (${length} characters) could not be saved to ${path} (${reason}); it is cut to the runtime's result limit below and the rest is lost.]\n`;
}

async function persistLargeOutput(
  context: AfterToolCallContext<ToolOutputPersistenceConfig | undefined>,
): Promise<AfterToolCallResult | undefined> {
  const config = context.config ?? {};
  const threshold = config.thresholdChars ?? DEFAULT_THRESHOLD_CHARS;
  const { content } = context;
  if (content.length <= threshold) return undefined;
  const path = toolOutputPath(context.toolCallId);
  let sizeBytes: number;
  try {
    const stat = await context.fileSystem.writeFile(path, content);
    sizeBytes = stat.size;
  } catch (error) {
    if (context.signal?.aborted) throw error;
    return { content: notSavedNotice(path, content.length, error) + content };
  }
  return {
    content: toolOutputPreview({
      content,
      path,
      sizeBytes,
      headChars: config.headChars ?? DEFAULT_HEAD_CHARS,
      tailChars: config.tailChars ?? DEFAULT_TAIL_CHARS,
    }),
  };
}

/**
 * The `tool_output_persistence` capability (upstream's id). Its `afterToolCall` hook sees every
 * tool result whole (secrets already redacted, before the runtime's `maxToolResultChars` cut); a
 * result longer than `thresholdChars` (default 16,384) is written to the session workspace at
 * `/.tool-outputs/<toolCallId>.txt` (see {@link toolOutputPath}; the same call id writes the same
 * file) and the model gets {@link toolOutputPreview} instead: the path, the size, the first
 * `headChars` and last `tailChars` characters and the lines left out, to read with the file tools
 * (`read_file` of `session_file_system`, which this capability switches on). Error results are
 * treated alike. When the write fails (a read-only or full workspace, a file size limit) the
 * result goes on to the runtime's usual cut, preceded by a line saying it could not be saved.
 */
export const toolOutputPersistenceCapability: Capability<ToolOutputPersistenceConfig | undefined> =
  defineCapability<ToolOutputPersistenceConfig | undefined>({
    id: TOOL_OUTPUT_PERSISTENCE_CAPABILITY_ID,
    name: 'Tool Output Persistence',
    description:
      'Saves tool results over a size limit to the session workspace (/.tool-outputs) and gives the model a head/tail preview with the path, to read the rest with read_file.',
    dependencies: ['session_file_system'],
    configSchema: toolOutputPersistenceConfigSchema.optional() as unknown as z.ZodType<
      ToolOutputPersistenceConfig | undefined
    >,
    systemPrompt: ({ config }) =>
      `A tool result longer than ${config?.thresholdChars ?? DEFAULT_THRESHOLD_CHARS} characters is saved whole in the workspace under ${TOOL_OUTPUTS_DIRECTORY}/ and you see its start and end with the file's path and size; read the part you need with read_file (offset and limit in lines) or grep_files instead of running the tool again.`,
    tools: [],
    afterToolCall: persistLargeOutput,
  });
