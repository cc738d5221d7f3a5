#!/usr/bin/env node
// Memory of open streams (issue 14, "memory per open stream bounded"): STREAMS streamed turns at
// once whose consumers never read until the turns have ended, each answer streamed by the
// simulated model one word per delta. A TurnStream buffers up to `highWaterMark` unread parts and
// then merges further deltas into the last buffered one, so what an unread stream holds is a
// bounded number of parts plus the answer's text, however many deltas the answer had. For
// contrast, the same with a `highWaterMark` so high that nothing is merged (one part per delta).
//
// Heap per open stream = (heap with the unread streams held − heap once they are dropped) ÷
// their number, after full GCs, so what the stores keep (the messages) is not counted.
//
//   node --expose-gc bench/streams-memory.mjs     (after `pnpm build`; `pnpm bench` runs it)
//   STREAMS=200 node --expose-gc bench/streams-memory.mjs
import { LLMSIM_DEFAULT_MODEL } from '@everruns-ts/core';
import {
  InProcessRuntimeBuilder,
  inMemoryBackends,
  LlmSimConfig,
  LlmSimDriver,
} from '@everruns-ts/runtime';

if (typeof globalThis.gc !== 'function') {
  console.error('run node with --expose-gc');
  process.exit(2);
}
const STREAMS = Number(process.env.STREAMS ?? 1000);
// Answer lengths in words (= text deltas per answer); fewer streams for the longest answers, so
// a run stays around half a million deltas.
const SIZES = [100, 1000, 5000];
const UNMERGED = 1_000_000_000;

const fullGc = () => {
  for (let index = 0; index < 4; index++) globalThis.gc();
};
const heapUsed = () => {
  fullGc();
  return process.memoryUsage().heapUsed;
};

async function measure(words, streams, highWaterMark) {
  const driver = new LlmSimDriver(LlmSimConfig.lorem(words).withStreaming({ wordsPerChunk: 1 }));
  const runtime = await new InProcessRuntimeBuilder()
    .driver(driver)
    .defaultModel(LLMSIM_DEFAULT_MODEL)
    .harness({ id: 'harness_bench', name: 'bench', systemPrompt: 'You write.' })
    .options({ keepTurnContexts: 0 })
    .backends(inMemoryBackends({ events: { keepEvents: false } }))
    .build();
  const sessions = [];
  for (let index = 0; index < streams; index++) {
    sessions.push((await runtime.createSession({ harnessId: 'harness_bench' })).id);
  }
  const options = highWaterMark === undefined ? {} : { highWaterMark };
  let open = sessions.map((sessionId) =>
    runtime.streamTextTurn(sessionId, 'Write something.', options),
  );
  // Every turn runs to its end without anyone reading its stream.
  const results = await Promise.all(open.map((stream) => stream.result));
  if (results.some((result) => !result.success)) throw new Error('a turn failed');
  const textLength = results[0].response.length;
  const parts = Math.max(...open.map((stream) => stream.bufferedParts));
  const held = heapUsed();
  // Read one stream to its end: the buffered deltas carry the whole answer.
  let streamed = '';
  for await (const part of open[0]) if (part.type === 'text-delta') streamed += part.text;
  if (streamed !== results[0].response) throw new Error('the buffered deltas lost text');
  open = undefined;
  const dropped = heapUsed();
  await runtime.close();
  return {
    words,
    streams,
    highWaterMark: highWaterMark ?? 'default',
    bufferedPartsPerStream: parts,
    answerKb: +(textLength / 1024).toFixed(1),
    heapKbPerOpenStream: +((held - dropped) / streams / 1024).toFixed(1),
  };
}

const rows = [];
// Warm-up (JIT), not reported.
await measure(100, 100);
for (const words of SIZES) {
  const streams = Math.max(10, Math.min(STREAMS, Math.floor((STREAMS * 100) / words)));
  rows.push(await measure(words, streams));
  rows.push(await measure(words, streams, UNMERGED));
}
console.log(
  '| words (deltas) per answer | open streams | highWaterMark | buffered parts per stream | answer KB | heap KB per open stream |',
);
console.log('|---|---|---|---|---|---|');
for (const row of rows) {
  const hwm = row.highWaterMark === UNMERGED ? '10^9 (no merging)' : row.highWaterMark;
  console.log(
    `| ${row.words} | ${row.streams} | ${hwm} | ${row.bufferedPartsPerStream} | ${row.answerKb} | ${row.heapKbPerOpenStream} |`,
  );
}
