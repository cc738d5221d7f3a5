import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { type LlmRequest, type Message, messageText } from '@everruns-ts/core';
import {
  AgentBuilder,
  HarnessBuilder,
  type InProcessRuntime,
  InProcessRuntimeBuilder,
  LlmSimConfig,
} from '@everruns-ts/runtime';

/** Options of {@link createChatRuntime}. */
export interface ChatRuntimeOptions {
  /**
   * Milliseconds the simulated model waits between two streamed pieces (one word each), so the
   * answer visibly arrives in pieces. Defaults to 40.
   */
  chunkDelayMs?: number;
}

/** The runtime of the chat and what a chat session is made of. */
export interface ChatRuntime {
  runtime: InProcessRuntime;
  harnessId: string;
  agentId: string;
}

const OPERATIONS = {
  '+': { tool: 'add', symbol: '+' },
  '-': { tool: 'subtract', symbol: '−' },
  '*': { tool: 'multiply', symbol: '×' },
  x: { tool: 'multiply', symbol: '×' },
  '×': { tool: 'multiply', symbol: '×' },
  '/': { tool: 'divide', symbol: '÷' },
  '÷': { tool: 'divide', symbol: '÷' },
} as const;

/** One scripted answer of the simulated model. */
interface ScriptedAnswer {
  text: string;
  reasoning?: string;
  toolCalls?: Array<{ name: string; arguments: Record<string, number> }>;
}

const QUESTION = /(-?\d+(?:\.\d+)?)\s*([-+*x×/÷])\s*(-?\d+(?:\.\d+)?)/;

/**
 * The simulated model: asked "What is 12 + 30?", it thinks, calls the matching math tool, then
 * answers from the tool's result; asked anything else, it explains what it can do. Every answer
 * streams one word at a time.
 */
function calculatorModel(request: LlmRequest): ScriptedAnswer {
  const last = request.messages.at(-1);
  if (last?.role === 'tool_result') return answerFromToolResult(last);
  const question = latestUserText(request.messages);
  const match = QUESTION.exec(question);
  if (!match) {
    return {
      text: 'I am a small simulated model with a calculator. Ask me something like "What is 12 + 30?" and watch the answer arrive word by word.',
    };
  }
  const [, a, operator, b] = match;
  const operation = OPERATIONS[operator as keyof typeof OPERATIONS];
  return {
    reasoning: `The user wants ${a} ${operation.symbol} ${b}. The ${operation.tool} tool gives an exact result.`,
    text: 'Let me work that out with the calculator.',
    toolCalls: [{ name: operation.tool, arguments: { a: Number(a), b: Number(b) } }],
  };
}

function answerFromToolResult(message: Message): ScriptedAnswer {
  const part = message.content.find((content) => content.type === 'tool_result');
  if (part?.type !== 'tool_result') return { text: 'The calculator said nothing.' };
  if (part.isError) return { text: `The calculator could not do that: ${part.content}` };
  const outcome = JSON.parse(part.content) as {
    result: number;
    a: number;
    b: number;
    operation: string;
  };
  const symbol =
    Object.values(OPERATIONS).find((operation) => operation.tool === outcome.operation)?.symbol ??
    outcome.operation;
  return {
    text: `${outcome.a} ${symbol} ${outcome.b} = ${outcome.result}. The calculator tool did the arithmetic; this answer reached you a word at a time over the UI message stream protocol.`,
  };
}

function latestUserText(messages: readonly Message[]): string {
  for (let index = messages.length - 1; index >= 0; index--) {
    const message = messages[index];
    if (message?.role === 'user') return messageText(message);
  }
  return '';
}

/** Builds the chat's runtime: the math tools and a simulated model that streams its answers. */
export async function createChatRuntime(options: ChatRuntimeOptions = {}): Promise<ChatRuntime> {
  const harness = new HarnessBuilder(
    'calculator',
    'You are a calculator assistant. Use the math tools for arithmetic.',
  ).capability('test_math');
  const agent = new AgentBuilder('calculator-agent', 'Answer briefly.').maxIterations(4);
  const runtime = await new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .llmSim(
      LlmSimConfig.fromFunction(calculatorModel).withStreaming({
        wordsPerChunk: 1,
        chunkDelayMs: options.chunkDelayMs ?? 40,
      }),
    )
    .harness(harness.build())
    .agent(agent.build())
    .build();
  return { runtime, harnessId: harness.harnessId(), agentId: agent.agentId() };
}
