import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import {
  type BudgetCheckScope,
  defineCapability,
  defineTool,
  EverrunsError,
  InputMessage,
  type LlmRequest,
  newId,
  type ToolRegistryScope,
} from '@everruns-ts/core';
import { LlmSimConfig, type LlmSimResult } from '@everruns-ts/driver-llmsim';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  executeActActivity,
  executeInputActivity,
  executeReasonActivity,
  forOrganization,
  initialTurnState,
  planNextHostTurn,
  type RuntimeHostAdapter,
  RuntimeSessionLifecycle,
  withHostOverrides,
} from './host-entry.js';
import { InProcessRuntimeBuilder } from './index.js';

/** A tool that answers with the tenant its context names. */
const tenantCapability = defineCapability({
  id: 'tenant',
  name: 'Tenant',
  description: 'tells the tenant',
  tools: [
    defineTool({
      name: 'whoami',
      description: 'the organisation of the turn',
      inputSchema: z.object({}),
      execute: (_input, context) => context.organizationId ?? 'none',
    }),
  ],
});

async function hostRuntime(script: (request: LlmRequest, index: number) => LlmSimResult) {
  const requests: LlmRequest[] = [];
  const runtime = await new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .capability(tenantCapability)
    .llmSim(
      LlmSimConfig.fromFunction((request, info) => {
        requests.push(request);
        return script(request, info.index);
      }),
    )
    .singleSession((s) =>
      s.harness('h', 'You help.').withCapability('test_math').withCapability('tenant'),
    )
    .build();
  return { runtime, sessionId: runtime.defaultSessionId() as string, requests };
}

/** A host loop: run each activity the planner schedules until the turn ends, then end it. */
async function runHostTurn(adapter: RuntimeHostAdapter, sessionId: string, text: string) {
  const turnId = newId('turn');
  let state = initialTurnState({ sessionId, turnId, maxIterations: 10 });
  let output: unknown = await executeInputActivity(adapter, {
    sessionId,
    turnId,
    input: InputMessage.user(text),
  });
  let activity: 'input' | 'reason' | 'act' = 'input';
  for (;;) {
    const plan = planNextHostTurn(activity, state, output);
    state = plan.state;
    if (plan.kind === 'scheduleReason') {
      activity = 'reason';
      output = await executeReasonActivity(adapter, state);
    } else if (plan.kind === 'scheduleAct') {
      activity = 'act';
      output = await executeActActivity(adapter, plan.act);
    } else if (plan.kind === 'complete') {
      await new RuntimeSessionLifecycle(adapter, sessionId).turnEnded(plan.state, plan.outcome);
      return { state: plan.state, outcome: plan.outcome };
    } else {
      throw new Error(`unexpected plan ${plan.kind}`);
    }
  }
}

function toolResults(
  messages: Awaited<ReturnType<RuntimeHostAdapter['backends']['messages']['load']>>,
) {
  return messages.flatMap((m) => m.content.flatMap((p) => (p.type === 'tool_result' ? [p] : [])));
}

describe('RuntimeHostAdapter overrides', () => {
  it('lets the host build the tool registry per agent and harness', async () => {
    const { runtime, sessionId, requests } = await hostRuntime((_request, index) =>
      index === 0
        ? { toolCalls: [{ id: 'c1', name: 'host_echo', arguments: { text: 'hi' } }] }
        : 'done',
    );
    const scopes: ToolRegistryScope[] = [];
    const adapter = withHostOverrides(runtime.hostAdapter, {
      buildToolRegistry: (scope) => {
        scopes.push(scope);
        const tools = new Map(scope.tools);
        tools.delete('subtract');
        tools.set('host_echo', {
          tool: defineTool({
            name: 'host_echo',
            description: 'echoes, from the host',
            inputSchema: z.object({ text: z.string() }),
            execute: ({ text }) => `host says ${text}`,
          }),
          capabilityId: 'host',
          config: undefined,
        });
        return tools;
      },
    });
    const { outcome } = await runHostTurn(adapter, sessionId, 'echo');
    expect(outcome).toMatchObject({ success: true, response: 'done' });
    const offered = requests[0]?.tools.map((tool) => tool.name) ?? [];
    expect(offered).toContain('host_echo');
    expect(offered).toContain('add');
    expect(offered).not.toContain('subtract');
    expect(scopes[0]).toMatchObject({ sessionId, agent: null });
    expect(scopes[0]?.harnessChain.map((h) => h.name)).toEqual(['h']);
    expect(toolResults(await runtime.messages(sessionId))[0]).toMatchObject({
      content: 'host says hi',
      isError: false,
    });
    // The runtime's own adapter is left as it was.
    expect(runtime.hostAdapter.buildToolRegistry).toBeUndefined();
    await runtime.close();
  });

  it('runs the host hooks after every tool call, after the capabilities', async () => {
    const { runtime, sessionId } = await hostRuntime((_request, index) =>
      index === 0 ? { toolCalls: [{ id: 'c1', name: 'add', arguments: { a: 2, b: 3 } }] } : 'ok',
    );
    const seen: Array<{ toolName: string; content: string; config: unknown }> = [];
    const adapter = withHostOverrides(runtime.hostAdapter, {
      hostHooks: {
        afterToolCall: (context) => {
          seen.push({
            toolName: context.toolName,
            content: context.content,
            config: context.config,
          });
          return { content: `[audited] ${context.content}` };
        },
      },
    });
    await runHostTurn(adapter, sessionId, 'add');
    expect(seen).toHaveLength(1);
    expect(seen[0]?.toolName).toBe('add');
    expect(seen[0]?.config).toBeUndefined();
    expect(seen[0]?.content).toContain('5');
    const result = toolResults(await runtime.messages(sessionId))[0];
    expect(result?.content.startsWith('[audited] ')).toBe(true);
    await runtime.close();
  });

  it('asks the budget checker before every model call and stops the turn when it is used up', async () => {
    const { runtime, sessionId, requests } = await hostRuntime((_request, index) =>
      index === 0 ? { toolCalls: [{ id: 'c1', name: 'add', arguments: { a: 1, b: 1 } }] } : 'never',
    );
    const asked: BudgetCheckScope[] = [];
    const adapter = withHostOverrides(forOrganization(runtime.hostAdapter, 'org_acme'), {
      budgetChecker: async (scope) => {
        asked.push(scope);
        const usage = await scope.usage();
        const spent = usage.turn.reduce((sum, entry) => sum + entry.modelCalls, 0);
        return spent >= 1
          ? { exhausted: true, message: 'acme is out of credit', details: { spent } }
          : { exhausted: false };
      },
    });
    const { outcome, state } = await runHostTurn(adapter, sessionId, 'spend');
    expect(asked.map((scope) => scope.iteration)).toEqual([1, 2]);
    expect(asked[0]).toMatchObject({ organizationId: 'org_acme', sessionId });
    expect(requests).toHaveLength(1);
    expect(outcome).toMatchObject({
      success: false,
      stopReason: 'budget_exhausted',
      error: { code: 'BUDGET_EXHAUSTED', message: 'acme is out of credit', details: { spent: 1 } },
    });
    expect(state.toolCallsCount).toBe(1);
    await runtime.close();
  });

  it('carries the organisation id into the tool context; without one tools see none', async () => {
    const script = (_request: LlmRequest, index: number): LlmSimResult =>
      index % 2 === 0 ? { toolCalls: [{ id: `w${index}`, name: 'whoami', arguments: {} }] } : 'ok';
    const { runtime, sessionId } = await hostRuntime(script);
    await runHostTurn(forOrganization(runtime.hostAdapter, 'org_a'), sessionId, 'who');
    await runHostTurn(runtime.hostAdapter, sessionId, 'who');
    expect(toolResults(await runtime.messages(sessionId)).map((r) => r.content)).toEqual([
      'org_a',
      'none',
    ]);
    let caught: unknown;
    try {
      forOrganization(runtime.hostAdapter, ' ');
    } catch (error) {
      caught = error;
    }
    expect(EverrunsError.hasCode(caught, 'INVALID_INPUT')).toBe(true);
    await runtime.close();
  });
});
