// everruns-ts in the peer benchmark (see ../../../shared/peer-bench/README.md for the contract).
// The scenario: one tool add(a, b) with a zod schema; a stateless fake model answers a tool
// result with "4" and anything else with the call add({a:2,b:2}).
//
// Variants:
//   default  one InProcessRuntime per conversation (fresh in-memory stores), so a dropped
//            conversation is garbage like in the peers' caller-owned histories
//   noeventlog  as default, with the in-memory event bus keeping no event log
//            (`inMemoryBackends({ events: { keepEvents: false } })`, a documented option for hosts
//            that send events elsewhere); like ai-sdk's telemetryoff variant
//   stream   as default, each turn run with `streamTextTurn` and every part consumed (the fake
//            model streams its answers as deltas), like ai-sdk's streaming variant
//   default200, stream200  as default and stream, the answer streamed as 200 one-character
//            deltas (199 spaces then "4", which the harness trims), as a real answer has hundreds
//            of pieces; default200 answers the same text with `generate`, so stream200 ÷
//            default200 is the cost of streaming 200 deltas
//   shared   one runtime for every conversation: each conversation is a session in the same
//            in-memory stores, which keep every message and event (a store's job)
import { readFileSync } from 'node:fs';
import { PlatformDefinition } from '@everruns-ts/core';
import { InProcessRuntimeBuilder, inMemoryBackends } from '@everruns-ts/runtime';
import { createScenario } from './scenario.mjs';

// Read as the peers' adapters read theirs (../../../shared/peer-bench/common/version.mjs): a file
// read, not `require`, which would load Node's CommonJS loader into the cold start.
const version = (name) => {
  try {
    const url = new URL(`./node_modules/${name}/package.json`, import.meta.url);
    return JSON.parse(readFileSync(url, 'utf8')).version;
  } catch {
    return '?';
  }
};

export async function createAdapter(variant = 'default') {
  const many = variant === 'default200' || variant === 'stream200';
  const streaming = variant === 'stream' || variant === 'stream200';
  const { counters, calculator, fakeModel } = createScenario(undefined, {
    answerDeltas: many ? 200 : 1,
  });

  const buildRuntime = () => {
    const platform = new PlatformDefinition();
    platform.capabilities.register(calculator);
    platform.drivers.register(fakeModel);
    return new InProcessRuntimeBuilder()
      .platformDefinition(platform)
      .defaultModel({ model: 'fake-model', providerType: 'fake' })
      .harness({
        id: 'harness_calculator',
        name: 'calculator',
        systemPrompt: 'You are a calculator. Use the add tool.',
        capabilities: [{ id: 'calculator' }],
      })
      .options({ keepTurnContexts: 0 })
      .backends(inMemoryBackends(variant === 'noeventlog' ? { events: { keepEvents: false } } : {}))
      .build();
  };

  const shared = variant === 'shared' ? await buildRuntime() : undefined;

  return {
    name: 'everruns-ts',
    version: `@everruns-ts/runtime ${version('@everruns-ts/runtime')} + zod ${version('zod')}`,
    variantLabel:
      variant === 'shared'
        ? 'one runtime, a session per conversation'
        : variant === 'noeventlog'
          ? 'a runtime per conversation, no in-memory event log'
          : variant === 'stream'
            ? 'a runtime per conversation, streamTextTurn (every part consumed)'
            : variant === 'stream200'
              ? 'a runtime per conversation, streamTextTurn, an answer of 200 deltas'
              : variant === 'default200'
                ? 'a runtime per conversation, an answer of 200 characters'
                : 'a runtime per conversation',
    counters,
    newConversation() {
      let turns = 0;
      const ready = (async () => {
        const runtime = shared ?? (await buildRuntime());
        const session = await runtime.createSession({ harnessId: 'harness_calculator' });
        return { runtime, sessionId: session.id };
      })();
      return {
        async turn(text) {
          const { runtime, sessionId } = await ready;
          if (streaming) {
            const stream = runtime.streamTextTurn(sessionId, text);
            for await (const _part of stream) {
              // every part is read, as a UI would
            }
            const result = await stream.result;
            turns++;
            return result.response;
          }
          const result = await runtime.runTextTurn(sessionId, text);
          turns++;
          return result.response;
        },
        // One turn appends 4 messages (user, tool call, tool result, answer), as in the peers.
        historyLength: () => turns * 4,
      };
    },
  };
}
