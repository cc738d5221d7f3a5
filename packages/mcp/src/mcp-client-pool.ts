import { createHash } from 'node:crypto';
import {
  EverrunsError,
  errorMessage,
  type McpServerConfig,
  type McpTool,
  type McpToolRequest,
  type McpToolSource,
  mcpServerConfigSchema,
  mcpServerNameSchema,
  type ToolDefinition,
  throwIfAborted,
  toolError,
} from '@everruns-ts/core';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import {
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  ErrorCode,
  McpError,
  type Tool as SdkTool,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { checkServerUrl, type FetchFunction, noRedirectFetch } from './guarded-fetch.js';
import { boundText, type CallToolResultLike, mapToolResult } from './map-result.js';
import { namespacedToolName } from './tool-names.js';

/** A tool call's timeout when the server's config names none, in milliseconds. */
export const DEFAULT_MCP_TIMEOUT_MS = 60_000;
/** Connecting plus listing tools, when the server's config names no `connectTimeoutMs`. */
export const DEFAULT_MCP_CONNECT_TIMEOUT_MS = 10_000;
/** Longest tool result text handed to the runtime, in characters. */
export const DEFAULT_MCP_MAX_RESULT_CHARS = 100_000;
/** Longest tool description handed to the model, in characters. */
export const DEFAULT_MCP_MAX_DESCRIPTION_CHARS = 2_000;
/** Most pages of `tools/list` read from one server (a guard against a cursor that never ends). */
const MAX_TOOL_PAGES = 100;
/** How long `close()` waits for one child process to exit after the SDK has signalled it. */
const EXIT_WAIT_MS = 5_000;

/** Schema of {@link McpClientPoolOptions}. */
export const mcpClientPoolOptionsSchema = z.strictObject({
  /** Name and version the client announces in `initialize` (default `everruns-ts`). */
  clientInfo: z.strictObject({ name: z.string().min(1), version: z.string().min(1) }).optional(),
  /**
   * `config` (default): sessions whose server configs are the same share one connection (one
   * child process). `session`: every session gets its own connection to every server.
   */
  sharing: z.enum(['config', 'session']).optional(),
  /** Longest tool result text, in characters (default 100,000). */
  maxResultChars: z.number().int().positive().optional(),
  /** Longest tool description, in characters (default 2,000). */
  maxDescriptionChars: z.number().int().positive().optional(),
  /** Model-facing names never given to an MCP tool (for example the session's capability tools). */
  reservedToolNames: z.array(z.string()).optional(),
  /**
   * What happens to a stdio server's standard error: `inherit` (default, the SDK's choice: it goes
   * to this process's standard error), `ignore`, or a function called with each chunk.
   */
  stderr: z
    .union([
      z.enum(['inherit', 'ignore']),
      z.custom<(server: string, text: string) => void>((value) => typeof value === 'function'),
    ])
    .optional(),
  /**
   * Closes a connection (ending its child process) that no listing or call has used for this
   * long, in milliseconds; the next use reconnects. Default: connections stay until `close()`.
   */
  idleTimeoutMs: z.number().int().positive().optional(),
  /** The fetch the HTTP transports use (default the global one); redirects stay manual. */
  fetch: z
    .custom<FetchFunction>((value) => typeof value === 'function', 'fetch must be a function')
    .optional(),
});

/** Options of {@link McpClientPool}. */
export type McpClientPoolOptions = z.input<typeof mcpClientPoolOptionsSchema>;

/** The error every call of a closed pool rejects with. */
function closedError(): EverrunsError {
  return new EverrunsError({
    code: 'RUNTIME_CLOSED',
    message: 'The MCP client pool is closed',
    details: { component: 'mcp' },
  });
}

/** A stable key of what makes a connection: transport, command, args, env, cwd, URL, headers. */
export function mcpConnectionKey(config: McpServerConfig): string {
  const sorted = (record: Record<string, string> | undefined) =>
    Object.entries(record ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const identity =
    config.transport === 'stdio'
      ? ['stdio', config.command, config.args ?? [], sorted(config.env), config.cwd ?? null]
      : ['http', config.url, sorted(config.headers)];
  return createHash('sha256').update(JSON.stringify(identity)).digest('hex');
}

/** Resolves with `promise`, or rejects as soon as `signal` fires. */
function raceSignal<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  throwIfAborted(signal);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () =>
      reject(
        new EverrunsError({
          code: 'ABORTED',
          message: 'The operation was aborted',
          cause: signal.reason,
        }),
      );
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** Resolves after `ms` without keeping the process alive. */
function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * True when a failed request says the connection itself is broken (a transport error, a closed
 * connection), so it is dropped and the next use reconnects. A server's own error answer, a
 * timeout and a cancellation leave the connection in place.
 */
function breaksConnection(error: unknown, signal: AbortSignal | undefined): boolean {
  if (signal?.aborted) return false;
  if (error instanceof McpError) return error.code === ErrorCode.ConnectionClosed;
  return true;
}

/** One live client and how to know that it has gone. */
interface Live {
  client: Client;
  transport: Transport;
  /** Resolves when the transport has closed (for stdio: the child process has exited). */
  closed: Promise<void>;
  isClosed: boolean;
}

interface PoolSettings {
  clientInfo: { name: string; version: string };
  stderr: 'inherit' | 'ignore' | ((server: string, text: string) => void);
  fetch: FetchFunction;
}

/** A connection to one server config, reconnecting after a crash. */
class McpConnection {
  private live: Live | undefined;
  private connecting: Promise<Live> | undefined;
  private generation = 0;
  private toolCache: { live: Live; generation: number; tools: SdkTool[] } | undefined;
  private readonly ending = new Set<Promise<void>>();
  private closed = false;
  /** Requests (listings and calls) under way. */
  private busy = 0;
  /** When the last request ended (`Date.now()`). */
  private lastUsed = Date.now();

  constructor(
    /** The server's name where this connection was first asked for (used in messages). */
    readonly label: string,
    readonly config: McpServerConfig,
    private readonly settings: PoolSettings,
  ) {}

  /** The live client, connecting when there is none. */
  async ensure(connectTimeoutMs: number, signal: AbortSignal | undefined): Promise<Live> {
    if (this.closed) throw closedError();
    if (this.live && !this.live.isClosed) return this.live;
    if (!this.connecting) {
      const attempt = this.connect(connectTimeoutMs).then(
        (live) => {
          if (this.connecting === attempt) this.connecting = undefined;
          if (this.closed) {
            this.end(live);
            throw closedError();
          }
          this.live = live;
          return live;
        },
        (error: unknown) => {
          if (this.connecting === attempt) this.connecting = undefined;
          throw error;
        },
      );
      this.connecting = attempt;
    }
    return raceSignal(this.connecting, signal);
  }

  private newClient(): Client {
    const client = new Client(this.settings.clientInfo, { capabilities: {} });
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
      this.generation++;
    });
    return client;
  }

  /** Connects `transport` with a fresh client; closes both when the handshake fails. */
  private async open(transport: Transport, timeout: number): Promise<Live> {
    const client = this.newClient();
    let markClosed: () => void = () => {};
    const live: Live = {
      client,
      transport,
      isClosed: false,
      closed: new Promise<void>((resolve) => {
        markClosed = resolve;
      }),
    };
    client.onclose = () => {
      live.isClosed = true;
      if (this.live === live) this.live = undefined;
      markClosed();
    };
    // Errors surface through the requests they fail; the SDK's onerror would only log.
    client.onerror = () => {};
    try {
      await client.connect(transport, { timeout });
    } catch (error) {
      await this.end(live);
      throw error;
    }
    return live;
  }

  private async connect(timeout: number): Promise<Live> {
    const config = this.config;
    if (config.transport === 'stdio') {
      const stderr = this.settings.stderr;
      const transport = new StdioClientTransport({
        command: config.command,
        args: config.args ?? [],
        // The SDK adds its short list of safe variables (PATH, HOME, …) to this; nothing else of
        // the host's environment reaches the child.
        env: { ...config.env },
        stderr: typeof stderr === 'function' ? 'pipe' : stderr,
        ...(config.cwd === undefined ? {} : { cwd: config.cwd }),
      });
      if (typeof stderr === 'function') {
        transport.stderr?.on('data', (chunk: Buffer | string) => {
          try {
            stderr(this.label, chunk.toString());
          } catch {
            // A failing listener must not break the connection.
          }
        });
      }
      return this.open(transport, timeout);
    }
    const url = checkServerUrl(config.url);
    const requestInit: RequestInit = { headers: { ...config.headers } };
    const fetch = noRedirectFetch(this.settings.fetch);
    try {
      return await this.open(
        new StreamableHTTPClientTransport(url, {
          requestInit,
          fetch,
          redirectPolicy: 'same-origin',
        }),
        timeout,
      );
    } catch (error) {
      // A server that answers the Streamable HTTP POST with 400, 404 or 405 may speak the older
      // HTTP+SSE transport: the SDK still offers its client, so it is tried once.
      const status = error instanceof StreamableHTTPError ? error.code : undefined;
      if (status !== 400 && status !== 404 && status !== 405) throw error;
      try {
        return await this.open(
          new SSEClientTransport(url, { requestInit, fetch, redirectPolicy: 'same-origin' }),
          timeout,
        );
      } catch (fallbackError) {
        throw new Error(
          `Streamable HTTP answered ${status}; the SSE transport tried next: ${errorMessage(fallbackError)}`,
        );
      }
    }
  }

  /** Closes a client (and so its transport and child process), remembering the wait. */
  private end(live: Live): Promise<void> {
    if (this.live === live) this.live = undefined;
    const ending = (async () => {
      if (live.transport instanceof StreamableHTTPClientTransport && !live.isClosed) {
        // Tells the server the session is over; bounded, a dead server must not hold close().
        await Promise.race([live.transport.terminateSession().catch(() => {}), delay(1_000)]);
      }
      await live.client.close().catch(() => {});
      await Promise.race([live.closed, delay(EXIT_WAIT_MS)]);
    })();
    this.ending.add(ending);
    void ending.finally(() => this.ending.delete(ending));
    return ending;
  }

  /** The server's tools, from the cache unless the server said they changed. */
  async tools(connectTimeoutMs: number, signal: AbortSignal | undefined): Promise<SdkTool[]> {
    this.busy++;
    try {
      return await this.listing(connectTimeoutMs, signal);
    } finally {
      this.busy--;
      this.lastUsed = Date.now();
    }
  }

  private async listing(
    connectTimeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<SdkTool[]> {
    const live = await this.ensure(connectTimeoutMs, signal);
    const cached = this.toolCache;
    if (cached && cached.live === live && cached.generation === this.generation) {
      return cached.tools;
    }
    const generation = this.generation;
    const tools: SdkTool[] = [];
    try {
      let cursor: string | undefined;
      for (let page = 0; page < MAX_TOOL_PAGES; page++) {
        const result = await live.client.listTools(cursor === undefined ? undefined : { cursor }, {
          timeout: connectTimeoutMs,
          ...(signal ? { signal } : {}),
        });
        tools.push(...result.tools);
        cursor = result.nextCursor;
        if (cursor === undefined) break;
      }
    } catch (error) {
      if (breaksConnection(error, signal)) void this.end(live);
      throw error;
    }
    if (generation === this.generation) this.toolCache = { live, generation, tools };
    return tools;
  }

  /** Calls a tool; a broken connection is dropped so the next call reconnects. */
  async call(
    name: string,
    args: Record<string, unknown>,
    timeouts: { timeoutMs: number; connectTimeoutMs: number },
    signal: AbortSignal | undefined,
  ): Promise<CallToolResultLike> {
    this.busy++;
    try {
      const live = await this.ensure(timeouts.connectTimeoutMs, signal);
      try {
        return await live.client.callTool({ name, arguments: args }, undefined, {
          timeout: timeouts.timeoutMs,
          ...(signal ? { signal } : {}),
        });
      } catch (error) {
        if (breaksConnection(error, signal)) void this.end(live);
        throw error;
      }
    } finally {
      this.busy--;
      this.lastUsed = Date.now();
    }
  }

  /**
   * Closes the connection (not the object: the next use reconnects) when nothing has used it for
   * `idleMs` and nothing is under way.
   */
  closeIfIdle(idleMs: number, now: number): void {
    if (this.busy > 0 || this.connecting || !this.live) return;
    if (now - this.lastUsed < idleMs) return;
    void this.end(this.live);
  }

  /** Closes the client and waits for the child process (if any) to exit. */
  async close(): Promise<void> {
    this.closed = true;
    const connecting = this.connecting;
    if (connecting) await connecting.catch(() => {});
    if (this.live) void this.end(this.live);
    while (this.ending.size > 0) await Promise.all([...this.ending]);
  }
}

/** What one server contributed to a listing. */
type ServerListing =
  | { server: string; connection: McpConnection; config: McpServerConfig; tools: SdkTool[] }
  | { server: string; error: string }
  | undefined;

/**
 * The MCP bridge a platform registers: an {@link McpToolSource} on the official
 * `@modelcontextprotocol/sdk` client.
 *
 * - Connects lazily, on the first `listTools` naming a server, with one connection per distinct
 *   server config ({@link mcpConnectionKey}: transport, command, args, env, cwd, URL, headers).
 *   Sessions whose configs are the same share it, which is safe for any server that keeps no
 *   state between calls of different clients; choose `sharing: 'session'` for a server that does.
 * - A stdio child gets only the config's `env` plus the SDK's short list of safe variables
 *   (`PATH`, `HOME`, `LOGNAME`, `SHELL`, `TERM`, `USER`; on Windows its own list), never the rest
 *   of the host's environment.
 * - HTTP servers: Streamable HTTP, falling back to the SDK's SSE client when the server answers
 *   400, 404 or 405; `http:`/`https:` URLs only; redirects followed only within the same origin.
 * - Tools are named `<server>__<tool>` for the model (see {@link namespacedToolName}).
 * - A server that cannot be reached is reported in `errors`; the other servers' tools are given.
 * - A crashed server (child exited, connection refused) fails the call in flight as a tool
 *   error; the next listing or call reconnects.
 */
export class McpClientPool implements McpToolSource {
  private readonly connections = new Map<string, McpConnection>();
  private readonly settings: PoolSettings;
  private readonly sharing: 'config' | 'session';
  private readonly maxResultChars: number;
  private readonly maxDescriptionChars: number;
  private readonly reserved: ReadonlySet<string>;
  /** Definitions by listed tool (a tool list object lives as long as its connection's cache). */
  private readonly definitions = new WeakMap<SdkTool, Map<string, ToolDefinition>>();
  private closing: Promise<void> | undefined;
  private readonly sweeper: ReturnType<typeof setInterval> | undefined;

  constructor(options: McpClientPoolOptions = {}) {
    const parsed = mcpClientPoolOptionsSchema.safeParse(options);
    if (!parsed.success) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: `Invalid McpClientPool options: ${z.prettifyError(parsed.error)}`,
      });
    }
    const value = parsed.data;
    this.settings = {
      clientInfo: value.clientInfo ?? { name: 'everruns-ts', version: '0.1.0' },
      stderr: value.stderr ?? 'inherit',
      fetch: value.fetch ?? ((url, init) => fetch(url, init)),
    };
    this.sharing = value.sharing ?? 'config';
    this.maxResultChars = value.maxResultChars ?? DEFAULT_MCP_MAX_RESULT_CHARS;
    this.maxDescriptionChars = value.maxDescriptionChars ?? DEFAULT_MCP_MAX_DESCRIPTION_CHARS;
    this.reserved = new Set(value.reservedToolNames ?? []);
    const idleMs = value.idleTimeoutMs;
    if (idleMs !== undefined) {
      this.sweeper = setInterval(
        () => {
          const now = Date.now();
          for (const connection of this.connections.values()) connection.closeIfIdle(idleMs, now);
        },
        Math.min(Math.max(Math.floor(idleMs / 2), 10), 30_000),
      );
      this.sweeper.unref();
    }
  }

  /** Open connections (one per distinct config, or per session and config with `sharing: 'session'`). */
  get connectionCount(): number {
    return this.connections.size;
  }

  private connectionFor(sessionId: string, server: string, config: McpServerConfig) {
    if (this.closing) throw closedError();
    const key =
      this.sharing === 'session'
        ? `${mcpConnectionKey(config)}:${sessionId}`
        : mcpConnectionKey(config);
    let connection = this.connections.get(key);
    if (!connection) {
      connection = new McpConnection(server, config, this.settings);
      this.connections.set(key, connection);
    }
    return connection;
  }

  /**
   * The tools of `request.servers` (disabled ones skipped), connecting as needed. Servers are
   * taken in name order and their tools in the server's order, so names are stable. A server that
   * cannot be reached or whose config is invalid is reported in `errors`.
   */
  async listTools(
    request: McpToolRequest,
  ): Promise<{ tools: McpTool[]; errors: { server: string; message: string }[] }> {
    if (this.closing) throw closedError();
    const sessionId = z.string().min(1).safeParse(request?.sessionId);
    if (!sessionId.success || typeof request.servers !== 'object' || request.servers === null) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: 'listTools needs a sessionId and a servers record',
      });
    }
    const signal = request.signal;
    throwIfAborted(signal);
    const names = Object.keys(request.servers).sort();
    const listings = await Promise.all(
      names.map(async (server): Promise<ServerListing> => {
        const name = mcpServerNameSchema.safeParse(server);
        const parsed = mcpServerConfigSchema.safeParse(request.servers[server]);
        if (!name.success || !parsed.success) {
          const issue = !name.success ? name.error : (parsed.error as z.ZodError);
          return { server, error: `invalid MCP server config: ${z.prettifyError(issue)}` };
        }
        const config = parsed.data;
        if (config.disabled) return undefined;
        try {
          checkConfig(config);
          const connection = this.connectionFor(sessionId.data, server, config);
          const connectTimeoutMs = config.connectTimeoutMs ?? DEFAULT_MCP_CONNECT_TIMEOUT_MS;
          const tools = await connection.tools(connectTimeoutMs, signal);
          return { server, connection, config, tools };
        } catch (error) {
          if (EverrunsError.hasCode(error, 'RUNTIME_CLOSED')) throw error;
          return { server, error: describeFailure(error) };
        }
      }),
    );
    throwIfAborted(signal);
    const taken = new Set(this.reserved);
    const tools: McpTool[] = [];
    const errors: { server: string; message: string }[] = [];
    for (const listing of listings) {
      if (!listing) continue;
      if ('error' in listing) {
        errors.push({ server: listing.server, message: listing.error });
        continue;
      }
      const allowed = listing.config.tools ? new Set(listing.config.tools) : undefined;
      for (const serverTool of listing.tools) {
        if (allowed && !allowed.has(serverTool.name)) continue;
        const name = namespacedToolName(listing.server, serverTool.name, taken);
        taken.add(name);
        tools.push({
          server: listing.server,
          serverToolName: serverTool.name,
          tool: this.toolDefinition(name, listing, serverTool),
        });
      }
    }
    return { tools, errors };
  }

  private toolDefinition(
    name: string,
    listing: Exclude<ServerListing, undefined | { error: string }>,
    serverTool: SdkTool,
  ): ToolDefinition {
    const { connection, config, server } = listing;
    const timeoutMs = config.timeoutMs ?? DEFAULT_MCP_TIMEOUT_MS;
    const connectTimeoutMs = config.connectTimeoutMs ?? DEFAULT_MCP_CONNECT_TIMEOUT_MS;
    // The same listed tool under the same name and timeouts gives the same definition object, so
    // the model-facing spec (cached per object by core's toolSpec) is built once per tool list.
    const cacheKey = `${name}\u0000${server}\u0000${timeoutMs}\u0000${connectTimeoutMs}`;
    let cached = this.definitions.get(serverTool);
    if (!cached) {
      cached = new Map();
      this.definitions.set(serverTool, cached);
    }
    const known = cached.get(cacheKey);
    if (known) return known;
    const description = boundText(
      serverTool.description?.trim() ||
        serverTool.title ||
        `Tool ${serverTool.name} of the MCP server ${server}.`,
      this.maxDescriptionChars,
    );
    const definition: ToolDefinition<Record<string, unknown>> = {
      name,
      description,
      // The server validates its own arguments; the model sees the server's schema as written.
      inputSchema: z.record(z.string(), z.unknown()),
      inputJsonSchema: { ...serverTool.inputSchema },
      idempotent: serverTool.annotations?.idempotentHint === true,
      // The SDK's timeout fires first; the runtime's own timer is a backstop.
      timeoutMs: timeoutMs + connectTimeoutMs + 1_000,
      execute: async (input, context) => {
        if (this.closing) throw closedError();
        try {
          const result = await connection.call(
            serverTool.name,
            input ?? {},
            { timeoutMs, connectTimeoutMs },
            context?.signal,
          );
          return mapToolResult(result, this.maxResultChars);
        } catch (error) {
          if (EverrunsError.hasCode(error, 'RUNTIME_CLOSED')) throw error;
          return toolError(
            `The MCP server ${server} failed on ${serverTool.name}: ${describeFailure(error)}`,
          );
        }
      },
    };
    cached.set(cacheKey, definition as ToolDefinition);
    return definition as ToolDefinition;
  }

  /**
   * Closes every client and child process and waits for the children to exit; `listTools` and
   * tool calls then reject with `RUNTIME_CLOSED`. Calling it again waits for the same close.
   */
  close(): Promise<void> {
    if (!this.closing) {
      if (this.sweeper) clearInterval(this.sweeper);
      const connections = [...this.connections.values()];
      this.closing = Promise.all(connections.map((connection) => connection.close())).then(
        () => {},
      );
    }
    return this.closing;
  }
}

/** Refuses configs the SDK would take but this package does not (URLs other than http/https). */
function checkConfig(config: McpServerConfig): void {
  if (config.transport === 'http') checkServerUrl(config.url);
}

/** A short message for a failed connection or request (no headers, no env). */
function describeFailure(error: unknown): string {
  if (error instanceof McpError && error.code === ErrorCode.RequestTimeout) {
    return `timed out (${error.message})`;
  }
  if (error instanceof McpError && error.code === ErrorCode.ConnectionClosed) {
    return `the connection closed (${error.message})`;
  }
  const message = errorMessage(error);
  const cause = error instanceof Error && error.cause ? errorMessage(error.cause) : '';
  return cause && !message.includes(cause) ? `${message}: ${cause}` : message;
}
