import type { Message } from '@everruns-ts/core';
import { LlmSimConfig, type LlmSimToolCall } from '@everruns-ts/driver-llmsim';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { describe, expect, it } from 'vitest';
import { CURRENT_TIME_CAPABILITY_ID, currentTimeCapability, isoInZone } from './index.js';

function toolResults(messages: Message[]) {
  const results = new Map<string, { content: string; isError: boolean }>();
  for (const message of messages)
    for (const part of message.content)
      if (part.type === 'tool_result') results.set(part.toolCallId, part);
  return results;
}

async function runCalls(calls: LlmSimToolCall[]) {
  const runtime = await new InProcessRuntimeBuilder()
    .capability(currentTimeCapability)
    .llmSim(LlmSimConfig.sequence(['', 'done']).withToolCallSequence([calls, []]))
    .singleSession((session) =>
      session.harness('clock', '').withCapability(CURRENT_TIME_CAPABILITY_ID),
    )
    .build();
  const sessionId = runtime.defaultSessionId() as string;
  const result = await runtime.runTextTurn(sessionId, 'what time is it?');
  expect(result).toMatchObject({ success: true, response: 'done' });
  return toolResults(await runtime.messages(sessionId));
}

describe('currentTimeCapability', () => {
  it('returns the time in each format and zone through a real turn', async () => {
    const before = Date.now();
    const results = await runCalls([
      { id: 'iso', name: 'get_current_time', arguments: {} },
      { id: 'unix', name: 'get_current_time', arguments: { format: 'unix' } },
      {
        id: 'human',
        name: 'get_current_time',
        arguments: { format: 'human', timezone: 'Asia/Tokyo' },
      },
      { id: 'india', name: 'get_current_time', arguments: { timezone: 'Asia/Kolkata' } },
    ]);
    const after = Date.now();
    const iso = JSON.parse(results.get('iso')?.content ?? '{}');
    expect(iso).toMatchObject({ format: 'iso8601', timezone: 'UTC' });
    expect(iso.datetime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(Date.parse(iso.datetime)).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(Date.parse(iso.datetime)).toBeLessThanOrEqual(after);
    const unix = JSON.parse(results.get('unix')?.content ?? '{}');
    expect(unix.timestamp).toBeGreaterThanOrEqual(Math.floor(before / 1000));
    expect(unix.timestamp).toBeLessThanOrEqual(Math.ceil(after / 1000));
    expect(JSON.parse(results.get('human')?.content ?? '{}').datetime).toMatch(/ at .*GMT\+9/);
    const india = JSON.parse(results.get('india')?.content ?? '{}');
    expect(india.datetime).toMatch(/\+05:30$/);
    expect(Math.abs(Date.parse(india.datetime) - Date.parse(iso.datetime))).toBeLessThan(60_000);
  });

  it('reports an unknown zone, a wrong format and an extra field as tool errors', async () => {
    const results = await runCalls([
      { id: 'zone', name: 'get_current_time', arguments: { timezone: 'Mars/Olympus' } },
      { id: 'format', name: 'get_current_time', arguments: { format: 'roman' } },
      { id: 'type', name: 'get_current_time', arguments: { timezone: 3 } },
      { id: 'extra', name: 'get_current_time', arguments: { locale: 'uk' } },
    ]);
    expect(results.get('zone')).toMatchObject({
      isError: true,
      content: expect.stringContaining('Unknown time zone "Mars/Olympus"'),
    });
    expect(results.get('format')).toMatchObject({
      isError: true,
      content: expect.stringContaining('format'),
    });
    expect(results.get('type')).toMatchObject({
      isError: true,
      content: expect.stringContaining('timezone'),
    });
    expect(results.get('extra')).toMatchObject({
      isError: true,
      content: expect.stringContaining('locale'),
    });
  });

  it('formats an instant with the zone offset, including half-hour zones and DST', () => {
    const instant = new Date('2026-07-01T12:00:00Z');
    expect(isoInZone(instant, 'UTC')).toBe('2026-07-01T12:00:00Z');
    expect(isoInZone(instant, 'Asia/Kolkata')).toBe('2026-07-01T17:30:00+05:30');
    expect(isoInZone(instant, 'America/New_York')).toBe('2026-07-01T08:00:00-04:00');
    expect(isoInZone(new Date('2026-01-01T12:00:00Z'), 'America/New_York')).toBe(
      '2026-01-01T07:00:00-05:00',
    );
  });
});
