import { isAbsolute, join } from 'node:path';
import { EverrunsError, type SessionFileSystemFactory } from '@everruns-ts/core';
import { RealDiskFileStore } from './real-disk-file-store.js';
import type { RealDiskFileStoreOptions } from './real-disk-file-store-options.js';

/** Store settings shared by every session's workspace (everything but the root). */
export type RealDiskStoreSettings = Omit<RealDiskFileStoreOptions, 'root' | 'createRoot'>;

/**
 * Where the factory puts each session's workspace: one fixed directory shared by every session
 * (`root`), a directory per session under `sessionsDirectory` (named after the session id, which
 * must then be a plain file name), or a directory the embedder computes (`rootForSession`, which
 * must return an absolute path). The directory is created when missing.
 */
export type RealDiskSessionFileSystemFactoryOptions = RealDiskStoreSettings &
  (
    | { root: string; sessionsDirectory?: never; rootForSession?: never }
    | { sessionsDirectory: string; root?: never; rootForSession?: never }
    | { rootForSession: (sessionId: string) => string; root?: never; sessionsDirectory?: never }
  );

const PLAIN_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$/;

/**
 * A `SessionFileSystemFactory` yielding one {@link RealDiskFileStore} per session (the same
 * instance for the same session id). Configure it on the `PlatformDefinition`.
 *
 * @example
 * const factory = new RealDiskSessionFileSystemFactory({ sessionsDirectory: '/srv/workspaces' });
 * const platform = new PlatformDefinition().withFileSystemFactory(factory);
 */
export class RealDiskSessionFileSystemFactory implements SessionFileSystemFactory {
  readonly #options: RealDiskSessionFileSystemFactoryOptions;
  readonly #stores = new Map<string, RealDiskFileStore>();

  constructor(options: RealDiskSessionFileSystemFactoryOptions) {
    const forms = [options.root, options.sessionsDirectory, options.rootForSession].filter(
      (value) => value !== undefined,
    );
    if (forms.length !== 1) {
      throw new EverrunsError({
        code: 'CONFIGURATION',
        message:
          'RealDiskSessionFileSystemFactory needs exactly one of root, sessionsDirectory or rootForSession',
      });
    }
    this.#options = options;
  }

  /**
   * The workspace of `sessionId`, creating its directory when missing. Throws `INVALID_INPUT`
   * when `sessionsDirectory` is used and the id is not a plain file name, `CONFIGURATION` when
   * `rootForSession` returns a relative path.
   */
  forSession(sessionId: string): RealDiskFileStore {
    const existing = this.#stores.get(sessionId);
    if (existing) return existing;
    const { root, sessionsDirectory, rootForSession, ...settings } = this.#options;
    let directory: string;
    if (root !== undefined) directory = root;
    else if (sessionsDirectory !== undefined) {
      if (typeof sessionId !== 'string' || !PLAIN_NAME.test(sessionId)) {
        throw new EverrunsError({
          code: 'INVALID_INPUT',
          message: `Session id ${JSON.stringify(sessionId)} cannot name a workspace directory`,
          details: { sessionId },
        });
      }
      directory = join(sessionsDirectory, sessionId);
    } else {
      directory = (rootForSession as (sessionId: string) => string)(sessionId);
      if (typeof directory !== 'string' || !isAbsolute(directory)) {
        throw new EverrunsError({
          code: 'CONFIGURATION',
          message: 'rootForSession must return an absolute path',
          details: { sessionId },
        });
      }
    }
    const store = new RealDiskFileStore({ ...settings, root: directory, createRoot: true });
    this.#stores.set(sessionId, store);
    return store;
  }
}
