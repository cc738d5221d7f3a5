import { isToolError } from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import { mapToolResult, namespacedToolName, TOOL_NAME_PATTERN } from './index.js';

describe('namespacedToolName', () => {
  it('joins server and tool with __ and cleans what providers refuse', () => {
    expect(namespacedToolName('files', 'read', new Set())).toBe('files__read');
    expect(namespacedToolName('files', 'read.file/v2 é', new Set())).toBe('files__read_file_v2__');
  });

  it('stays within 64 characters, also with a suffix', () => {
    const long = 't'.repeat(100);
    const first = namespacedToolName('srv', long, new Set());
    expect(first).toHaveLength(64);
    expect(first).toMatch(TOOL_NAME_PATTERN);
    const second = namespacedToolName('srv', long, new Set([first]));
    expect(second).toHaveLength(64);
    expect(second.endsWith('_2')).toBe(true);
    expect(second).toMatch(TOOL_NAME_PATTERN);
  });

  it('tells apart names that clean to the same text', () => {
    const taken = new Set<string>();
    const names = ['a.b', 'a/b', 'a b'].map((tool) => {
      const name = namespacedToolName('x', tool, taken);
      taken.add(name);
      return name;
    });
    expect(names).toEqual(['x__a_b', 'x__a_b_2', 'x__a_b_3']);
  });
});

describe('mapToolResult', () => {
  it('gives structured content alone as JSON', () => {
    expect(mapToolResult({ content: [], structuredContent: { ok: true } }, 100)).toBe(
      '{"ok":true}',
    );
  });

  it('leaves out a text copy of the structured content and keeps text nested 100,000 levels deep, cut', () => {
    const value = { ok: true };
    expect(
      mapToolResult(
        { content: [{ type: 'text', text: '{"ok": true}' }], structuredContent: value },
        100,
      ),
    ).toBe('{"ok": true}');
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const text = mapToolResult(
      { content: [{ type: 'text', text: deep }], structuredContent: value },
      50,
    );
    expect(typeof text === 'string' && text.startsWith(`${'['.repeat(50)}\n[… `)).toBe(true);
  });

  it('describes blobs by type and size and keeps text of embedded resources', () => {
    expect(
      mapToolResult(
        {
          content: [
            { type: 'audio', data: 'AAAA', mimeType: 'audio/wav' },
            { type: 'resource', resource: { uri: 'file:///a.bin', blob: 'AAAAAA==' } },
          ],
        },
        1_000,
      ),
    ).toBe(
      [
        '[audio audio/wav, 3 bytes, not shown: tool results are text]',
        '[resource file:///a.bin, 4 bytes, not shown: tool results are text]',
      ].join('\n'),
    );
  });

  it('makes isError a tool error, with a message even when the server gave none', () => {
    const failed = mapToolResult({ isError: true, content: [] }, 100);
    expect(isToolError(failed) && failed.message).toMatch(/without a message/);
  });
});
