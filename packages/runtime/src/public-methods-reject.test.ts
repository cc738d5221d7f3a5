import { EverrunsError } from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import { InProcessRuntime, InProcessRuntimeBuilder, LlmSimConfig } from './index.js';

// Issue 13, invariant 5: public async methods reject; they never throw synchronously.

const HOSTILE_ARGUMENTS: unknown[][] = [
  [],
  [42],
  [null],
  [undefined, undefined],
  [42, 42],
  ['session_x', 42],
  [null, null, null],
  ['session_x', { role: 'user', content: 42 }, null],
  [{}, [], 'x'],
];

describe('InProcessRuntime public methods and bad arguments', () => {
  it('runTextTurn(id, 42) rejects with INVALID_INPUT instead of throwing', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .llmSim(LlmSimConfig.fixed('ok'))
      .singleSession((session) => session.harness('h', 'Help.'))
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    let returned: Promise<unknown> | undefined;
    expect(() => {
      returned = runtime.runTextTurn(sessionId, 42 as never);
    }).not.toThrow();
    const error = await (returned as Promise<unknown>).catch((caught: unknown) => caught);
    expect(EverrunsError.hasCode(error, 'INVALID_INPUT')).toBe(true);
    expect(await runtime.messages(sessionId)).toEqual([]);
    const steered = runtime.steerText(sessionId, null as never);
    await expect(steered).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });

  it('never throws synchronously from any public method, and methods returning promises always do', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .llmSim(LlmSimConfig.fixed('ok'))
      .singleSession((session) => session.harness('h', 'Help.'))
      .build();
    const names = Object.getOwnPropertyNames(InProcessRuntime.prototype).filter((name) => {
      const descriptor = Object.getOwnPropertyDescriptor(InProcessRuntime.prototype, name);
      return name !== 'constructor' && name !== 'close' && typeof descriptor?.value === 'function';
    });
    expect(names).toEqual(
      expect.arrayContaining([
        'runTurn',
        'runTextTurn',
        'submitToolResults',
        'steer',
        'steerText',
        'loadContext',
        'messages',
        'getSession',
        'createSession',
      ]),
    );
    for (const name of names) {
      const method = (runtime as unknown as Record<string, (...args: unknown[]) => unknown>)[name];
      let promises = 0;
      let values = 0;
      for (const args of HOSTILE_ARGUMENTS) {
        let result: unknown;
        expect(
          () => {
            result = method?.apply(runtime, args);
          },
          `${name}(${args.map((value) => JSON.stringify(value)).join(', ')})`,
        ).not.toThrow();
        if (result instanceof Promise) {
          promises++;
          // Settles (resolved or rejected) without hanging: no turn runs, so nothing waits.
          await result.catch(() => undefined);
        } else values++;
      }
      expect(promises === 0 || values === 0, `${name} returns a promise only sometimes`).toBe(true);
    }
    await expect(runtime.close()).resolves.toBeUndefined();
  });
});

describe('the default input size limit', () => {
  it('accepts 1 MiB of text and refuses one byte more with LIMIT_EXCEEDED, storing nothing', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .llmSim(LlmSimConfig.fixed('ok'))
      .singleSession((session) => session.harness('h', 'Help.'))
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    await expect(runtime.runTextTurn(sessionId, 'x'.repeat(1_048_577))).rejects.toMatchObject({
      code: 'LIMIT_EXCEEDED',
      details: { size: 1_048_577, maxInputBytes: 1_048_576 },
    });
    expect(await runtime.messages(sessionId)).toEqual([]);
    expect(runtime.events(sessionId)).toEqual([]);
    expect((await runtime.getSession(sessionId))?.status).toBe('started');
    expect(await runtime.runTextTurn(sessionId, 'x'.repeat(1_048_576))).toMatchObject({
      success: true,
    });
  });
});
