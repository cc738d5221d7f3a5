#!/usr/bin/env node
// Profiles the peer benchmark's A scenario (a fresh conversation per turn: build a runtime with
// default in-memory backends, create a session, run one math turn) the way bench/peer-adapter
// runs it, and prints CPU time per turn (less sensitive to a loaded machine than wall time), the
// wall median and p99, and the GC pauses seen while timing.
//
//   node --expose-gc bench/profile-turns.mjs [turns=4000] [variant=default]
//   node --expose-gc --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile-turns.mjs
//   node --expose-gc --trace-gc bench/profile-turns.mjs
//   HEAP=1 node --expose-gc bench/profile-turns.mjs   # also C: heap kept per conversation
//   COUNT=1 node --expose-gc bench/profile-turns.mjs  # also promises made and bytes allocated
//                                                     # per turn: counts, steady on a noisy machine
//   COUNT=20 node --expose-gc bench/profile-turns.mjs # ... and the 20 functions allocating most
//
// Uses the workspace build (pnpm turbo run build --filter=@everruns-ts/peer-adapter...).
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { allocatedBytes, sampleAllocations } from './allocation-profile.mjs';
import { createAdapter } from './peer-adapter/adapter.mjs';

const turns = Number(process.argv[2] ?? 4000);
const variant = process.argv[3] ?? 'default';
const adapter = await createAdapter(variant);
const QUESTION = 'What is 2 + 2?';

async function oneTurn() {
  const conversation = adapter.newConversation();
  const answer = await conversation.turn(QUESTION);
  if (String(answer).trim() !== '4') throw new Error(`unexpected answer ${answer}`);
}

for (let i = 0; i < 2000; i++) await oneTurn();

const pauses = [];
const observer = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) pauses.push(entry.duration);
});
observer.observe({ entryTypes: ['gc'] });
const times = new Array(turns);
const cpu0 = process.cpuUsage();
const wall0 = performance.now();
for (let i = 0; i < turns; i++) {
  const start = performance.now();
  await oneTurn();
  times[i] = (performance.now() - start) * 1000;
}
const wall = (performance.now() - wall0) * 1000;
const cpu = process.cpuUsage(cpu0);
await new Promise((resolve) => setTimeout(resolve, 10));
observer.disconnect();
times.sort((a, b) => a - b);
const at = (q) => times[Math.min(times.length - 1, Math.ceil(q * times.length) - 1)];
pauses.sort((a, b) => a - b);
console.log(
  JSON.stringify({
    variant,
    turns,
    cpu_us_per_turn: +((cpu.user + cpu.system) / turns).toFixed(1),
    wall_us_per_turn: +(wall / turns).toFixed(1),
    median_us: +at(0.5).toFixed(1),
    p99_us: +at(0.99).toFixed(1),
    p99_over_median: +(at(0.99) / at(0.5)).toFixed(1),
    gc_count: pauses.length,
    gc_ms_total: +pauses.reduce((a, b) => a + b, 0).toFixed(1),
    gc_max_ms: +(pauses[pauses.length - 1] ?? 0).toFixed(2),
  }),
);

if (process.env.HEAP) {
  const gc = () => {
    for (let i = 0; i < 4; i++) globalThis.gc();
  };
  // heapUsed is what the peer benchmark reads; arrayBuffers adds memory kept outside the JS heap
  // (typed arrays' backing stores), so a compact form cannot hide what it keeps there.
  const used = () => {
    const { heapUsed, arrayBuffers } = process.memoryUsage();
    return { heap: heapUsed, all: heapUsed + arrayBuffers };
  };
  gc();
  const base = used();
  const conversations = Array.from({ length: 200 }, () => adapter.newConversation());
  await Promise.all(
    conversations.map(async (conversation) => {
      for (let t = 0; t < 10; t++) await conversation.turn(QUESTION);
    }),
  );
  gc();
  const held = used();
  conversations.length = 0;
  gc();
  const dropped = used();
  const kb = (bytes) => +(bytes / 200 / 1024).toFixed(1);
  console.log(
    JSON.stringify({
      heap_kb_per_conversation: kb(held.heap - base.heap),
      with_array_buffers_kb: kb(held.all - base.all),
      freed_on_drop_kb: kb(held.heap - dropped.heap),
    }),
  );
}

if (process.env.COUNT) {
  const { createHook } = await import('node:async_hooks');
  const counted = 1000;
  let promises = 0;
  const hook = createHook({
    init(_id, type) {
      if (type === 'PROMISE') promises++;
    },
  });
  hook.enable();
  for (let i = 0; i < counted; i++) await oneTurn();
  hook.disable();
  // Every allocation, those the next scavenge frees included, sampled every 256 bytes.
  const head = await sampleAllocations(oneTurn, counted);
  const bytes = allocatedBytes(head);
  const byFunction = new Map();
  const walk = (node) => {
    const { functionName, url, lineNumber } = node.callFrame;
    const where = `${functionName || '(anonymous)'} ${url.split('/').slice(-3).join('/')}:${lineNumber + 1}`;
    byFunction.set(where, (byFunction.get(where) ?? 0) + node.selfSize);
    for (const child of node.children) walk(child);
  };
  walk(head);
  console.log(
    JSON.stringify({
      promises_per_turn: +(promises / counted).toFixed(1),
      allocated_kb_per_turn: +(bytes / counted / 1024).toFixed(1),
    }),
  );
  // COUNT=20 also lists the 20 functions that allocate the most (KB per turn, self size).
  const top = Number(process.env.COUNT) > 1 ? Number(process.env.COUNT) : 0;
  for (const [where, size] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(size / counted / 1024).toFixed(2).padStart(7)} KB  ${where}`);
  }
}
