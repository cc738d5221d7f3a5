import { describe, expect, it } from 'vitest';
import { pageTextLines, pageTextLinesInSlices } from './file-text.js';

describe('pageTextLinesInSlices', () => {
  it('pages exactly as pageTextLines, small and large texts, every offset and limit kind', async () => {
    const texts = [
      '',
      'one line, no end',
      'a\nb\nc\n',
      '\n\n\n',
      'x'.repeat(300_000),
      'ab\n'.repeat(200_000),
      `${'line\n'.repeat(100_000)}tail without end`,
    ];
    const pages = [
      {},
      { offset: 0, limit: 1 },
      { offset: 2 },
      { offset: 1, limit: 0 },
      { offset: 99_998, limit: 5 },
      { offset: 1_000_000 },
      { limit: 3 },
    ];
    for (const text of texts) {
      for (const options of pages) {
        expect(await pageTextLinesInSlices(text, options, 1), JSON.stringify(options)).toEqual(
          pageTextLines(text, options),
        );
      }
    }
  });

  it('lets timers run while it pages a text of millions of lines', async () => {
    const text = 'a\n'.repeat(5_000_000);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    try {
      const page = await pageTextLinesInSlices(text, { offset: 4_999_998 }, 1);
      expect(page).toEqual({ content: 'a\na\n', totalLines: 5_000_000, truncated: true });
    } finally {
      clearInterval(timer);
    }
    expect(ticks).toBeGreaterThan(0);
  });
});
