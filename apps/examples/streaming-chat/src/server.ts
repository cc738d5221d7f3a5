import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SessionBuilder } from '@everruns-ts/runtime';
import { z } from 'zod';
import { type ChatRuntime, type ChatRuntimeOptions, createChatRuntime } from './chat-runtime.js';

/** Options of {@link startStreamingChatServer}. */
export interface StreamingChatServerOptions extends ChatRuntimeOptions {
  /** Port to listen on; 0 picks a free one. Defaults to 3000. */
  port?: number;
  /** Interface to listen on. Defaults to 127.0.0.1. */
  host?: string;
}

/** A running chat server. */
export interface StreamingChatServer {
  /** Where the page is, for example `http://127.0.0.1:3000/`. */
  url: string;
  /** The runtime behind it (its sessions hold every chat's history). */
  chat: ChatRuntime;
  /** The session a chat id was given, once the chat has sent a message. */
  sessionOf(chatId: string): string | undefined;
  /** Stops listening, ends open streams and closes the runtime. */
  close(): Promise<void>;
}

/**
 * The body `useChat` (the AI SDK's `DefaultChatTransport`) posts, and the page posts the same:
 * the chat's id and its messages. The server keeps the history in the chat's session, so only the
 * newest message, which must be the user's, is read.
 */
const chatRequestSchema = z.looseObject({
  id: z.string().min(1).max(200),
  messages: z
    .array(
      z.looseObject({
        role: z.enum(['system', 'user', 'assistant']),
        parts: z.array(z.looseObject({ type: z.string(), text: z.string().optional() })),
      }),
    )
    .min(1),
});

const MAX_BODY_BYTES = 1024 * 1024;
const PAGE = new URL('../public/index.html', import.meta.url);

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'The request body is too large');
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'The request body is not JSON');
  }
}

/** Writes a fetch `Response` to a node:http response, pulling its body as the socket drains. */
async function sendResponse(response: Response, reply: ServerResponse): Promise<void> {
  reply.writeHead(response.status, Object.fromEntries(response.headers));
  const body = response.body;
  if (!body) {
    reply.end();
    return;
  }
  const reader = body.getReader();
  // A client that goes away cancels the body, which releases the turn stream.
  reply.on('close', () => {
    if (!reply.writableFinished) void reader.cancel().catch(() => {});
  });
  for (;;) {
    const next = await reader.read();
    if (next.done) break;
    if (!reply.write(next.value)) {
      await new Promise<void>((resolve) => {
        reply.once('drain', resolve);
        reply.once('close', resolve);
      });
    }
  }
  reply.end();
}

/**
 * Starts the example: `GET /` serves the chat page, `POST /api/chat` runs a turn in the chat's
 * session with `runtime.streamTextTurn` and answers with the turn stream's
 * `toUIMessageStreamResponse()`, so the page (or a `useChat` front end) sees the answer as it
 * is generated.
 */
export async function startStreamingChatServer(
  options: StreamingChatServerOptions = {},
): Promise<StreamingChatServer> {
  const chat = await createChatRuntime(options);
  const sessions = new Map<string, string>();

  async function sessionFor(chatId: string): Promise<string> {
    let sessionId = sessions.get(chatId);
    if (sessionId === undefined) {
      const session = await chat.runtime.createSession(
        new SessionBuilder(chat.harnessId).agent(chat.agentId).title(`Chat ${chatId}`),
      );
      sessionId = session.id;
      sessions.set(chatId, sessionId);
    }
    return sessionId;
  }

  async function handleChat(request: IncomingMessage, reply: ServerResponse): Promise<void> {
    const parsed = chatRequestSchema.safeParse(await readJson(request));
    if (!parsed.success) throw new HttpError(400, 'Expected { id, messages: [...] }');
    const last = parsed.data.messages.at(-1);
    const text = last?.parts
      .flatMap((part) => (part.type === 'text' && part.text !== undefined ? [part.text] : []))
      .join('');
    if (last?.role !== 'user' || !text) {
      throw new HttpError(400, 'The last message must be a user message with text');
    }
    const sessionId = await sessionFor(parsed.data.id);
    // Stopping the chat in the page aborts the fetch; the turn is aborted with it.
    const abort = new AbortController();
    reply.on('close', () => {
      if (!reply.writableFinished) abort.abort();
    });
    const stream = chat.runtime.streamTextTurn(sessionId, text, { signal: abort.signal });
    await sendResponse(stream.toUIMessageStreamResponse(), reply);
  }

  const server = createServer((request, reply) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    const handled =
      request.method === 'POST' && path === '/api/chat'
        ? handleChat(request, reply)
        : request.method === 'GET' && (path === '/' || path === '/index.html')
          ? readFile(PAGE).then((page) => {
              reply.writeHead(200, {
                'content-type': 'text/html; charset=utf-8',
                'cache-control': 'no-cache',
              });
              reply.end(page);
            })
          : Promise.reject(new HttpError(404, 'Not found'));
    handled.catch((error: unknown) => {
      if (reply.headersSent) {
        reply.destroy();
        return;
      }
      const status = error instanceof HttpError ? error.status : 500;
      const message = error instanceof HttpError ? error.message : 'Internal error';
      if (status === 500) console.error(error);
      reply.writeHead(status, { 'content-type': 'application/json' });
      reply.end(JSON.stringify({ error: message }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 3000, options.host ?? '127.0.0.1', resolve);
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}/`,
    chat,
    sessionOf: (chatId) => sessions.get(chatId),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await chat.runtime.close();
    },
  };
}
