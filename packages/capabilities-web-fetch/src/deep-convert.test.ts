import { describe, expect, it } from 'vitest';
import { convertHtml } from './convert-html.js';

describe('convertHtml at the deepest nesting the configuration allows', () => {
  for (const format of ['markdown', 'text'] as const) {
    it(`converts 1,000 nested elements to ${format} without overflowing the stack`, async () => {
      const html = `${'<div><ul><li><blockquote>'.repeat(250)}deep text${'</blockquote></li></ul></div>'.repeat(250)}`;
      const converted = await convertHtml(html, {
        format,
        maxDepth: 1000,
        timeoutMs: 20_000,
        maxOutputChars: 1_000_000,
        samples: [],
      });
      expect(converted.content).toContain('deep text');
    });
  }
});
