// Helpers of this package's tests (not built, not published).
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ErrorCode, EverrunsError } from '@everruns-ts/core';
import { expect } from 'vitest';

/** A temporary layout: `root` (the workspace), `sibling` (`<root>2`) and `outside`, each with a secret. */
export interface Sandbox {
  base: string;
  root: string;
  sibling: string;
  outside: string;
  /** Everything outside the workspace, as `relative path → kind and content`. */
  outsideSnapshot(): Record<string, string>;
  cleanup(): void;
}

export const SECRET = 'SECRET-OUTSIDE-THE-WORKSPACE';

export function makeSandbox(): Sandbox {
  const base = mkdtempSync(join(tmpdir(), 'everruns-escape-'));
  const root = join(base, 'ws');
  const sibling = join(base, 'ws2');
  const outside = join(base, 'outside');
  for (const directory of [root, sibling, outside]) mkdirSync(directory);
  writeFileSync(join(outside, 'secret.txt'), SECRET);
  mkdirSync(join(outside, 'dir'));
  writeFileSync(join(outside, 'dir', 'secret.txt'), SECRET);
  writeFileSync(join(sibling, 'secret.txt'), SECRET);
  return {
    base,
    root,
    sibling,
    outside,
    outsideSnapshot: () => snapshot(base, (name) => name !== 'ws'),
    cleanup: () => rmSync(base, { recursive: true, force: true }),
  };
}

/** Every entry under `directory` (links not followed) with its kind and content or target. */
export function snapshot(
  directory: string,
  include: (topLevelName: string) => boolean = () => true,
): Record<string, string> {
  const result: Record<string, string> = {};
  const visit = (path: string, relative: string) => {
    for (const name of readdirSync(path).sort()) {
      if (relative === '' && !include(name)) continue;
      const full = join(path, name);
      const key = relative === '' ? name : `${relative}/${name}`;
      const stat = lstatSync(full);
      if (stat.isSymbolicLink()) result[key] = `link:${readlinkSync(full)}`;
      else if (stat.isDirectory()) {
        result[key] = 'dir';
        visit(full, key);
      } else if (stat.isFile())
        result[key] = `file:${stat.mode & 0o777}:${readFileSync(full, 'utf8')}`;
      else result[key] = 'special';
    }
  };
  visit(directory, '');
  return result;
}

/** Asserts that `promise` rejects with an `EverrunsError` of `code`. */
export async function expectCode(
  promise: Promise<unknown>,
  code: ErrorCode,
): Promise<EverrunsError> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected ${code}`).toBeDefined();
  if (!EverrunsError.isInstance(caught)) throw caught;
  expect(caught.code).toBe(code);
  return caught;
}

/** Rejects with `HANG` when `promise` takes longer than `milliseconds`. */
export function withDeadline<T>(promise: Promise<T>, milliseconds: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error('HANG: the operation did not finish in time')),
      milliseconds,
    );
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
