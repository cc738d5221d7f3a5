import { type Capability, defineCapability, defineTool, toolError } from '@everruns-ts/core';
import { z } from 'zod';

/** Id of the {@link currentTimeCapability}, as upstream (`current_time`). */
export const CURRENT_TIME_CAPABILITY_ID = 'current_time';

/** Output formats of `get_current_time`. */
export type CurrentTimeFormat = 'iso8601' | 'unix' | 'human';

/** Result of `get_current_time`. */
export interface CurrentTimeResult {
  /** ISO 8601 with the zone's offset, or a readable sentence; absent for `unix`. */
  datetime?: string;
  /** Seconds since the Unix epoch; only for `unix`. */
  timestamp?: number;
  format: CurrentTimeFormat;
  /** The IANA zone used, `UTC` by default. */
  timezone: string;
}

/** The wall-clock parts of `date` in `timeZone`, and the zone's offset from UTC in minutes. */
function zonedParts(date: Date, timeZone: string) {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(date);
  const get = (type: string) => Number(parts.find((part) => part.type === type)?.value ?? 0);
  const wall = Date.UTC(
    get('year'),
    get('month') - 1,
    get('day'),
    get('hour'),
    get('minute'),
    get('second'),
  );
  const offsetMinutes = Math.round((wall - Math.floor(date.getTime() / 1000) * 1000) / 60_000);
  return { wall, offsetMinutes };
}

/** `2026-03-05T14:07:09+05:30` (or `Z` for UTC) for `date` in `timeZone`. */
export function isoInZone(date: Date, timeZone: string): string {
  const { wall, offsetMinutes } = zonedParts(date, timeZone);
  const local = new Date(wall).toISOString().slice(0, 19);
  if (offsetMinutes === 0) return `${local}Z`;
  const sign = offsetMinutes < 0 ? '-' : '+';
  const absolute = Math.abs(offsetMinutes);
  const hours = String(Math.floor(absolute / 60)).padStart(2, '0');
  const minutes = String(absolute % 60).padStart(2, '0');
  return `${local}${sign}${hours}:${minutes}`;
}

const getCurrentTimeTool = defineTool({
  name: 'get_current_time',
  description:
    'Get the current date and time, in ISO 8601 (default), as a Unix timestamp or as readable text, in any IANA time zone (default UTC).',
  inputSchema: z.strictObject({
    timezone: z
      .string()
      .min(1)
      .optional()
      .describe(
        'IANA time zone, for example "UTC", "Europe/Kyiv" or "America/New_York". Default UTC.',
      ),
    format: z
      .enum(['iso8601', 'unix', 'human'])
      .optional()
      .describe('"iso8601" (default), "unix" (seconds) or "human".'),
  }),
  execute: (input) => {
    const timezone = input.timezone ?? 'UTC';
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    } catch {
      return toolError(
        `Unknown time zone "${timezone}": use an IANA name such as "UTC" or "Europe/Berlin".`,
      );
    }
    const now = new Date();
    const format = input.format ?? 'iso8601';
    if (format === 'unix') {
      return {
        timestamp: Math.floor(now.getTime() / 1000),
        format,
        timezone,
      } satisfies CurrentTimeResult;
    }
    if (format === 'human') {
      const datetime = now.toLocaleString('en-US', {
        timeZone: timezone,
        dateStyle: 'full',
        timeStyle: 'long',
      });
      return { datetime, format, timezone } satisfies CurrentTimeResult;
    }
    return { datetime: isoInZone(now, timezone), format, timezone } satisfies CurrentTimeResult;
  },
});

/**
 * The `current_time` capability: one tool, `get_current_time`, returning the current time in a
 * chosen format and IANA time zone. An unknown zone is a tool error. No system-prompt text.
 */
export const currentTimeCapability: Capability = defineCapability({
  id: CURRENT_TIME_CAPABILITY_ID,
  name: 'Current Time',
  description: 'A tool that returns the current date and time in various formats and time zones.',
  tools: [getCurrentTimeTool],
});
