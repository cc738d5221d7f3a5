import { InProcessRuntimeBuilder, inMemoryBackends } from '@everruns-ts/runtime';
import { executeTurnStep, initialTurnStep, settleTurn } from '@everruns-ts/runtime/host';
import { PlatformDefinition } from '@everruns-ts/core';
import { createScenario } from './scenario.mjs';
const { calculator, fakeModel } = createScenario();
const upTo = Number(process.argv[2]);
let n = 0;
async function one() {
  const platform = new PlatformDefinition();
  platform.capabilities.register(calculator);
  platform.drivers.register(fakeModel);
  const rt = await new InProcessRuntimeBuilder().platformDefinition(platform).defaultModel({ model: 'fake-model', providerType: 'fake' })
    .harness({ id: 'h', name: 'calculator', systemPrompt: 'x', capabilities: [{ id: 'calculator' }] })
    .options({ keepTurnContexts: 0 }).backends(inMemoryBackends({})).build();
  const s = await rt.createSession({ harnessId: 'h' });
  if (upTo < 0) { await rt.runTextTurn(s.id, 'What is 2 + 2?'); return; }
  const adapter = rt.hostAdapter;
  let step = initialTurnStep({ sessionId: s.id, turnId: `turn_${(++n).toString(16).padStart(32, '0')}`, input: { role: 'user', content: [{ type: 'text', text: 'What is 2 + 2?' }] } });
  let outcome;
  for (let k = 0; k < upTo && step; k++) { outcome = await executeTurnStep(adapter, step); step = outcome.next; }
  if (upTo > 4 && outcome) await settleTurn(adapter, outcome.plan);
}
for (let i = 0; i < 20000; i++) await one();
