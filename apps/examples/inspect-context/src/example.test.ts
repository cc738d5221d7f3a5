import { describe, expect, it } from 'vitest';
import { describeContext, runInspectContextExample } from './example.js';

describe('inspect-context example', () => {
  it('shows the context before a turn, as sent, and after', async () => {
    const { before, sent, after } = await runInspectContextExample();
    expect(before.messages).toHaveLength(0);
    expect(sent?.messages.map((message) => message.role)).toEqual(['user']);
    expect(after.messages.map((message) => message.role)).toEqual(['user', 'agent']);
    expect(before.tools.map((tool) => tool.name)).toEqual([
      'add',
      'subtract',
      'multiply',
      'divide',
    ]);
    expect(before.maxIterations).toBe(8);
    expect(describeContext('before', before)).toContain('You are a math harness.');
  });
});
