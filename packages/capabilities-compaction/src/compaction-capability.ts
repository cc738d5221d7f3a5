import {
  type BeforeModelCallContext,
  type BeforeModelCallResult,
  type Capability,
  COMPACTION_STORAGE_KEY,
  type CompactionRecord,
  compactionSection,
  defineCapability,
  type Message,
} from '@everruns-ts/core';
import { z } from 'zod';
import { partText, TokenCounter } from './token-count.js';

/** Id of the {@link compactionCapability}, as upstream (`compaction`). */
export const COMPACTION_CAPABILITY_ID = 'compaction';

/** The context window assumed when neither the config nor the model gives one (tokens). */
export const DEFAULT_CONTEXT_WINDOW_TOKENS = 128_000;

/** Longest text of one message part put into the transcript a summary is written from. */
export const MAX_TRANSCRIPT_PART_CHARS = 4_000;

/** Schema of {@link CompactionConfig}. */
export const compactionConfigSchema = z.strictObject({
  /**
   * Compact when the context about to be sent (system prompt, messages, tool specs) exceeds this
   * share of the context window. Default 0.8.
   */
  threshold: z.number().gt(0).max(1).default(0.8),
  /**
   * What the context should fill after compacting, as a share of the window: as much recent
   * history is kept as fits. Default 0.5; must be below `threshold`.
   */
  target: z.number().gt(0).lt(1).default(0.5),
  /** The window in tokens; else the model's `contextWindow`; else 128,000. */
  contextWindowTokens: z.number().int().positive().optional(),
  /** A model registered in the provider store that writes the summaries; else the session's. */
  summaryModelId: z.string().min(1).optional(),
  /**
   * Longest summary in tokens (a longer answer is cut); default a tenth of the window, at most
   * 4,000.
   */
  summaryMaxTokens: z.number().int().positive().optional(),
});

/** Configuration of the `compaction` capability (all optional). */
export type CompactionConfig = z.input<typeof compactionConfigSchema>;

/**
 * The system prompt of the model call that writes a summary (a simulated model can recognise
 * the call by it).
 */
export const COMPACTION_SUMMARY_PROMPT = [
  'You write the running summary of a conversation between a user and an AI agent that uses tools.',
  'The agent will continue the conversation with your summary in place of the messages it covers, so keep every fact it needs:',
  'the user’s goals and constraints, decisions made, what tools were called with what results (names, paths, ids, numbers),',
  'open questions and the work still to do. Fold the previous summary, when given, into yours.',
  'Answer with the summary only, as plain text, as short as the facts allow.',
].join(' ');

/**
 * The `compaction` capability: before every model call it counts the tokens of what is about to
 * be sent (gpt-tokenizer for OpenAI model families, a chars/4 estimate otherwise; see
 * `tokenizerFor`). Over `threshold` of the context window, it asks a model to summarise the older
 * history (folding in the previous summary, so summaries chain), stores a compaction record
 * under `COMPACTION_STORAGE_KEY` and sends the summary plus the recent messages instead. Stored
 * messages are never changed; every later step's context assembly reads the record and only the
 * messages after it.
 *
 * The cut is always before a user message, so a tool call and its result stay on one side; the
 * latest user message and the current turn are never summarised. When even that does not fit
 * the window, the context is sent as it is and the step's `reason.started` event says so
 * (`hooks.compaction.overflow`).
 */
export const compactionCapability: Capability<CompactionConfig> =
  defineCapability<CompactionConfig>({
    id: COMPACTION_CAPABILITY_ID,
    name: 'Compaction',
    description:
      'Keeps long sessions inside the model’s context window: older history is summarised by a model call and the summary is sent in its place (stored messages stay untouched).',
    configSchema: compactionConfigSchema as unknown as z.ZodType<CompactionConfig>,
    tools: [],
    beforeModelCall: (context) => compactIfNeeded(context),
  });

/** The settings a step works with, defaults applied. */
interface Settings {
  threshold: number;
  target: number;
  window: number;
  summaryMaxTokens: number;
  summaryModelId?: string;
}

function settingsOf(context: BeforeModelCallContext<CompactionConfig>): Settings {
  const config = compactionConfigSchema.parse(context.config ?? {});
  const window =
    config.contextWindowTokens ?? context.model.contextWindow ?? DEFAULT_CONTEXT_WINDOW_TOKENS;
  const settings: Settings = {
    threshold: config.threshold,
    target: Math.min(config.target, config.threshold),
    window,
    summaryMaxTokens:
      config.summaryMaxTokens ?? Math.max(32, Math.min(4_000, Math.floor(window / 10))),
  };
  if (config.summaryModelId !== undefined) settings.summaryModelId = config.summaryModelId;
  return settings;
}

async function compactIfNeeded(
  context: BeforeModelCallContext<CompactionConfig>,
): Promise<BeforeModelCallResult | undefined> {
  const settings = settingsOf(context);
  const counter = await TokenCounter.forModel(context.model.model);
  const { messages, tools } = context;
  const toolTokens = counter.tools(tools);
  // Counted in slices: a long message or prompt would hold the event loop in the tokenizer.
  const promptTokens = await counter.textInSlices(context.systemPrompt, context.signal);
  const messageTokens = await counter.eachMessageInSlices(messages, context.signal);
  const tokensBefore = promptTokens + toolTokens + sum(messageTokens);
  if (tokensBefore <= settings.threshold * settings.window) return undefined;

  const cuts = cutPoints(messages, context.turnId);
  const annotations: Record<string, unknown> = {
    tokensBefore,
    contextWindow: settings.window,
    tokenizer: counter.tokenizer,
  };
  if (cuts.length === 0) {
    return overflowing(annotations, tokensBefore, settings, 'nothing older than the current turn');
  }
  // The prompt without the summary in force (the new one takes its place) and room for the new.
  const previousSection = context.compaction ? compactionSection(context.compaction) : '';
  const basePromptTokens =
    previousSection !== '' && context.systemPrompt.includes(previousSection)
      ? await counter.textInSlices(
          context.systemPrompt.replace(previousSection, ''),
          context.signal,
        )
      : promptTokens;
  const sectionOverhead = counter.text(compactionSection({ throughSeq: 1, summary: '' })) + 4;
  const fixed = basePromptTokens + toolTokens + settings.summaryMaxTokens + sectionOverhead;
  // The earliest cut whose kept messages fit the target (the most history kept); else the last.
  const suffix = suffixSums(messageTokens);
  const goal = settings.target * settings.window;
  const cut = cuts.find((index) => fixed + (suffix[index] ?? 0) <= goal) ?? (cuts.at(-1) as number);

  const older = messages.slice(0, cut);
  const kept = messages.slice(cut);
  const throughSeq = (kept[0] as Message).seq - 1;
  const summary = await summarise(context, settings, counter, older);
  const record: CompactionRecord = {
    version: 1,
    throughSeq,
    summary,
    createdAt: new Date().toISOString(),
    turnId: context.turnId,
    ...(context.compaction ? { previousThroughSeq: context.compaction.throughSeq } : {}),
    tokensBefore,
    tokensAfter: 0,
    ...(settings.summaryModelId !== undefined
      ? { model: settings.summaryModelId }
      : { model: context.model.model }),
  };
  const tokensAfter =
    basePromptTokens +
    toolTokens +
    (await counter.textInSlices(compactionSection(record), context.signal)) +
    2 +
    (suffix[cut] ?? 0);
  record.tokensAfter = tokensAfter;
  // Written before the model is called: a crash from here on finds the record in force on the
  // retried step, whose assembly then sends exactly what this step would have.
  await context.storage.setValue(context.sessionId, COMPACTION_STORAGE_KEY, JSON.stringify(record));
  Object.assign(annotations, {
    throughSeq,
    tokensAfter,
    messagesSummarised: older.length,
    messagesKept: kept.length,
  });
  if (tokensAfter > settings.window) {
    annotations.overflow = true;
    annotations.note =
      'The latest user message and the current turn alone exceed the context window; sent as they are.';
  }
  return { messages: kept, compaction: record, annotations };
}

function overflowing(
  annotations: Record<string, unknown>,
  tokens: number,
  settings: Settings,
  why: string,
): BeforeModelCallResult | undefined {
  if (tokens <= settings.window) return { annotations: { ...annotations, skipped: why } };
  return {
    annotations: {
      ...annotations,
      overflow: true,
      note: `The context exceeds the window and cannot be compacted (${why}); sent as it is.`,
    },
  };
}

/**
 * Indexes where the history may be cut (the messages before the index are summarised): each
 * user message after the first message, up to the latest user message and not past the first
 * message of the current turn.
 */
function cutPoints(messages: readonly Message[], turnId: string): number[] {
  let limit = messages.length;
  const firstOfTurn = messages.findIndex((message) => message.turnId === turnId);
  if (firstOfTurn >= 0) limit = firstOfTurn;
  let latestUser = -1;
  for (let index = messages.length - 1; index >= 0; index--) {
    if ((messages[index] as Message).role === 'user') {
      latestUser = index;
      break;
    }
  }
  if (latestUser >= 0) limit = Math.min(limit, latestUser);
  const cuts: number[] = [];
  for (let index = 1; index <= limit && index < messages.length; index++) {
    const message = messages[index] as Message;
    if (message.role === 'user' && message.seq > 1) cuts.push(index);
  }
  return cuts;
}

function suffixSums(values: readonly number[]): number[] {
  const sums = new Array<number>(values.length + 1).fill(0);
  for (let index = values.length - 1; index >= 0; index--) {
    sums[index] = (sums[index + 1] ?? 0) + (values[index] ?? 0);
  }
  return sums;
}

function sum(values: readonly number[]): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}

/** One line per message part, long parts cut in the middle. */
function transcriptLines(messages: readonly Message[]): string[] {
  const lines: string[] = [];
  for (const message of messages) {
    for (const part of message.content) {
      if (part.type === 'reasoning') continue;
      let text = partText(part);
      if (text.length > MAX_TRANSCRIPT_PART_CHARS) {
        const half = Math.floor(MAX_TRANSCRIPT_PART_CHARS / 2);
        text = `${text.slice(0, half)} […${text.length - 2 * half} characters left out…] ${text.slice(-half)}`;
      }
      const label =
        part.type === 'tool_call'
          ? 'tool call'
          : part.type === 'tool_result'
            ? `tool result${part.isError ? ' (error)' : ''}`
            : message.role;
      lines.push(`[${message.seq}] ${label}: ${text}`);
    }
  }
  return lines;
}

/**
 * The new summary: the previous one and the transcript of the older messages, in chunks that fit
 * the summarising call (each chunk's summary is folded into the next), cut to `summaryMaxTokens`.
 */
async function summarise(
  context: BeforeModelCallContext<CompactionConfig>,
  settings: Settings,
  counter: TokenCounter,
  older: readonly Message[],
): Promise<string> {
  let summary = context.compaction?.summary ?? '';
  const lines = transcriptLines(older);
  // Room for one chunk of transcript in the summarising call.
  const room = Math.max(
    256,
    settings.window - settings.summaryMaxTokens * 2 - counter.text(COMPACTION_SUMMARY_PROMPT) - 64,
  );
  let index = 0;
  do {
    const chunk: string[] = [];
    let tokens = 0;
    while (index < lines.length) {
      const line = lines[index] as string;
      const lineTokens = (await counter.textInSlices(line, context.signal)) + 1;
      if (chunk.length > 0 && tokens + lineTokens > room) break;
      chunk.push(line);
      tokens += lineTokens;
      index++;
    }
    const request = [
      summary ? `Previous summary:\n${summary}` : 'There is no previous summary.',
      `Messages to fold in:\n${chunk.join('\n')}`,
    ].join('\n\n');
    const response = await context.callModel({
      systemPrompt: COMPACTION_SUMMARY_PROMPT,
      messages: [
        {
          id: `compaction-${context.turnId}-${context.iteration}-${index}`,
          sessionId: context.sessionId,
          seq: 1,
          role: 'user',
          content: [{ type: 'text', text: request }],
          createdAt: new Date().toISOString(),
        },
      ],
      maxOutputTokens: settings.summaryMaxTokens,
      ...(settings.summaryModelId !== undefined ? { modelId: settings.summaryModelId } : {}),
      ...(context.signal ? { signal: context.signal } : {}),
    });
    summary = await fitTokens(
      response.text.trim(),
      settings.summaryMaxTokens,
      counter,
      context.signal,
    );
  } while (index < lines.length);
  return summary === '' ? '(no summary)' : summary;
}

/** Characters per token above which no tokenizer goes: a longer text cannot fit. */
const MAX_CHARS_PER_TOKEN = 128;

/**
 * The text cut to at most `limit` tokens (whole text when it fits), counted in slices. A text
 * far longer than `limit` tokens could be (an answer that ignored its token limit) is cut first,
 * so the search does not count a huge text again and again.
 */
async function fitTokens(
  text: string,
  limit: number,
  counter: TokenCounter,
  signal: AbortSignal | undefined,
): Promise<string> {
  const fits = async (candidate: string) =>
    (await counter.textInSlices(candidate, signal)) <= limit;
  if (text.length <= limit * MAX_CHARS_PER_TOKEN && (await fits(text))) return text;
  let low = 0;
  let high = Math.min(text.length, limit * MAX_CHARS_PER_TOKEN);
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (await fits(`${text.slice(0, middle)}…`)) low = middle;
    else high = middle - 1;
  }
  return `${text.slice(0, low)}…`;
}
