import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { EverrunsError, everrunsError, type LlmUsage } from '@everruns-ts/core';
import { InProcessRuntimeBuilder, LlmSimConfig } from '@everruns-ts/runtime';
import { SpanStatusCode } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { instrumentRuntime } from './index.js';

const SECRET_QUESTION = 'What is 2 + 2? My locker code is 4711.';

function tracing() {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  return { exporter, provider };
}

async function mathRuntime() {
  return new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .llmSim(
      LlmSimConfig.sequence(['', 'The answer is 4.']).withToolCallSequence([
        [{ id: 'call_add_1', name: 'add', arguments: { a: 2, b: 2 } }],
        [],
      ]),
    )
    .singleSession((s) =>
      s.harness('math', 'You are a math assistant.').withCapability('test_math'),
    )
    .build();
}

const byName = (spans: ReadableSpan[], name: string) => spans.filter((span) => span.name === name);
const parentId = (span: ReadableSpan) => span.parentSpanContext?.spanId;

describe('instrumentRuntime', () => {
  it('records a turn span with a chat span per model call and an execute_tool span per tool call', async () => {
    const { exporter, provider } = tracing();
    const runtime = await mathRuntime();
    const traced = instrumentRuntime(runtime, { tracerProvider: provider });
    const sessionId = runtime.defaultSessionId() as string;
    const result = await runtime.runTextTurn(sessionId, SECRET_QUESTION);
    await traced.flush();
    traced.stop();
    expect(result.success).toBe(true);

    const spans = exporter.getFinishedSpans();
    const [turn] = byName(spans, 'invoke_agent');
    expect(turn).toBeDefined();
    const chats = spans.filter((span) => span.attributes['gen_ai.operation.name'] === 'chat');
    const tools = byName(spans, 'execute_tool add');
    expect(chats).toHaveLength(2);
    expect(tools).toHaveLength(1);
    expect(spans).toHaveLength(4);
    const traceId = turn?.spanContext().traceId;
    for (const span of [...chats, ...tools]) {
      expect(span.spanContext().traceId).toBe(traceId);
      expect(parentId(span)).toBe(turn?.spanContext().spanId);
    }
    expect(parentId(turn as ReadableSpan)).toBeUndefined();

    // The usage each model call reported, as the runtime stored it with the answer.
    const answers = (await runtime.messages(sessionId)).filter((m) => m.role === 'agent');
    const reported = answers.map((message) => message.metadata?.usage as LlmUsage);
    expect(reported).toHaveLength(2);
    const sorted = [...chats].sort(
      (a, b) =>
        Number(a.attributes['everruns.iteration']) - Number(b.attributes['everruns.iteration']),
    );
    sorted.forEach((chat, index) => {
      expect(chat.name).toBe(`chat ${answers[index]?.metadata?.model}`);
      expect(chat.attributes).toMatchObject({
        'gen_ai.operation.name': 'chat',
        'gen_ai.request.model': runtime.turnContext(result.turnId)?.model.model,
        'gen_ai.system': 'llmsim',
        'gen_ai.provider.name': 'llmsim',
        'gen_ai.conversation.id': sessionId,
        'gen_ai.usage.input_tokens': reported[index]?.inputTokens,
        'gen_ai.usage.output_tokens': reported[index]?.outputTokens,
        'everruns.iteration': index + 1,
      });
      expect(chat.status.code).not.toBe(SpanStatusCode.ERROR);
    });
    // The finish reason each call reported, as stored with its answer.
    sorted.forEach((chat, index) => {
      expect(chat.attributes['gen_ai.response.finish_reasons']).toEqual([
        answers[index]?.metadata?.stopReason,
      ]);
    });
    expect(sorted[0]?.attributes['gen_ai.response.finish_reasons']).not.toEqual(
      sorted[1]?.attributes['gen_ai.response.finish_reasons'],
    );
    expect(tools[0]?.attributes).toMatchObject({
      'gen_ai.operation.name': 'execute_tool',
      'gen_ai.tool.name': 'add',
      'gen_ai.tool.call.id': 'call_add_1',
    });
    expect(turn?.attributes).toMatchObject({
      'gen_ai.operation.name': 'invoke_agent',
      'gen_ai.conversation.id': sessionId,
      'everruns.turn.id': result.turnId,
      'gen_ai.usage.input_tokens': result.usage?.inputTokens,
      'gen_ai.usage.output_tokens': result.usage?.outputTokens,
      'everruns.turn.tool_calls': 1,
    });
    expect(result.usage?.inputTokens).toBe(
      (reported[0]?.inputTokens ?? 0) + (reported[1]?.inputTokens ?? 0),
    );

    // Content capture is off by default: no prompt, answer, arguments or results on any span.
    const recorded = JSON.stringify(spans.map((span) => span.attributes));
    expect(recorded).not.toContain('4711');
    expect(recorded).not.toContain('The answer is 4.');
    expect(recorded).not.toContain('gen_ai.input.messages');
    expect(recorded).not.toContain('gen_ai.output.messages');
    expect(recorded).not.toContain('gen_ai.tool.call.arguments');
    expect(recorded).not.toContain('gen_ai.tool.call.result');
  });

  it('records prompt, answer, tool arguments and results when captureContent is on', async () => {
    const { exporter, provider } = tracing();
    const runtime = await mathRuntime();
    const traced = instrumentRuntime(runtime, { tracerProvider: provider, captureContent: true });
    await runtime.runTextTurn(runtime.defaultSessionId() as string, SECRET_QUESTION);
    await traced.flush();
    traced.stop();
    const spans = exporter.getFinishedSpans();
    const [turn] = byName(spans, 'invoke_agent');
    expect(JSON.parse(String(turn?.attributes['gen_ai.input.messages']))).toEqual([
      { role: 'user', parts: [{ type: 'text', content: SECRET_QUESTION }] },
    ]);
    expect(JSON.parse(String(turn?.attributes['gen_ai.output.messages']))).toEqual([
      { role: 'assistant', parts: [{ type: 'text', content: 'The answer is 4.' }] },
    ]);
    const [tool] = byName(spans, 'execute_tool add');
    expect(JSON.parse(String(tool?.attributes['gen_ai.tool.call.arguments']))).toEqual({
      a: 2,
      b: 2,
    });
    expect(String(tool?.attributes['gen_ai.tool.call.result'])).toContain('4');
    const firstChat = spans.find(
      (span) =>
        span.attributes['gen_ai.operation.name'] === 'chat' &&
        span.attributes['everruns.iteration'] === 1,
    );
    expect(JSON.parse(String(firstChat?.attributes['gen_ai.output.messages']))).toEqual([
      {
        role: 'assistant',
        parts: [{ type: 'tool_call', id: 'call_add_1', name: 'add', arguments: { a: 2, b: 2 } }],
      },
    ]);
  });

  it('marks a failed model call and its turn with status ERROR and the error type', async () => {
    const { exporter, provider } = tracing();
    const runtime = await new InProcessRuntimeBuilder()
      .llmSim(
        LlmSimConfig.fromFunction(() => {
          throw everrunsError('LLM_ERROR', 'The provider is rate limiting');
        }),
      )
      .singleSession((s) => s.harness('plain', 'You answer.'))
      .build();
    const traced = instrumentRuntime(runtime, { tracerProvider: provider });
    const result = await runtime.runTextTurn(runtime.defaultSessionId() as string, 'Hello?');
    await traced.flush();
    traced.stop();
    expect(result.success).toBe(false);
    const spans = exporter.getFinishedSpans();
    const [chat] = spans.filter((span) => span.attributes['gen_ai.operation.name'] === 'chat');
    const [turn] = byName(spans, 'invoke_agent');
    expect(chat?.status.code).toBe(SpanStatusCode.ERROR);
    expect(chat?.status.message).toContain('rate limiting');
    expect(chat?.attributes['error.type']).toBe('LLM_ERROR');
    expect(chat?.attributes['gen_ai.usage.input_tokens']).toBeUndefined();
    expect(turn?.status.code).toBe(SpanStatusCode.ERROR);
    expect(turn?.attributes['error.type']).toBeDefined();
    expect(parentId(chat as ReadableSpan)).toBe(turn?.spanContext().spanId);
  });

  it('refuses options of the wrong shape with INVALID_INPUT', async () => {
    const runtime = await mathRuntime();
    for (const options of [{ tracer: {} }, { captureContent: 'yes' }, { storage: 1 }]) {
      let caught: unknown;
      try {
        instrumentRuntime(runtime, options as never);
      } catch (error) {
        caught = error;
      }
      expect(EverrunsError.hasCode(caught, 'INVALID_INPUT'), JSON.stringify(options)).toBe(true);
    }
  });
});
