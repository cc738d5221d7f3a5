// The benchmark scenario shared by the peer adapter and the stores benchmark: one capability with
// the tool add(a, b) (a zod schema) and a stateless fake model that answers a tool result with "4"
// and anything else with the call add({a:2,b:2}).
import { defineCapability, defineTool } from '@everruns-ts/core';
import { z } from 'zod';

/**
 * Builds the capability and the fake model; `counters` counts model and tool calls. With
 * `answerDeltas` n > 1 the answer is n - 1 spaces then "4" (the harness trims it), streamed as n
 * one-character deltas, as a real answer of n pieces would be; `generate` answers the same text.
 */
export function createScenario(counters = { model: 0, tool: 0 }, { answerDeltas = 1 } = {}) {
  const answer = `${' '.repeat(answerDeltas - 1)}4`;
  let callSeq = 0;
  const calculator = defineCapability({
    id: 'calculator',
    name: 'Calculator',
    description: 'Adds numbers',
    tools: [
      defineTool({
        name: 'add',
        description: 'Add two numbers',
        inputSchema: z.object({ a: z.number(), b: z.number() }),
        idempotent: true,
        execute: ({ a, b }) => {
          counters.tool++;
          return a + b;
        },
      }),
    ],
  });
  const usage = { inputTokens: 0, outputTokens: 0 };
  const respond = (request) => {
    counters.model++;
    const last = request.messages[request.messages.length - 1];
    if (last?.role === 'tool_result') {
      return { text: answer, toolCalls: [], usage, stopReason: 'end_turn' };
    }
    return {
      text: '',
      toolCalls: [{ id: `call_${++callSeq}`, name: 'add', arguments: { a: 2, b: 2 } }],
      usage,
      stopReason: 'tool_calls',
    };
  };
  const fakeModel = {
    providerType: 'fake',
    async generate(request) {
      return respond(request);
    },
    // The same answers as pieces, as a provider streams them (the streaming variant uses this):
    // the text as `answerDeltas` deltas, a tool call as its start and its argument text.
    async *stream(request) {
      const response = respond(request);
      if (response.text.length === 1 || answerDeltas === 1) {
        if (response.text) yield { type: 'text_delta', text: response.text };
      } else {
        for (const char of response.text) yield { type: 'text_delta', text: char };
      }
      for (const [index, call] of response.toolCalls.entries()) {
        yield { type: 'tool_call_delta', index, id: call.id, name: call.name, argumentsDelta: '' };
        yield { type: 'tool_call_delta', index, argumentsDelta: JSON.stringify(call.arguments) };
      }
      yield { type: 'finish', response };
    },
  };
  return { counters, calculator, fakeModel };
}
