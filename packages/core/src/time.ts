let lastMillis = -1;
let lastIso = '';

/**
 * The current time as an ISO 8601 string. Formatting is cached per millisecond: stores and event
 * buses stamp many records within one millisecond of a turn.
 */
export function isoNow(): string {
  const now = Date.now();
  if (now !== lastMillis) {
    lastMillis = now;
    lastIso = new Date(now).toISOString();
  }
  return lastIso;
}
