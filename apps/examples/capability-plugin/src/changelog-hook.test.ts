import { BUILTIN_CAPABILITIES } from '@everruns-ts/builtins';
import type { Message } from '@everruns-ts/core';
import { InProcessRuntimeBuilder, LlmSimConfig } from '@everruns-ts/runtime';
import { describe, expect, it } from 'vitest';
import { CHANGELOG_CAPABILITY_ID, changelogCapability } from './index.js';

function toolResults(messages: Message[]) {
  const results = new Map<string, { content: string; isError: boolean }>();
  for (const message of messages)
    for (const part of message.content)
      if (part.type === 'tool_result') results.set(part.toolCallId, part);
  return results;
}

describe("the changelog plugin's beforeToolCall hook", () => {
  it('vetoes the file tools writing the changelog, and lets them write other files', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .builtins(BUILTIN_CAPABILITIES)
      .capability(changelogCapability)
      .llmSim(
        LlmSimConfig.sequence(['', 'ok']).withToolCallSequence([
          [
            {
              id: 'entry',
              name: 'add_changelog_entry',
              arguments: { version: '1.0.0', change: 'First.' },
            },
            {
              id: 'write',
              name: 'write_file',
              arguments: { path: '/CHANGELOG.md', content: 'gone' },
            },
            { id: 'relative', name: 'delete_file', arguments: { path: 'CHANGELOG.md' } },
            { id: 'other', name: 'write_file', arguments: { path: '/NOTES.md', content: 'kept' } },
          ],
          [],
        ]),
      )
      .singleSession((session) => session.harness('r', '').withCapability(CHANGELOG_CAPABILITY_ID))
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    expect(await runtime.runTextTurn(sessionId, 'go')).toMatchObject({ success: true });
    const results = toolResults(await runtime.messages(sessionId));
    for (const id of ['write', 'relative']) {
      expect(results.get(id)).toMatchObject({
        toolCallId: id,
        isError: true,
        content: expect.stringContaining('/CHANGELOG.md is kept by add_changelog_entry'),
      });
    }
    expect(results.get('other')?.isError).toBe(false);
    expect((await runtime.readFile(sessionId, '/CHANGELOG.md')).content).toContain('- First.');
    expect((await runtime.readFile(sessionId, '/NOTES.md')).content).toBe('kept');
    await runtime.close();
  });
});
