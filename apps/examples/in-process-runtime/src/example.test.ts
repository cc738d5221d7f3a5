import { describe, expect, it } from 'vitest';
import { runInProcessRuntimeExample } from './example.js';

describe('in-process-runtime example', () => {
  it('answers the seed question through a tool call', async () => {
    const result = await runInProcessRuntimeExample();
    expect(result).toMatchObject({
      success: true,
      response: '4',
      toolCallsCount: 1,
      iterations: 2,
    });
  });
});
