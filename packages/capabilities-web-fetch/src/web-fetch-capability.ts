import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import {
  type Capability,
  createSecretRedactor,
  defineCapability,
  defineTool,
  isUrlAllowed,
  SECRET_PLACEHOLDER,
  type ToolContext,
  toolError,
} from '@everruns-ts/core';
import { z } from 'zod';
import { convertHtml, HtmlConversionError } from './convert-html.js';
import {
  hostMatches,
  NetworkRefusal,
  type ResolvedAddress,
  resolveCheckedAddresses,
} from './network-guard.js';

/** Id of the {@link webFetchCapability}, as upstream (`web_fetch`). */
export const WEB_FETCH_CAPABILITY_ID = 'web_fetch';

/** Schema of {@link WebFetchConfig}. Every field has a default. */
export const webFetchConfigSchema = z.strictObject({
  /** Only these hosts may be fetched (`example.com`, or `*.example.com` for subdomains). Absent: any host. */
  allowHosts: z.array(z.string().min(1)).optional(),
  /** Hosts never fetched; checked before `allowHosts`. */
  denyHosts: z.array(z.string().min(1)).default([]),
  /**
   * Allow loopback, private, link-local and unique-local addresses: `true` for every host, or a
   * list of host patterns that may resolve to them. Default false: a URL whose host resolves to
   * any such address (or that redirects to one) is refused.
   */
  allowPrivateNetwork: z.union([z.boolean(), z.array(z.string().min(1))]).default(false),
  /** Most bytes of a response body read; the rest is dropped and `truncated` is set. Default 2 MB. */
  maxBytes: z.number().int().positive().default(2_000_000),
  /** Most characters of content returned to the model. Default 100,000. */
  maxChars: z.number().int().positive().default(100_000),
  /** Time for the whole fetch, redirects included, in milliseconds. Default 20,000. */
  timeoutMs: z.number().int().positive().default(20_000),
  /** Redirects followed. Default 5. */
  maxRedirects: z.number().int().min(0).max(20).default(5),
  /** The `User-Agent` header sent. */
  userAgent: z.string().min(1).default('everruns-ts-web-fetch/0.1'),
  /**
   * Where each session secret may be sent: secret name → the origins (`https://api.example.com`,
   * `http://127.0.0.1:8080`) whose requests may carry it in a header. A `secret://<name>`
   * reference for any other origin (or for a secret not listed) is refused before any request.
   * Default: none, so no secret can be sent until the embedder lists where it goes.
   */
  secretOrigins: z
    .record(
      z.string().regex(/^[A-Za-z0-9_.-]{1,255}$/, 'must be a secret name'),
      z.array(
        z
          .string()
          .refine(
            (origin) =>
              URL.canParse(origin) && new URL(origin).origin === origin.replace(/\/$/, ''),
            'must be an origin such as https://api.example.com (scheme, host and port only)',
          ),
      ),
    )
    .default({}),
  /** Time to convert a page to Markdown or text, in milliseconds (off the event loop). Default 10,000. */
  conversionTimeoutMs: z.number().int().positive().default(10_000),
  /** Most characters of a page converted to Markdown or text; the rest is dropped and `truncated` set. Default 1,000,000. */
  maxConversionChars: z.number().int().positive().default(1_000_000),
  /** Deepest HTML element nesting kept when converting; deeper tags are dropped, their text kept. Default 128. */
  maxHtmlDepth: z.number().int().min(1).max(1000).default(128),
});

/** Per-session configuration of {@link webFetchCapability}. */
export type WebFetchConfig = z.output<typeof webFetchConfigSchema>;

/** Result of `web_fetch`. */
export interface WebFetchResult {
  /** The URL finally fetched (after redirects). */
  url: string;
  status_code: number;
  content_type: string | null;
  /** The body, converted as asked; absent for `HEAD`. */
  content?: string;
  /** `raw`, `markdown` or `text`. */
  format: 'raw' | 'markdown' | 'text';
  /** True when the body was longer than the byte or character limit. */
  truncated: boolean;
  /** Body bytes read. */
  bytes: number;
  /** The URLs redirected through, in order. */
  redirects?: string[];
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const BINARY_TYPE =
  /^(image|audio|video|font)\/|^application\/(octet-stream|pdf|zip|gzip|x-tar|x-7z|wasm|vnd\.)/i;
const SECRET_REFERENCE = /secret:\/\/([A-Za-z0-9_.-]{1,255})/g;
const FORBIDDEN_HEADERS = new Set(['host', 'content-length', 'connection', 'transfer-encoding']);

class FetchFailure extends Error {}

/** Stands for a secret inside HTML being converted; converters pass it through unchanged. */
const CONVERSION_MARKER = '\uE000SECRET\uE001';

function configOf(config: unknown): WebFetchConfig {
  return (config as WebFetchConfig | undefined) ?? webFetchConfigSchema.parse({});
}

function checkHost(hostname: string, config: WebFetchConfig): void {
  if (config.denyHosts.some((pattern) => hostMatches(hostname, pattern))) {
    throw new NetworkRefusal(`the host ${hostname} is on the deny list`);
  }
  if (config.allowHosts && !config.allowHosts.some((pattern) => hostMatches(hostname, pattern))) {
    throw new NetworkRefusal(`the host ${hostname} is not on the allow list`);
  }
}

function parseTarget(raw: string, base?: URL): URL {
  let url: URL;
  try {
    url = base ? new URL(raw, base) : new URL(raw);
  } catch {
    throw new FetchFailure(`"${raw}" is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new FetchFailure(`only http and https URLs can be fetched, not ${url.protocol}`);
  }
  if (url.username || url.password) {
    throw new FetchFailure('URLs with credentials (user:password@) are not allowed');
  }
  return url;
}

/** A `lookup` that answers only with the already-checked addresses, so the connection cannot be re-pointed by DNS. */
function pinnedLookup(addresses: ResolvedAddress[]): LookupFunction {
  return ((
    _hostname: string,
    options: { all?: boolean },
    callback: (...args: unknown[]) => void,
  ) => {
    if (options?.all) callback(null, addresses);
    else callback(null, addresses[0]?.address, addresses[0]?.family);
  }) as unknown as LookupFunction;
}

interface Response {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
  truncated: boolean;
}

function requestOnce(
  url: URL,
  method: 'GET' | 'HEAD',
  headers: Record<string, string>,
  addresses: ResolvedAddress[],
  maxBytes: number,
  signal: AbortSignal,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const request = send(
      url,
      { method, headers, lookup: pinnedLookup(addresses), signal },
      (response) => {
        const status = response.statusCode ?? 0;
        if (method === 'HEAD' || REDIRECT_STATUSES.has(status)) {
          response.resume();
          resolve({ status, headers: response.headers, body: Buffer.alloc(0), truncated: false });
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        let truncated = false;
        response.on('data', (chunk: Buffer) => {
          if (truncated) return;
          const room = maxBytes - size;
          if (chunk.length > room) {
            chunks.push(chunk.subarray(0, room));
            size = maxBytes;
            truncated = true;
            resolve({ status, headers: response.headers, body: Buffer.concat(chunks), truncated });
            response.destroy();
            return;
          }
          chunks.push(chunk);
          size += chunk.length;
        });
        response.on('end', () =>
          resolve({ status, headers: response.headers, body: Buffer.concat(chunks), truncated }),
        );
        response.on('error', reject);
        response.on('close', () => {
          if (!response.complete)
            reject(new FetchFailure('the connection closed before the body was complete'));
        });
      },
    );
    request.on('error', reject);
    request.end();
  });
}

function decode(body: Buffer, contentType: string | null): string {
  const charset = /charset=["']?([\w-]+)/i.exec(contentType ?? '')?.[1];
  try {
    return new TextDecoder(charset ?? 'utf-8').decode(body);
  } catch {
    return new TextDecoder('utf-8').decode(body);
  }
}

/**
 * Resolves the `secret://<name>` references of header values. Returns the headers with the
 * values, the secret values (to redact) and, per lower-cased header name, the secret names it
 * carries. Every secret is read before any is checked, so every value can be redacted.
 */
async function resolveHeaderSecrets(
  headers: Record<string, string>,
  context: ToolContext<unknown>,
): Promise<{
  headers: Record<string, string>;
  secrets: string[];
  secretHeaders: Map<string, string[]>;
}> {
  const resolved: Record<string, string> = {};
  const secrets: string[] = [];
  const secretHeaders = new Map<string, string[]>();
  for (const [name, value] of Object.entries(headers)) {
    let result = value;
    for (const match of value.matchAll(SECRET_REFERENCE)) {
      const secretName = match[1] as string;
      const secret = await context.storage.getSecret(context.sessionId, secretName);
      if (secret === null)
        throw new FetchFailure(`unknown secret secret://${secretName} in header ${name}`);
      secrets.push(secret);
      const names = secretHeaders.get(name.toLowerCase()) ?? [];
      names.push(secretName);
      secretHeaders.set(name.toLowerCase(), names);
      result = result.split(match[0]).join(secret);
    }
    resolved[name] = result;
  }
  return { headers: resolved, secrets, secretHeaders };
}

/** Refuses a secret header for an origin the embedder did not list for that secret. */
function checkSecretOrigins(
  secretHeaders: Map<string, string[]>,
  origin: string,
  config: WebFetchConfig,
): void {
  for (const [header, names] of secretHeaders) {
    for (const name of names) {
      const allowed = (config.secretOrigins[name] ?? []).map((entry) => new URL(entry).origin);
      if (!allowed.includes(origin)) {
        throw new NetworkRefusal(
          `the secret secret://${name} (header ${header}) may not be sent to ${origin}: it is not among the origins configured for it (secretOrigins)`,
        );
      }
    }
  }
}

/** Request headers never forwarded to another origin, besides every header carrying a secret. */
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];

const webFetchTool = defineTool({
  name: 'web_fetch',
  description:
    'Fetch a URL (http or https) and return its content. HTML can be converted to Markdown (as_markdown) or plain text (as_text). Binary content is refused. Header values may use secret://<name> references.',
  inputSchema: z.strictObject({
    url: z.string().min(1).describe('The http or https URL.'),
    method: z.enum(['GET', 'HEAD']).optional().describe('GET (default) or HEAD.'),
    as_markdown: z.boolean().optional().describe('Convert an HTML response to Markdown.'),
    as_text: z
      .boolean()
      .optional()
      .describe('Convert an HTML response to plain text (ignored when as_markdown is true).'),
    headers: z
      .record(z.string().regex(/^[A-Za-z0-9-]{1,100}$/, 'must be an HTTP header name'), z.string())
      .optional()
      .describe('Extra request headers; values may contain secret://<name> references.'),
  }),
  idempotent: true,
  execute: async (input, context) => {
    const config = configOf(context.config);
    const controller = new AbortController();
    const onAbort = () => controller.abort(context.signal.reason);
    context.signal.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(
      () => controller.abort(new FetchFailure(`no complete answer within ${config.timeoutMs} ms`)),
      config.timeoutMs,
    );
    let redactor = createSecretRedactor([]);
    try {
      const extra = await resolveHeaderSecrets(input.headers ?? {}, context);
      redactor = createSecretRedactor(extra.secrets);
      const headers: Record<string, string> = {
        'user-agent': config.userAgent,
        accept:
          input.as_markdown || input.as_text ? 'text/html, text/plain;q=0.9, */*;q=0.5' : '*/*',
      };
      for (const [name, value] of Object.entries(extra.headers)) {
        if (FORBIDDEN_HEADERS.has(name.toLowerCase()))
          throw new FetchFailure(`the header ${name} cannot be set`);
        headers[name.toLowerCase()] = value;
      }
      const method = input.method ?? 'GET';
      let url = parseTarget(input.url);
      checkSecretOrigins(extra.secretHeaders, url.origin, config);
      const redirects: string[] = [];
      let response: Response;
      for (;;) {
        checkHost(url.hostname, config);
        // The session's network access list (harness, agent, session), redirects included.
        if (!isUrlAllowed(context.networkAccess, url.href)) {
          throw new NetworkRefusal(`the session's network access list does not allow ${url.href}`);
        }
        const privateAllowed =
          config.allowPrivateNetwork === true ||
          (Array.isArray(config.allowPrivateNetwork) &&
            config.allowPrivateNetwork.some((pattern) => hostMatches(url.hostname, pattern)));
        const addresses = await resolveCheckedAddresses(url.hostname, privateAllowed);
        response = await requestOnce(
          url,
          method,
          headers,
          addresses,
          config.maxBytes,
          controller.signal,
        );
        const location = response.headers.location;
        if (!REDIRECT_STATUSES.has(response.status) || !location) break;
        if (redirects.length >= config.maxRedirects) {
          throw new FetchFailure(`more than ${config.maxRedirects} redirects`);
        }
        const next = parseTarget(location, url);
        if (next.origin !== url.origin) {
          // Credentials given for one origin are not sent to another, nor is any header that
          // carries a secret (once dropped, they stay dropped for the rest of the chain).
          for (const name of [...CREDENTIAL_HEADERS, ...extra.secretHeaders.keys()])
            delete headers[name];
        }
        redirects.push(url.href);
        url = next;
      }
      const contentType = response.headers['content-type'] ?? null;
      const result: WebFetchResult = {
        url: redactor.redact(url.href),
        status_code: response.status,
        content_type: contentType === null ? null : redactor.redact(contentType),
        format: 'raw',
        truncated: response.truncated,
        bytes: response.body.length,
      };
      if (redirects.length > 0) result.redirects = redirects.map((href) => redactor.redact(href));
      if (method === 'HEAD') return result;
      if (contentType && BINARY_TYPE.test(contentType)) {
        return toolError(
          redactor.redact(
            `web_fetch: ${url.href} returned binary content (${contentType}), which is not supported`,
          ),
        );
      }
      let content = decode(response.body, contentType);
      let cut = response.truncated;
      const isHtml = /html/i.test(contentType ?? '') || /^\s*<(!doctype html|html)/i.test(content);
      const format =
        isHtml && input.as_markdown ? 'markdown' : isHtml && input.as_text ? 'text' : 'raw';
      // Room past maxChars so a secret straddling the limit is still found whole and redacted.
      const margin = 65_536;
      if (format === 'raw') {
        if (content.length > config.maxChars + margin) {
          content = content.slice(0, config.maxChars + margin);
          cut = true;
        }
      } else {
        if (content.length > config.maxConversionChars) {
          content = content.slice(0, config.maxConversionChars);
          cut = true;
        }
        // Secrets are taken out before conversion too, as a marker the converters leave alone,
        // so no conversion (entity decoding, Markdown escapes, upper-cased headings) can hide one.
        content = cut
          ? redactor.redactCut(content, CONVERSION_MARKER)
          : redactor.redact(content, CONVERSION_MARKER);
        const converted = await convertHtml(content, {
          format,
          maxDepth: config.maxHtmlDepth,
          timeoutMs: config.conversionTimeoutMs,
          maxOutputChars: config.maxChars + margin,
          samples: extra.secrets,
          signal: controller.signal,
        });
        redactor.addForms(converted.renderedSamples);
        content = converted.content.replaceAll(CONVERSION_MARKER, SECRET_PLACEHOLDER);
        cut ||= converted.cut;
        result.format = format;
      }
      content = cut ? redactor.redactCut(content) : redactor.redact(content);
      if (content.length > config.maxChars) {
        content = content.slice(0, config.maxChars);
        cut = true;
      }
      result.truncated = cut;
      result.content = content;
      return result;
    } catch (error) {
      if (context.signal.aborted) throw error;
      const reason = controller.signal.aborted ? controller.signal.reason : error;
      const message =
        reason instanceof NetworkRefusal
          ? `refused: ${reason.message}`
          : reason instanceof FetchFailure || reason instanceof HtmlConversionError
            ? reason.message
            : `the request failed: ${(reason as NodeJS.ErrnoException).code ?? (reason as Error).message}`;
      return toolError(redactor.redact(`web_fetch failed: ${message}`));
    } finally {
      clearTimeout(timer);
      context.signal.removeEventListener('abort', onAbort);
    }
  },
});

/**
 * The `web_fetch` capability: one tool, `web_fetch`, that fetches an http(s) URL and returns its
 * body as is, as Markdown or as plain text.
 *
 * Guards, set by {@link WebFetchConfig}: a byte limit on the body and a character limit on what the
 * model sees (`truncated` says when they cut), one time limit for the whole fetch, host allow and
 * deny lists, and no private-network addresses unless allowed: the host's every DNS address is
 * checked (loopback, RFC 1918, link-local, CGNAT, `::1`, `fc00::/7`, `fe80::/10`, `0.0.0.0/8`),
 * the connection is pinned to the checked addresses, and each redirect is checked the same way.
 * Header values may use `secret://<name>` references, resolved from session storage and redacted
 * from what comes back.
 */
export const webFetchCapability: Capability<WebFetchConfig> = defineCapability<WebFetchConfig>({
  id: WEB_FETCH_CAPABILITY_ID,
  name: 'Web Fetch',
  description: 'Fetch web pages and convert HTML to Markdown or plain text.',
  configSchema: webFetchConfigSchema,
  tools: [webFetchTool],
});
