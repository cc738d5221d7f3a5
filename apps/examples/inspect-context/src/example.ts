import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import {
  type AssembledTurnContext,
  InProcessRuntimeBuilder,
  LlmSimConfig,
} from '@everruns-ts/runtime';

/** Stable ids so the example's output is the same on every run. */
export const HARNESS_ID = 'harness_00000000000000000000000000000071';
export const AGENT_ID = 'agent_00000000000000000000000000000071';
export const SESSION_ID = 'session_00000000000000000000000000000071';

/** The contexts before the first turn, as the turn sent it, and after it. */
export interface InspectContextOutput {
  before: AssembledTurnContext;
  sent: AssembledTurnContext | undefined;
  after: AssembledTurnContext;
}

/** Builds a math runtime, inspects its context, runs one turn and inspects again. */
export async function runInspectContextExample(): Promise<InspectContextOutput> {
  const runtime = await new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .llmSim(LlmSimConfig.fixed('Context example'))
    .harness({
      id: HARNESS_ID,
      name: 'math',
      displayName: 'Math',
      description: 'Minimal harness for context inspection',
      systemPrompt: 'You are a math harness.',
      capabilities: [{ id: 'test_math' }],
    })
    .agent({
      id: AGENT_ID,
      name: 'math-agent',
      systemPrompt: 'Use tools when needed.',
      maxIterations: 8,
    })
    .session({
      id: SESSION_ID,
      harnessId: HARNESS_ID,
      agentId: AGENT_ID,
      title: 'Context Session',
      locale: 'en-US',
    })
    .build();

  const before = await runtime.loadContext(SESSION_ID);
  const result = await runtime.runTextTurn(SESSION_ID, 'What is 9 * 9?');
  const sent = runtime.turnContext(result.turnId);
  const after = await runtime.loadContext(SESSION_ID);
  return { before, sent, after };
}

/** A short printable summary of a context. */
export function describeContext(label: string, context: AssembledTurnContext): string {
  return [
    `${label}:`,
    `  model: ${context.model.model} (${context.model.providerType})`,
    `  messages: ${context.messages.length}`,
    `  max iterations: ${context.maxIterations}`,
    '  tools:',
    ...context.tools.map((tool) => `    - ${tool.name}: ${JSON.stringify(tool.inputSchema)}`),
    '  system prompt:',
    ...context.systemPrompt.split('\n').map((line) => `    | ${line}`),
  ].join('\n');
}
