import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import {
  consoleLogger,
  EverrunsError,
  everrunsError,
  LLMSIM_DEFAULT_MODEL,
} from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import { InProcessRuntimeBuilder, LlmSimConfig } from './index.js';

const API_KEY = 'sk-live-4f9a2c7e1b3d5a6f8e0c2b4d';
const QUESTION = 'My passport number is X1234567; what is 2 + 2?';
const ANSWER = 'Your secret answer is 4.';

function recordingLogger() {
  const entries: Array<{ level: string; obj: object; msg: string | undefined }> = [];
  const at = (level: string) => (obj: object, msg?: string) => {
    entries.push({ level, obj, msg });
  };
  return {
    entries,
    logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') },
  };
}

describe('the runtime logger', () => {
  it('reports turns with ids, counts and codes, never the API key or message content', async () => {
    const { entries, logger } = recordingLogger();
    let calls = 0;
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .logger(logger)
      .defaultModel({ ...LLMSIM_DEFAULT_MODEL, apiKey: API_KEY })
      .llmSim(
        LlmSimConfig.fromFunction((request) => {
          calls += 1;
          if (calls === 3) {
            // A provider error quoting the key and the prompt, as some do.
            throw everrunsError('LLM_ERROR', `401 for key ${API_KEY} on "${QUESTION}"`);
          }
          return request.messages.at(-1)?.role === 'tool_result'
            ? { text: ANSWER, toolCalls: [] }
            : { text: '', toolCalls: [{ name: 'add', arguments: { a: 2, b: 2 } }] };
        }),
      )
      .singleSession((s) =>
        s.harness('math', 'You are a math assistant.').withCapability('test_math'),
      )
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    const ok = await runtime.runTextTurn(sessionId, QUESTION);
    const failed = await runtime.runTextTurn(sessionId, QUESTION);
    expect(ok).toMatchObject({ success: true, response: ANSWER });
    expect(failed.success).toBe(false);

    expect(entries).toEqual([
      {
        level: 'debug',
        obj: {
          sessionId,
          turnId: ok.turnId,
          success: true,
          iterations: 2,
          toolCallsCount: 1,
          stopReason: ok.stopReason,
        },
        msg: 'turn ended',
      },
      {
        level: 'warn',
        obj: {
          sessionId,
          turnId: failed.turnId,
          success: false,
          iterations: failed.iterations,
          toolCallsCount: 0,
          stopReason: failed.stopReason,
          errorCode: failed.error?.code,
        },
        msg: 'turn failed',
      },
    ]);
    const logged = JSON.stringify(entries);
    expect(logged).not.toContain(API_KEY);
    expect(logged).not.toContain('X1234567');
    expect(logged).not.toContain(ANSWER);
    expect(logged).not.toContain('2 + 2');
  });

  it('takes console through consoleLogger, and refuses a logger without the four functions', async () => {
    const lines: unknown[][] = [];
    const target = {
      debug: (...args: unknown[]) => lines.push(['debug', ...args]),
      info: (...args: unknown[]) => lines.push(['info', ...args]),
      warn: (...args: unknown[]) => lines.push(['warn', ...args]),
      error: (...args: unknown[]) => lines.push(['error', ...args]),
    };
    const runtime = await new InProcessRuntimeBuilder()
      .logger(consoleLogger(target))
      .llmSim(LlmSimConfig.fixed('Hi.'))
      .singleSession((s) => s.harness('hello', 'You greet.'))
      .build();
    const result = await runtime.runTextTurn(runtime.defaultSessionId() as string, 'Hello');
    expect(lines).toEqual([
      ['debug', 'turn ended', expect.objectContaining({ turnId: result.turnId, success: true })],
    ]);

    let caught: unknown;
    try {
      new InProcessRuntimeBuilder().logger({ info() {} } as never);
    } catch (error) {
      caught = error;
    }
    expect(EverrunsError.hasCode(caught, 'INVALID_INPUT')).toBe(true);
  });
});
