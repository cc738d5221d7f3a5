import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import {
  AgentBuilder,
  HarnessBuilder,
  InProcessRuntimeBuilder,
  LlmSimConfig,
  SessionBuilder,
  type TurnResult,
} from '@everruns-ts/runtime';

/** Runs the seed's math session and returns the turn's result. */
export async function runInProcessRuntimeExample(question = 'What is 2 + 2?'): Promise<TurnResult> {
  // The per-type builders, for embedders that need stable ids or separate construction.
  const harness = new HarnessBuilder('math', 'You are a math assistant.')
    .displayName('Math')
    .description('Minimal embedded harness')
    .capability('test_math');
  const agent = new AgentBuilder('math-agent', 'Use tools when they help.').maxIterations(8);
  const session = new SessionBuilder(harness.harnessId())
    .agent(agent.agentId())
    .title('Embedded Math Session');

  const runtime = await new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    // The simulated model: first a tool call add(2, 2), then the answer "4".
    .llmSim(
      LlmSimConfig.sequence(['Let me calculate that.', '4']).withToolCallSequence([
        [{ id: 'call_add_1', name: 'add', arguments: { a: 2, b: 2 } }],
        [],
      ]),
    )
    .harness(harness.build())
    .agent(agent.build())
    .session(session.build())
    .build();

  return runtime.runTextTurn(session.sessionId(), question);
}
