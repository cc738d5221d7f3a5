import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type StreamingChatServer, startStreamingChatServer } from './server.js';

const POLL = { timeout: 20_000, interval: 20 };

function chatBody(chatId: string, text: string) {
  return JSON.stringify({
    id: chatId,
    messages: [{ id: crypto.randomUUID(), role: 'user', parts: [{ type: 'text', text }] }],
    trigger: 'submit-message',
  });
}

/** The `data:` payloads of a UI message stream body. */
function dataOf(body: string): string[] {
  return body
    .split('\n\n')
    .filter((event) => event.startsWith('data: '))
    .map((event) => event.slice('data: '.length));
}

/** The answer text of a UI message stream body: its text deltas joined. */
function answerOf(body: string): string {
  return dataOf(body)
    .filter((item) => item !== '[DONE]')
    .map((item) => JSON.parse(item) as { type: string; delta?: string })
    .filter((chunk) => chunk.type === 'text-delta')
    .map((chunk) => chunk.delta)
    .join('');
}

describe('the streaming chat server', () => {
  let server: StreamingChatServer;

  beforeAll(async () => {
    server = await startStreamingChatServer({ port: 0, chunkDelayMs: 10 });
  });

  afterAll(async () => {
    await server?.close();
  });

  it('answers POST /api/chat in the UI message stream protocol, the chat keeping one session', async () => {
    const chatId = `chat-${crypto.randomUUID()}`;
    const first = await fetch(new URL('/api/chat', server.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: chatBody(chatId, 'What is 6 * 7?'),
    });
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toBe('text/event-stream');
    expect(first.headers.get('x-vercel-ai-ui-message-stream')).toBe('v1');
    const data = dataOf(await first.text());
    expect(data.at(-1)).toBe('[DONE]');
    const chunks = data.slice(0, -1).map((item) => JSON.parse(item) as Record<string, unknown>);
    const answer = chunks
      .filter((chunk) => chunk.type === 'text-delta')
      .map((chunk) => chunk.delta)
      .join('');
    expect(answer).toContain('6 × 7 = 42.');
    expect(chunks).toContainEqual(
      expect.objectContaining({
        type: 'tool-input-available',
        toolName: 'multiply',
        input: { a: 6, b: 7 },
      }),
    );
    expect(chunks.at(-1)).toEqual({ type: 'finish', finishReason: 'stop' });

    const second = await fetch(new URL('/api/chat', server.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: chatBody(chatId, 'Thanks!'),
    });
    expect(answerOf(await second.text())).toContain('simulated model');
    const sessionId = server.sessionOf(chatId) as string;
    const users = (await server.chat.runtime.messages(sessionId)).filter(
      (message) => message.role === 'user',
    );
    expect(users).toHaveLength(2);
  });

  it('aborts the turn of a client that goes away mid-answer, leaving the session ready for the next', async () => {
    const chatId = `chat-${crypto.randomUUID()}`;
    const controller = new AbortController();
    const response = await fetch(new URL('/api/chat', server.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: chatBody(chatId, 'What is 1 + 2?'),
      signal: controller.signal,
    });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    controller.abort();
    const sessionId = server.sessionOf(chatId) as string;
    await expect
      .poll(async () => (await server.chat.runtime.getSession(sessionId))?.status, POLL)
      .toBe('idle');
    const events = server.chat.runtime.events(sessionId).map((event) => event.type);
    expect(events).toContain('turn.failed');

    const again = await fetch(new URL('/api/chat', server.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: chatBody(chatId, 'What is 1 + 2?'),
    });
    expect(answerOf(await again.text())).toContain('1 + 2 = 3.');
  });

  it('refuses a body that is not a chat request, and serves the page', async () => {
    const post = (body: string) =>
      fetch(new URL('/api/chat', server.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
    const notJson = await post('{');
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toEqual({ error: 'The request body is not JSON' });
    expect((await post(JSON.stringify({ messages: [] }))).status).toBe(400);
    const assistantLast = await post(
      JSON.stringify({
        id: 'chat-x',
        messages: [{ role: 'assistant', parts: [{ type: 'text', text: 'Hi' }] }],
      }),
    );
    expect(assistantLast.status).toBe(400);
    expect((await fetch(new URL('/nowhere', server.url))).status).toBe(404);
    const page = await fetch(server.url);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await page.text()).toContain('/api/chat');
  });
});
