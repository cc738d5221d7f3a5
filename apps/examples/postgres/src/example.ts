import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import type { Message, Session } from '@everruns-ts/core';
import {
  AgentBuilder,
  HarnessBuilder,
  InProcessRuntimeBuilder,
  LlmSimConfig,
  SessionBuilder,
  type TurnResult,
} from '@everruns-ts/runtime';
import { type PostgresBackends, postgresBackends } from '@everruns-ts/stores-postgres';

/** Where the example keeps its data. */
export interface PostgresExampleOptions {
  /** For example `postgres://postgres@127.0.0.1:5432/test`. */
  connectionString: string;
  /** The schema holding the tables; created by `migrate()`. */
  schema: string;
  /** 64 hex digits: the key that encrypts secrets (here: the default model's API key). */
  secretKeyHex: string;
}

/** Opens the PostgreSQL stores and brings the schema up to date. */
export async function openBackends(options: PostgresExampleOptions): Promise<PostgresBackends> {
  const backends = postgresBackends(
    { connectionString: options.connectionString, poolConfig: { max: 4 } },
    {
      schema: options.schema,
      secretKey: { id: 'example-key', key: options.secretKeyHex },
      events: { keepEvents: true },
    },
  );
  await backends.migrate();
  return backends;
}

/** Runs the seed's math session ("What is 2 + 2?") with every store on PostgreSQL. */
export async function runPostgresMathSession(
  options: PostgresExampleOptions,
  question = 'What is 2 + 2?',
): Promise<{ sessionId: string; result: TurnResult }> {
  const backends = await openBackends(options);
  const harness = new HarnessBuilder('math', 'You are a math assistant.')
    .displayName('Math')
    .capability('test_math');
  const agent = new AgentBuilder('math-agent', 'Use tools when they help.').maxIterations(8);
  const session = new SessionBuilder(harness.harnessId())
    .agent(agent.agentId())
    .title('Math on PostgreSQL');
  const runtime = await new InProcessRuntimeBuilder()
    .backends(backends)
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
  try {
    const result = await runtime.runTextTurn(session.sessionId(), question);
    return { sessionId: session.sessionId(), result };
  } finally {
    await runtime.close();
  }
}

/** What a second process finds in the database. */
export interface SessionReadBack {
  session: Session | null;
  messages: Message[];
  eventTypes: string[];
}

/** Reads a session back from PostgreSQL, as a process that did not run it. */
export async function readSessionBack(
  options: PostgresExampleOptions,
  sessionId: string,
): Promise<SessionReadBack> {
  const backends = await openBackends(options);
  try {
    const snapshot = await backends.loadTurnSnapshot(sessionId);
    const events = await backends.events.loadEvents(sessionId);
    return {
      session: snapshot?.session ?? null,
      messages: snapshot?.messages ?? [],
      eventTypes: events.map((event) => event.type),
    };
  } finally {
    await backends.close();
  }
}

/** One line per message, for printing. */
export function describeMessages(messages: readonly Message[]): string[] {
  return messages.map((message) => {
    const parts = message.content.map((part) => {
      if (part.type === 'text') return JSON.stringify(part.text);
      if (part.type === 'tool_call') return `${part.name}(${JSON.stringify(part.arguments)})`;
      if (part.type === 'tool_result') return `result ${part.content}`;
      return part.type;
    });
    return `${message.seq}. ${message.role}: ${parts.join(' ')}`;
  });
}
