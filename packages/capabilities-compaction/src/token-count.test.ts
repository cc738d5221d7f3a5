import type { Message } from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import { estimateTokens, TOKENS_PER_MESSAGE, TokenCounter, tokenizerFor } from './index.js';

function message(seq: number, content: Message['content']): Message {
  return {
    id: `m${seq}`,
    sessionId: 's',
    seq,
    role: content[0]?.type === 'tool_result' ? 'tool_result' : 'user',
    content,
    createdAt: '2026-01-01T00:00:00.000Z',
  };
}

describe('token counting', () => {
  it('picks the tokenizer by model family', () => {
    expect(tokenizerFor('gpt-4o-mini')).toBe('o200k_base');
    expect(tokenizerFor('openai/gpt-4.1')).toBe('o200k_base');
    expect(tokenizerFor('o3-mini')).toBe('o200k_base');
    expect(tokenizerFor('gpt-5')).toBe('o200k_base');
    expect(tokenizerFor('gpt-4-turbo')).toBe('cl100k_base');
    expect(tokenizerFor('gpt-3.5-turbo')).toBe('cl100k_base');
    expect(tokenizerFor('claude-sonnet-4-5')).toBe('estimate');
    expect(tokenizerFor('llmsim-model')).toBe('estimate');
  });

  it('counts with the real tokenizer for OpenAI models and chars/4 otherwise', async () => {
    const text = 'Compaction keeps long sessions inside the window.';
    const o200k = await TokenCounter.forModel('gpt-4o');
    const cl100k = await TokenCounter.forModel('gpt-4');
    const estimate = await TokenCounter.forModel('claude-sonnet-4-5');
    // Real BPE counts: far below the character count, and not the estimate's formula.
    expect(o200k.text(text)).toBeGreaterThan(5);
    expect(o200k.text(text)).toBeLessThan(text.length / 3);
    expect(cl100k.text('hello world')).toBe(2);
    expect(o200k.text('hello world')).toBe(2);
    expect(estimate.text(text)).toBe(Math.ceil(text.length / 4));
    expect(estimateTokens('abcde')).toBe(2);
  });

  it('counts every part the model is sent, with a per-message overhead', async () => {
    const counter = await TokenCounter.forModel('gpt-4o');
    const call = message(1, [{ type: 'tool_call', id: 'c1', name: 'add', arguments: { a: 1 } }]);
    const result = message(2, [
      { type: 'tool_result', toolCallId: 'c1', content: 'result text', isError: false },
    ]);
    expect(counter.message(call)).toBe(TOKENS_PER_MESSAGE + counter.text('add {"a":1}'));
    expect(counter.message(result)).toBe(TOKENS_PER_MESSAGE + counter.text('result text'));
    expect(
      counter.context({
        systemPrompt: 'Be brief.',
        messages: [call, result],
        tools: [{ name: 'add', description: 'Adds.', inputSchema: { type: 'object' } }],
      }),
    ).toBe(
      counter.text('Be brief.') +
        counter.message(call) +
        counter.message(result) +
        counter.tools([{ name: 'add', description: 'Adds.', inputSchema: { type: 'object' } }]),
    );
  });
});
