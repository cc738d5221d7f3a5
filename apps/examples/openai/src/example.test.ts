import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { runOpenAiExample } from './example.js';

/** One streamed Chat Completions answer as server-sent events. */
function streamedAnswer(delta: Record<string, unknown>, finishReason: string): string {
  const chunk = (body: Record<string, unknown>) =>
    `data: ${JSON.stringify({ id: 'chatcmpl-example', object: 'chat.completion.chunk', model: 'fake-model', ...body })}\n\n`;
  return (
    chunk({ choices: [{ index: 0, delta, finish_reason: null }] }) +
    chunk({ choices: [{ index: 0, delta: {}, finish_reason: finishReason }] }) +
    chunk({ choices: [], usage: { prompt_tokens: 50, completion_tokens: 5 } }) +
    'data: [DONE]\n\n'
  );
}

describe('openai example', () => {
  it('answers the seed question through a tool call on an OpenAI-compatible server', async () => {
    const answers = [
      streamedAnswer(
        {
          role: 'assistant',
          tool_calls: [
            {
              index: 0,
              id: 'call_add',
              type: 'function',
              function: { name: 'add', arguments: '{"a":2,"b":2}' },
            },
          ],
        },
        'tool_calls',
      ),
      streamedAnswer({ role: 'assistant', content: '4' }, 'stop'),
    ];
    const apiKey = `sk-example-${randomUUID()}`;
    const authorizations: Array<string | undefined> = [];
    const server = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        authorizations.push(request.headers.authorization);
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        response.end(answers.shift() ?? '');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const { turn, usage } = await runOpenAiExample({
        model: 'fake-model',
        baseUrl: `http://127.0.0.1:${port}/v1`,
        apiKey,
      });
      expect(turn).toMatchObject({
        success: true,
        response: '4',
        toolCallsCount: 1,
        iterations: 2,
      });
      expect(usage).toEqual([
        { inputTokens: 50, outputTokens: 5 },
        { inputTokens: 50, outputTokens: 5 },
      ]);
      expect(authorizations).toEqual([`Bearer ${apiKey}`, `Bearer ${apiKey}`]);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
