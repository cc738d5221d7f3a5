import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { OpenAiDriver, type OpenAiDriverOptions } from '@everruns-ts/driver-openai';
import {
  AgentBuilder,
  HarnessBuilder,
  InProcessRuntimeBuilder,
  SessionBuilder,
  type TurnResult,
} from '@everruns-ts/runtime';

/** Where the example's model runs. Unset members fall back to the driver's environment variables. */
export interface OpenAiExampleOptions {
  /** The model name, for example `gpt-4.1-mini` or `llama3.2`. */
  model: string;
  /** API root of the server; defaults to `OPENAI_BASE_URL`, then api.openai.com. */
  baseUrl?: string;
  /** Key; defaults to `OPENAI_API_KEY`. Servers such as Ollama need none. */
  apiKey?: string;
  /** The question of the turn. */
  question?: string;
  /** More driver options (retries, `streamUsage: false` for older servers, …). */
  driver?: OpenAiDriverOptions;
}

/** What the example reports: the turn and the tokens of each model call. */
export interface OpenAiExampleResult {
  turn: TurnResult;
  usage: Array<{ inputTokens: number; outputTokens: number }>;
}

/** Runs the seed's math session ("What is 2 + 2?") through an OpenAI-compatible model. */
export async function runOpenAiExample(
  options: OpenAiExampleOptions,
): Promise<OpenAiExampleResult> {
  const harness = new HarnessBuilder(
    'math',
    'You are a math assistant. Use the tools for arithmetic, then answer with the number only.',
  ).capability('test_math');
  const agent = new AgentBuilder('math-agent', 'Use tools when they help.').maxIterations(8);
  const session = new SessionBuilder(harness.harnessId())
    .agent(agent.agentId())
    .title('OpenAI Math Session');

  const runtime = await new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .driver(new OpenAiDriver(options.driver))
    .defaultModel({
      model: options.model,
      providerType: 'openai',
      ...(options.baseUrl ? { baseUrl: options.baseUrl } : {}),
      ...(options.apiKey ? { apiKey: options.apiKey } : {}),
    })
    .harness(harness.build())
    .agent(agent.build())
    .session(session.build())
    .build();
  try {
    const turn = await runtime.runTextTurn(
      session.sessionId(),
      options.question ?? 'What is 2 + 2?',
    );
    const messages = await runtime.messages(session.sessionId());
    const usage = messages
      .filter((message) => message.role === 'agent' && message.metadata?.usage)
      .map((message) => message.metadata?.usage as OpenAiExampleResult['usage'][number]);
    return { turn, usage };
  } finally {
    await runtime.close();
  }
}
