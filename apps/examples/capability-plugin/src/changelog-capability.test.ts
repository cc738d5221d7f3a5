import { readFileSync } from 'node:fs';
import { BUILTIN_CAPABILITIES } from '@everruns-ts/builtins';
import type { Message } from '@everruns-ts/core';
import {
  InProcessRuntimeBuilder,
  LlmSimConfig,
  LlmSimDriver,
  PlatformDefinition,
} from '@everruns-ts/runtime';
import { describe, expect, it } from 'vitest';
import { addEntry, CHANGELOG_CAPABILITY_ID, changelogCapability } from './index.js';

function toolResults(messages: Message[]) {
  const results = new Map<string, { content: string; isError: boolean }>();
  for (const message of messages)
    for (const part of message.content)
      if (part.type === 'tool_result') results.set(part.toolCallId, part);
  return results;
}

describe('the changelog plugin in a runtime', () => {
  it('records changes through a real turn, with the built-in file tools its dependency brings', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.sequence(['', '', 'Recorded.']).withToolCallSequence([
        [
          {
            id: 'a',
            name: 'add_changelog_entry',
            arguments: { version: '1.1.0', change: 'Added dark mode.' },
          },
          {
            id: 'b',
            name: 'add_changelog_entry',
            arguments: { version: '1.1.0', change: 'Fixed the login loop.' },
          },
          {
            id: 'c',
            name: 'add_changelog_entry',
            arguments: { version: '1.2.0', change: 'Dropped Node 18.' },
          },
        ],
        [{ id: 'read', name: 'read_file', arguments: { path: '/CHANGELOG.md' } }],
        [],
      ]),
    );
    // No PlatformDefinition: the built-ins the builder is given, our plugin on top.
    const runtime = await new InProcessRuntimeBuilder()
      .builtins(BUILTIN_CAPABILITIES)
      .capability(changelogCapability)
      .driver(driver)
      .defaultModel({ model: 'llmsim-model', providerType: 'llmsim' })
      .singleSession((session) =>
        session
          .harness('releases', 'You keep releases tidy.')
          .withCapability(CHANGELOG_CAPABILITY_ID),
      )
      .build();
    const sessionId = runtime.defaultSessionId() as string;

    const before = await runtime.loadContext(sessionId);
    expect(before.tools.map((tool) => tool.name)).toEqual(
      expect.arrayContaining(['add_changelog_entry', 'read_file', 'write_file']),
    );
    expect(before.systemPrompt).toContain(
      '<capability id="changelog">\nThere is no changelog yet.',
    );

    const result = await runtime.runTextTurn(sessionId, 'Log the 1.1 and 1.2 changes');
    expect(result).toMatchObject({ success: true, response: 'Recorded.', toolCallsCount: 4 });
    const expected = [
      '# Changelog',
      '',
      '## 1.2.0',
      '',
      '- Dropped Node 18.',
      '',
      '## 1.1.0',
      '',
      '- Added dark mode.',
      '- Fixed the login loop.',
      '',
    ].join('\n');
    expect((await runtime.readFile(sessionId, '/CHANGELOG.md')).content).toBe(expected);
    const results = toolResults(await runtime.messages(sessionId));
    expect(JSON.parse(results.get('c')?.content ?? '')).toEqual({
      path: '/CHANGELOG.md',
      version: '1.2.0',
      versions: ['1.2.0', '1.1.0'],
    });
    expect(JSON.parse(results.get('read')?.content ?? '')).toMatchObject({ content: expected });
    // The prompt function ran again before the last model call and saw the new file.
    expect(driver.requests.at(-1)?.systemPrompt).toContain(
      'its versions, newest first: 1.2.0, 1.1.0',
    );
  });

  it('turns bad arguments and a duplicate entry into tool errors, and the turn goes on', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .builtins(BUILTIN_CAPABILITIES)
      .capability(changelogCapability)
      .llmSim(
        LlmSimConfig.sequence(['', 'ok']).withToolCallSequence([
          [
            {
              id: 'version',
              name: 'add_changelog_entry',
              arguments: { version: 'v2', change: 'x' },
            },
            { id: 'missing', name: 'add_changelog_entry', arguments: { version: '2.0.0' } },
            {
              id: 'extra',
              name: 'add_changelog_entry',
              arguments: { version: '2.0.0', change: 'x', author: 'me' },
            },
            {
              id: 'first',
              name: 'add_changelog_entry',
              arguments: { version: '2.0.0', change: 'Same.' },
            },
            {
              id: 'again',
              name: 'add_changelog_entry',
              arguments: { version: '2.0.0', change: 'Same.' },
            },
          ],
          [],
        ]),
      )
      .singleSession((session) => session.harness('r', '').withCapability(CHANGELOG_CAPABILITY_ID))
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    expect(await runtime.runTextTurn(sessionId, 'go')).toMatchObject({
      success: true,
      response: 'ok',
    });
    const results = toolResults(await runtime.messages(sessionId));
    expect(results.get('version')).toMatchObject({
      isError: true,
      content: expect.stringContaining('version: must be a semantic version'),
    });
    expect(results.get('missing')).toMatchObject({
      isError: true,
      content: expect.stringContaining('change:'),
    });
    expect(results.get('extra')).toMatchObject({
      isError: true,
      content: expect.stringContaining('author'),
    });
    expect(results.get('first')).toMatchObject({ isError: false });
    expect(results.get('again')).toMatchObject({
      isError: true,
      content: 'The changelog already has the entry "Same.".',
    });
  });

  it('fails the turn with CAPABILITY_FAILED naming the plugin when its prompt cannot be built', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .builtins(BUILTIN_CAPABILITIES)
      .capability(changelogCapability)
      .llmSim(LlmSimConfig.fixed('never'))
      .singleSession((session) =>
        session
          .harness('r', '')
          .withCapability(CHANGELOG_CAPABILITY_ID, { path: '/docs' })
          .seedTextFile('/docs/readme.md', 'a directory now sits where the changelog should be'),
      )
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    const result = await runtime.runTextTurn(sessionId, 'go');
    expect(result).toMatchObject({ success: false });
    expect(result.error).toMatchObject({
      code: 'CAPABILITY_FAILED',
      details: { capabilityId: 'changelog' },
    });
    expect((await runtime.getSession(sessionId))?.status).toBe('idle');
    expect(runtime.events(sessionId).at(-2)).toMatchObject({
      type: 'turn.failed',
      data: { errorCode: 'CAPABILITY_FAILED' },
    });
  });

  it('rejects a configuration its schema refuses', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .builtins(BUILTIN_CAPABILITIES)
      .capability(changelogCapability)
      .llmSim(LlmSimConfig.fixed('never'))
      .singleSession((session) =>
        session.harness('r', '').withCapability(CHANGELOG_CAPABILITY_ID, { path: 'relative.md' }),
      )
      .build();
    await expect(runtime.loadContext(runtime.defaultSessionId() as string)).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      message: expect.stringContaining('path'),
    });
  });
});

describe('built-ins and a user PlatformDefinition', () => {
  it('registers the built-in capabilities it is given when no platform is given', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .builtins(BUILTIN_CAPABILITIES)
      .llmSim(LlmSimConfig.fixed('ok'))
      .build();
    expect(runtime.platform.capabilities.list().map((capability) => capability.id)).toEqual([
      'current_time',
      'session_file_system',
      'agent_instructions',
      'skills',
      'session',
      'session_storage',
      'stateless_todo_list',
      'web_fetch',
      'memory',
      'persistent_memory',
      'test_math',
      'test_weather',
    ]);
    expect(BUILTIN_CAPABILITIES).toHaveLength(12);
  });

  it('uses only what a given platform registers, so a missing dependency fails the build', async () => {
    const bare = new PlatformDefinition();
    bare.capabilities.register(changelogCapability);
    await expect(
      new InProcessRuntimeBuilder()
        .platformDefinition(bare)
        .llmSim(LlmSimConfig.fixed('ok'))
        .build(),
    ).rejects.toMatchObject({
      code: 'CAPABILITY_NOT_FOUND',
      message: 'Capability changelog depends on session_file_system, which is not registered',
    });

    const chosen = new PlatformDefinition();
    const fileSystem = BUILTIN_CAPABILITIES.find(
      (capability) => capability.id === 'session_file_system',
    );
    if (!fileSystem) throw new Error('no built-in session_file_system');
    chosen.capabilities.register(fileSystem).register(changelogCapability);
    const runtime = await new InProcessRuntimeBuilder()
      .platformDefinition(chosen)
      .llmSim(LlmSimConfig.fixed('ok'))
      .singleSession((session) => session.harness('r', '').withCapability(CHANGELOG_CAPABILITY_ID))
      .build();
    expect(runtime.platform.capabilities.list().map((capability) => capability.id)).toEqual([
      'session_file_system',
      'changelog',
    ]);
    expect((await runtime.runTextTurn(runtime.defaultSessionId() as string, 'hi')).success).toBe(
      true,
    );
  });
});

describe('addEntry', () => {
  it('creates the file, adds sections at the top and appends within a section', () => {
    const one = addEntry(null, '1.0.0', 'First.');
    expect(one).toBe('# Changelog\n\n## 1.0.0\n\n- First.\n');
    const two = addEntry(one, '1.0.0', 'Second.');
    expect(two).toBe('# Changelog\n\n## 1.0.0\n\n- First.\n- Second.\n');
    expect(addEntry(two, '1.1.0', 'Newer.')).toBe(
      '# Changelog\n\n## 1.1.0\n\n- Newer.\n\n## 1.0.0\n\n- First.\n- Second.\n',
    );
  });
});

describe('docs/write-a-capability.md', () => {
  it('shows this capability source verbatim', () => {
    const page = readFileSync(
      new URL('../../../../docs/write-a-capability.md', import.meta.url),
      'utf8',
    );
    const block = /```ts file=changelog-capability\.ts\n([\s\S]*?)\n```/.exec(page)?.[1];
    const source = readFileSync(new URL('./changelog-capability.ts', import.meta.url), 'utf8');
    expect(block).toBe(source.trimEnd());
  });
});
