import { z } from 'zod';
import { lazySchema } from './lazy-schema.js';

/**
 * The session-storage key under which a session's current compaction record lives (see
 * {@link CompactionRecord}). The context assembly reads it; the `compaction` capability writes it.
 */
export const COMPACTION_STORAGE_KEY = 'compaction/current';

/** Schema of {@link CompactionRecord}. */
export const compactionRecordSchema = lazySchema(() =>
  z.object({
    version: z.literal(1),
    /**
     * Every message with `seq` up to this one is replaced, in what the model is sent, by
     * `summary`; the messages after it are sent as stored. The cut is always before a user message,
     * so a tool call and its result are never on different sides of it.
     */
    throughSeq: z.number().int().positive(),
    /** The summary of the messages up to `throughSeq` (earlier summaries included). */
    summary: z.string(),
    /** When the record was written (ISO 8601). */
    createdAt: z.string(),
    /** The turn whose reason step wrote it. */
    turnId: z.string().optional(),
    /** The `throughSeq` of the record this one replaced, when there was one. */
    previousThroughSeq: z.number().int().positive().optional(),
    /** Estimated tokens of the history before and after this compaction. */
    tokensBefore: z.number().int().nonnegative().optional(),
    tokensAfter: z.number().int().nonnegative().optional(),
    /** The model that wrote the summary. */
    model: z.string().optional(),
  }),
);

/**
 * A stored compaction point of a session. Stored messages stay append-only and untouched: the
 * record only changes what the context assembly sends (the summary in the system prompt, then the
 * messages after `throughSeq`).
 */
export type CompactionRecord = z.infer<typeof compactionRecordSchema>;

/**
 * Parses a stored compaction record (the JSON text under {@link COMPACTION_STORAGE_KEY}): `null`
 * for no text and for a malformed one, so a damaged value never blocks a session (the whole
 * history is sent, and the next compaction replaces the value).
 */
export function parseCompactionRecord(text: string | null | undefined): CompactionRecord | null {
  if (text === null || text === undefined) return null;
  try {
    const parsed = compactionRecordSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/**
 * The system-prompt section that carries a compaction record's summary: the context assembly
 * puts it after the capability sections, as
 * `<compacted_history through_seq="N">summary</compacted_history>`, so the model reads the
 * summary as background and the history it is sent starts right after message `N`.
 */
export function compactionSection(
  record: Pick<CompactionRecord, 'throughSeq' | 'summary'>,
): string {
  return `<compacted_history through_seq="${record.throughSeq}">\n${record.summary}\n</compacted_history>`;
}
