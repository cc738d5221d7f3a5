// Helpers of this package's tests (not built, not published).
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { type ErrorCode, EverrunsError } from '@everruns-ts/core';
import { expect } from 'vitest';

/** Awaits a rejection with an `EverrunsError` of `code` and returns it. */
export async function expectCode(
  promise: Promise<unknown>,
  code: ErrorCode,
): Promise<EverrunsError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (!EverrunsError.isInstance(error))
    throw error ?? new Error(`expected ${code}, nothing thrown`);
  expect(error.code).toBe(code);
  return error;
}

/** Every entry under `directory`, links not followed. */
export function tree(directory: string, prefix = ''): string[] {
  const entries: string[] = [];
  for (const name of readdirSync(directory).sort()) {
    const full = join(directory, name);
    const stat = lstatSync(full);
    if (stat.isSymbolicLink()) entries.push(`${prefix}${name} -> ${readlinkSync(full)}`);
    else if (stat.isDirectory()) {
      entries.push(`${prefix}${name}/`);
      entries.push(...tree(full, `${prefix}${name}/`));
    } else entries.push(`${prefix}${name}: ${readFileSync(full, 'utf8')}`);
  }
  return entries;
}
