import type { FileHandle } from 'node:fs/promises';

/**
 * The file handles one store operation opened. Every handle an operation opens is tracked here,
 * and all of them are closed when the operation ends, whatever way it ends.
 */
export class HandleScope {
  readonly #handles = new Set<FileHandle>();

  /** Tracks `handle` so that {@link HandleScope.close} closes it; returns it. */
  track(handle: FileHandle): FileHandle {
    this.#handles.add(handle);
    return handle;
  }

  /** Closes one tracked handle early (a no-op when it is not tracked); never throws. */
  async release(handle: FileHandle): Promise<void> {
    if (this.#handles.delete(handle)) await handle.close().catch(() => undefined);
  }

  /** Closes every tracked handle; never throws. */
  async close(): Promise<void> {
    const handles = [...this.#handles];
    this.#handles.clear();
    await Promise.all(handles.map((handle) => handle.close().catch(() => undefined)));
  }
}
