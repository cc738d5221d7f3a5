import { z } from 'zod';
import { everrunsError } from './errors.js';
import { lazySchema } from './lazy-schema.js';

/**
 * Where the runtime, the stores and the durable host report what happened to them (retries,
 * lease take-overs, reconnects, dropped events): the shape of a pino logger and of most others,
 * `level(obj, msg?)`. The object holds identifiers, counts and error codes only; never message
 * content, tool arguments or results, API keys or other secrets. `console` fits through
 * {@link consoleLogger}.
 */
export interface EverrunsLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/** Schema of {@link EverrunsLogger}: an object (or function) with the four level functions. */
export const everrunsLoggerSchema = lazySchema(() =>
  z.custom<EverrunsLogger>(
    (value) =>
      (typeof value === 'object' || typeof value === 'function') &&
      value !== null &&
      LEVELS.every((level) => typeof (value as Record<string, unknown>)[level] === 'function'),
    'logger must have debug, info, warn and error functions',
  ),
);

/**
 * The logger of an options object, validated: `undefined` stays `undefined`; anything without
 * the four level functions throws `INVALID_INPUT` naming `where`.
 */
export function parseLogger(value: unknown, where: string): EverrunsLogger | undefined {
  if (value === undefined) return undefined;
  if (!everrunsLoggerSchema.safeParse(value).success) {
    throw everrunsError(
      'INVALID_INPUT',
      `${where}: logger must have debug, info, warn and error functions`,
    );
  }
  return value as EverrunsLogger;
}

/** A logger that drops everything: what runs without a `logger` option use. */
export const silentLogger: EverrunsLogger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** What {@link consoleLogger} writes to: `console` or anything with its four methods. */
export interface ConsoleLike {
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

/**
 * An {@link EverrunsLogger} over `console` (or another {@link ConsoleLike}): each call writes the
 * message, then the object, at the matching console level.
 */
export function consoleLogger(target: ConsoleLike = console): EverrunsLogger {
  const write = (level: (typeof LEVELS)[number]) => (obj: object, msg?: string) => {
    if (msg === undefined) target[level](obj);
    else target[level](msg, obj);
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

/**
 * The fields of an error a log entry may carry: its name and code (an `EverrunsError` code, a
 * PostgreSQL SQLSTATE, a Node `E…` code), never its message, which may quote content.
 */
export function errorLogFields(error: unknown): { name?: string; code?: string } {
  if (error === null || typeof error !== 'object') return {};
  const { name, code } = error as { name?: unknown; code?: unknown };
  return {
    ...(typeof name === 'string' ? { name } : {}),
    ...(typeof code === 'string' ? { code } : {}),
  };
}
