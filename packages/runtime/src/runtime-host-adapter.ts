import type { AtomDependencies } from '@everruns-ts/core';
import { SessionStorageToolCallJournal, type ToolCallJournal } from './tool-call-journal.js';

/**
 * What a host supplies to run the phases of a turn: the stores, the registries, the session
 * file systems, the event bus (inside `backends`) and the limits. The in-process runtime builds
 * one; a durable host builds its own from the same pieces.
 */
export interface RuntimeHostAdapter extends AtomDependencies {
  /**
   * Where tool calls are recorded as started before they run. Defaults to a
   * {@link SessionStorageToolCallJournal} on `backends.storage`.
   */
  toolCallJournal?: ToolCallJournal;
}

/** The journal an adapter uses: its own, or one on its session storage. */
export function toolCallJournalOf(adapter: RuntimeHostAdapter): ToolCallJournal {
  return adapter.toolCallJournal ?? new SessionStorageToolCallJournal(adapter.backends.storage);
}
