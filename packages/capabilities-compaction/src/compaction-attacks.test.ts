import { randomBytes } from 'node:crypto';
import type { Message } from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver } from '@everruns-ts/driver-llmsim';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { withEventLoopProbe } from '@everruns-ts/runtime-suites';
import { describe, expect, it } from 'vitest';
import { COMPACTION_CAPABILITY_ID, compactionCapability } from './index.js';
import { TOKENIZER_PIECE_CHARS, TokenCounter } from './token-count.js';

// A message the tokenizer is slow on: a megabyte of printable symbols without whitespace, which
// a real tokenizer takes most of a second to count in one go (words go ten times faster).
function symbols(length: number): string {
  const bytes = randomBytes(length);
  let text = '';
  for (let index = 0; index < length; index++) {
    text += String.fromCharCode(33 + ((bytes[index] as number) % 90));
  }
  return text;
}

/** Longest the event loop may stall while the capability counts a turn's context. */
const MAX_EVENT_LOOP_DELAY_MS = 100;

describe('compaction under a message the tokenizer is slow on', () => {
  it('counts a megabyte-long message in slices: the event loop is never held long, and the count is the same', async () => {
    const huge = symbols(1_000_000);
    const counter = await TokenCounter.forModel('gpt-4o');
    const { result: sliced, maxDelayMs } = await withEventLoopProbe(() =>
      counter.textInSlices(huge),
    );
    expect(maxDelayMs).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);
    expect(sliced).toBe(counter.text(huge));
    // Pieces are cut at whitespace where there is some: counting a text of words in pieces gives
    // what counting it whole gives.
    const words = 'The quarterly ledger lists receipts and transfers. '.repeat(2_000);
    expect(words.length).toBeGreaterThan(TOKENIZER_PIECE_CHARS * 10);
    const { encode } = await import('gpt-tokenizer/encoding/o200k_base');
    expect(counter.text(words)).toBe(encode(words).length);
  });

  it('runs a turn whose user message is a megabyte of symbols without holding the event loop, then stops at an abort', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fromFunction(() => 'done'));
    const runtime = await new InProcessRuntimeBuilder()
      .capability(compactionCapability)
      .driver(driver)
      .defaultModel({
        model: 'gpt-4o-mini',
        providerType: 'llmsim',
        apiKey: 'fake-key',
        contextWindow: 10_000_000,
      })
      .singleSession((session) =>
        session
          .harness(`h_${randomBytes(6).toString('hex')}`, 'Answer briefly.')
          .withCapability(COMPACTION_CAPABILITY_ID),
      )
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    const huge = symbols(1_000_000);
    const { result, maxDelayMs } = await withEventLoopProbe(() =>
      runtime.runTextTurn(sessionId, huge),
    );
    expect(result).toMatchObject({ success: true, response: 'done' });
    expect(maxDelayMs).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);
    const sent = driver.requests[0]?.messages.at(-1) as Message;
    expect(sent.content[0]).toMatchObject({ type: 'text', text: huge });

    // A turn aborted while the capability counts another such message ends aborted, promptly.
    const controller = new AbortController();
    const started = performance.now();
    const aborted = runtime.runTextTurn(sessionId, symbols(1_000_000), {
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 30);
    await expect(aborted).rejects.toMatchObject({ code: 'ABORTED' });
    expect(performance.now() - started).toBeLessThan(2_000);
    await runtime.close();
  }, 30_000);
});
