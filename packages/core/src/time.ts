let lastMillis = -1;
let lastIso = '';

const twoDigits = (value: number): string => (value < 10 ? `0${value}` : `${value}`);

/**
 * A time in milliseconds since the epoch as `new Date(millis).toISOString()` writes it, built
 * from the date's UTC parts: the first `toISOString()` call in a Node process costs 0.7–1.2 ms
 * (the UTC getters cost microseconds), which every cold start's first turn paid. Years outside
 * 1000–9999 and invalid times go to `toISOString` itself (its six-digit years, its `RangeError`).
 */
export function isoFromMillis(millis: number): string {
  const date = new Date(millis);
  const year = date.getUTCFullYear();
  if (!(year >= 1000 && year <= 9999)) return date.toISOString();
  const milliseconds = date.getUTCMilliseconds();
  return `${year}-${twoDigits(date.getUTCMonth() + 1)}-${twoDigits(date.getUTCDate())}T${twoDigits(
    date.getUTCHours(),
  )}:${twoDigits(date.getUTCMinutes())}:${twoDigits(date.getUTCSeconds())}.${
    milliseconds < 10 ? `00${milliseconds}` : milliseconds < 100 ? `0${milliseconds}` : milliseconds
  }Z`;
}

/**
 * The current time as an ISO 8601 string. Formatting is cached per millisecond: stores and event
 * buses stamp many records within one millisecond of a turn.
 */
export function isoNow(): string {
  const now = Date.now();
  if (now !== lastMillis) {
    lastMillis = now;
    lastIso = isoFromMillis(now);
  }
  return lastIso;
}
