#!/usr/bin/env node
// The stores' part of the peer benchmark's A turn, without the engine: fresh default in-memory
// backends (as the adapter builds a runtime per conversation), a session, and the 4 messages and
// 13 events a math turn writes, with the same data, through the stores' own methods. What the
// data model costs on its own, against which `bench/profile-turns.mjs` (the whole turn) reads
// what the runtime, the engine, validation, the model and the tool add.
//
//   pnpm build && node bench/store-floor.mjs
import { newId } from '@everruns-ts/core';
import { inMemoryBackends } from '@everruns-ts/runtime';
import { allocatedBytes, sampleAllocations } from './allocation-profile.mjs';

const usage = () => ({ inputTokens: 0, outputTokens: 0 });
async function turn() {
  const b = inMemoryBackends();
  const s = await b.sessions.createSession({
    id: newId('session'),
    harnessId: 'harness_calculator',
    tags: [],
    capabilities: [],
    initialFiles: [],
    status: 'started',
    createdAt: '2026-12-06T00:00:00.000Z',
    updatedAt: '2026-12-06T00:00:00.000Z',
  });
  const sid = s.id,
    turnId = newId('turn');
  const ev = (type, data) => b.events.emitSync({ type, sessionId: sid, turnId, data });
  const u = await b.messages.storeMessage(sid, {
    role: 'user',
    turnId,
    content: [{ type: 'text', text: 'What is 2 + 2?' }],
    idempotencyKey: `${turnId}/input`,
  });
  ev('input.message', { messageId: u.id, seq: u.seq, text: 'What is 2 + 2?' });
  await b.sessions.updateSessionStatus(sid, 'active');
  ev('session.activated', {});
  ev('turn.started', { inputMessageId: u.id });
  ev('reason.started', { iteration: 1, model: 'fake-model', providerType: 'fake' });
  const a1 = await b.messages.storeMessage(sid, {
    role: 'agent',
    turnId,
    content: [{ type: 'tool_call', id: 'call_1', name: 'add', arguments: { a: 2, b: 2 } }],
    idempotencyKey: `${turnId}/reason/1`,
    metadata: { iteration: 1, usage: usage(), stopReason: 'tool_calls', model: 'fake-model' },
  });
  ev('output.message.completed', {
    messageId: a1.id,
    seq: a1.seq,
    text: '',
    toolCalls: 1,
    iteration: 1,
    calls: [{ id: 'call_1', name: 'add', arguments: { a: 2, b: 2 } }],
  });
  ev('reason.completed', {
    iteration: 1,
    success: true,
    toolCalls: 1,
    usage: usage(),
    stopReason: 'tool_calls',
  });
  ev('tool.started', {
    toolCallId: 'call_1',
    toolName: 'add',
    arguments: { a: 2, b: 2 },
    iteration: 1,
  });
  const t = await b.messages.storeMessage(sid, {
    role: 'tool_result',
    turnId,
    content: [{ type: 'tool_result', toolCallId: 'call_1', content: '4', isError: false }],
    idempotencyKey: `${turnId}/tool/call_1`,
    metadata: { toolName: 'add', iteration: 1 },
  });
  ev('tool.completed', {
    toolCallId: 'call_1',
    toolName: 'add',
    messageId: t.id,
    isError: false,
    iteration: 1,
  });
  ev('reason.started', { iteration: 2, model: 'fake-model', providerType: 'fake' });
  const a2 = await b.messages.storeMessage(sid, {
    role: 'agent',
    turnId,
    content: [{ type: 'text', text: '4' }],
    idempotencyKey: `${turnId}/reason/2`,
    metadata: { iteration: 2, usage: usage(), stopReason: 'end_turn', model: 'fake-model' },
  });
  ev('output.message.completed', {
    messageId: a2.id,
    seq: a2.seq,
    text: '4',
    toolCalls: 0,
    iteration: 2,
    calls: [],
  });
  ev('reason.completed', {
    iteration: 2,
    success: true,
    toolCalls: 0,
    usage: usage(),
    stopReason: 'end_turn',
  });
  ev('turn.completed', { iterations: 2, usage: usage() });
  await b.sessions.updateSessionStatus(sid, 'idle');
  ev('session.idled', {});
}
// Warm-up, then CPU and wall time per turn, then allocation per turn (every allocation, those the
// next scavenge frees included, sampled every 128 bytes).
for (let i = 0; i < 3000; i++) await turn();
const N = 5000;
const c0 = process.cpuUsage();
const times = [];
for (let i = 0; i < N; i++) {
  const t0 = performance.now();
  await turn();
  times.push(performance.now() - t0);
}
const c = process.cpuUsage(c0);
times.sort((a, b) => a - b);
const bytes = allocatedBytes(await sampleAllocations(turn, 1000, 128));
console.log(
  JSON.stringify({
    cpu_us: +((c.user + c.system) / N).toFixed(1),
    median_us: +(times[N >> 1] * 1000).toFixed(1),
    kb_per_turn: +(bytes / 1000 / 1024).toFixed(1),
  }),
);
