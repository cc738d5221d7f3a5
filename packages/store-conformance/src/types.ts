import type { RuntimeBackends, SessionFileSystem } from '@everruns-ts/core';

/** What the runtime-store tests of {@link RuntimeStoreTestContext} hand to `additionalTests`. */
export interface RuntimeStoreTestContext {
  /** The backend of the current area, created in its `beforeAll`. Call it inside a test. */
  backends(): RuntimeBackends;
  /** Runs `body` with a freshly created backend that nothing else uses, then destroys it. */
  withFreshBackends<T>(body: (backends: RuntimeBackends) => Promise<T>): Promise<T>;
}

/**
 * How the suite gets backends to test. Modelled on LangGraph.js checkpoint-validation: every
 * `create()` must return a fresh backend that shares no data with any other instance.
 */
export interface RuntimeStoreInitializer {
  /** Name shown in the test report, for example `postgres`. */
  name: string;
  /** Runs once before any test (start a server, create a template database). */
  beforeAll?(): Promise<void> | void;
  /** Runs once after every test. */
  afterAll?(): Promise<void> | void;
  /**
   * A fresh, isolated backend. The suite creates one per area (and more for the few tests that
   * need an empty one); tests use random ids and never assume the backend is empty.
   */
  create(): Promise<RuntimeBackends> | RuntimeBackends;
  /** Releases a backend made by `create`. Defaults to calling `backends.close?.()`. */
  destroy?(backends: RuntimeBackends): Promise<void> | void;
  /** Registers the backend's own extra tests, run with the same lifecycle. */
  additionalTests?(context: RuntimeStoreTestContext): void;
  /**
   * Also run the ephemeral-event tests of the event bus (`ephemeralEventTests`: streamed deltas
   * delivered, never kept, numbered with the last kept `seq`). Default false.
   */
  ephemeralEvents?: boolean;
}

/**
 * What a session file system supports beyond the common contract, in the manner of
 * abstract-level's manifest. The suite picks its optional tests from it.
 */
export interface SessionFileSystemCapabilities {
  /**
   * The backend sits on a real directory where symbolic links exist. The initializer must then
   * provide {@link SessionFileSystemInitializer.linkOutside}.
   */
  symlinks?: boolean;
  /**
   * The largest file the created file systems accept, in bytes; one byte more must be
   * `FILE_TOO_LARGE`. Default 10 MiB. Configure a small limit in `create()` to keep the test
   * cheap.
   */
  maxFileBytes?: number;
}

/** What `additionalTests` of {@link SessionFileSystemInitializer} receives. */
export interface SessionFileSystemTestContext {
  /** A fresh file system for the current test. */
  fileSystem(): SessionFileSystem;
}

/** How the suite gets session file systems to test. */
export interface SessionFileSystemInitializer {
  /** Name shown in the test report, for example `real disk`. */
  name: string;
  beforeAll?(): Promise<void> | void;
  afterAll?(): Promise<void> | void;
  /** A fresh, empty workspace; one per test. */
  create(): Promise<SessionFileSystem> | SessionFileSystem;
  /** Releases a workspace made by `create` (for example removes its temp directory). */
  destroy?(fileSystem: SessionFileSystem): Promise<void> | void;
  /** Optional behaviour the backend has. */
  capabilities?: SessionFileSystemCapabilities;
  /**
   * With `capabilities.symlinks`: creates at the workspace path `linkPath` a symbolic link to an
   * existing directory outside the workspace root, by going around the file system under test.
   */
  linkOutside?(fileSystem: SessionFileSystem, linkPath: string): Promise<void>;
  /** Registers the backend's own extra tests, run with the same lifecycle. */
  additionalTests?(context: SessionFileSystemTestContext): void;
}
