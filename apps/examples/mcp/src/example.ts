import { fileURLToPath } from 'node:url';
import type { Message } from '@everruns-ts/core';
import { McpClientPool } from '@everruns-ts/mcp';
import {
  AgentBuilder,
  HarnessBuilder,
  InProcessRuntimeBuilder,
  LlmSimConfig,
  SessionBuilder,
  type TurnResult,
} from '@everruns-ts/runtime';

/** The example's MCP server, run with this Node as a stdio child process. */
export const UNITS_SERVER = fileURLToPath(new URL('./units-server.mjs', import.meta.url));

/** What {@link runMcpExample} reports. */
export interface McpExampleResult {
  result: TurnResult;
  /** The MCP tools the model was offered, with their server. */
  mcpTools: Array<{ name: string; server: string; serverToolName: string }>;
  /** The results of the tool calls, in order. */
  toolResults: string[];
  /** How the session's server configuration is shown in a context (env values redacted). */
  shownServer: unknown;
}

function toolResultsOf(messages: readonly Message[]): string[] {
  return messages.flatMap((message) =>
    message.content.flatMap((part) => (part.type === 'tool_result' ? [part.content] : [])),
  );
}

/**
 * A harness with the `units` MCP server, an agent, a session; the simulated model calls two of
 * the server's tools and answers with their results. Everything is closed before it returns
 * (the child process ends with `runtime.close()`).
 */
export async function runMcpExample(): Promise<McpExampleResult> {
  const harness = new HarnessBuilder('travel', 'You help travellers with units.')
    // The command and its variables come from the embedder's definitions, never from the model.
    .mcpServer('units', {
      transport: 'stdio',
      command: process.execPath,
      args: [UNITS_SERVER],
      env: { UNITS_API_TOKEN: 'example-token-not-shown' },
      timeoutMs: 10_000,
    });
  const agent = new AgentBuilder('travel-agent', 'Convert with the tools, then answer briefly.');
  const session = new SessionBuilder(harness.harnessId()).agent(agent.agentId()).title('Trip');

  const runtime = await new InProcessRuntimeBuilder()
    .mcpToolSource(new McpClientPool({ stderr: 'ignore' }))
    .llmSim(
      LlmSimConfig.fromFunction((request, { index }) => {
        if (index === 0) {
          return {
            toolCalls: [
              { name: 'units__celsius_to_fahrenheit', arguments: { celsius: 30 } },
              { name: 'units__kilometres_to_miles', arguments: { kilometres: 42.195 } },
              { name: 'units__environment', arguments: {} },
            ],
          };
        }
        const [temperature, distance] = toolResultsOf(request.messages);
        return `It will be hot: ${temperature}. The marathon: ${distance}.`;
      }),
    )
    .harness(harness.build())
    .agent(agent.build())
    .session(session.build())
    .build();
  try {
    const context = await runtime.loadContext(session.sessionId());
    const result = await runtime.runTextTurn(
      session.sessionId(),
      'Weather 30 °C; marathon in miles?',
    );
    return {
      result,
      mcpTools: [...(context.mcpTools ?? [])],
      toolResults: toolResultsOf(await runtime.messages(session.sessionId())),
      shownServer: context.overlay.mcpServers.units,
    };
  } finally {
    await runtime.close();
  }
}
