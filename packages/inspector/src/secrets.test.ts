import { InProcessRuntimeBuilder, LlmSimConfig } from '@everruns-ts/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backendsInspectorSource, runtimeInspectorSource } from './inspector-source.js';
import { type InspectorServer, startInspectorServer } from './server.js';

// Issue 13, invariant 7: the inspector's API never serves a provider API key.

const API_KEY = `sk-inspector-${Math.random().toString(36).slice(2)}`;

describe('the inspector API and provider keys', () => {
  const servers: InspectorServer[] = [];
  let sessionId: string;
  let turnId: string;
  let runtime: Awaited<ReturnType<InProcessRuntimeBuilder['build']>>;

  beforeAll(async () => {
    runtime = await new InProcessRuntimeBuilder()
      .llmSim(LlmSimConfig.fixed('hello'))
      .defaultModel({
        model: 'llmsim-model',
        providerType: 'llmsim',
        apiKey: API_KEY,
        baseUrl: `https://user:${API_KEY}@models.example/v1`,
      })
      .singleSession((session) => session.harness('h', 'Help.'))
      .build();
    sessionId = runtime.defaultSessionId() as string;
    const source = runtimeInspectorSource(runtime);
    servers.push(await startInspectorServer({ source, port: 0 }));
    servers.push(
      await startInspectorServer({
        source: backendsInspectorSource({ backends: runtime.backends }),
        port: 0,
      }),
    );
    turnId = (await runtime.runTextTurn(sessionId, 'hi')).turnId;
  });

  afterAll(async () => {
    for (const server of servers) await server.close();
  });

  it('serves contexts, sessions and events without the key, from a runtime and from the stores', async () => {
    for (const server of servers) {
      for (const path of [
        `/api/sessions/${sessionId}/context`,
        `/api/sessions/${sessionId}/turns/${turnId}/context`,
        `/api/sessions/${sessionId}`,
        '/api/sessions',
      ]) {
        const response = await fetch(`${server.url}${path.slice(1)}`);
        expect(response.status, path).toBe(200);
        const body = await response.text();
        expect(body, path).not.toContain(API_KEY);
        if (path.endsWith('/context')) {
          const model = (JSON.parse(body) as { contexts: { model: Record<string, unknown> }[] })
            .contexts[0]?.model;
          expect(model, path).toMatchObject({ model: 'llmsim-model', providerType: 'llmsim' });
          expect(model && 'apiKey' in model, path).toBe(false);
        }
      }
    }
  });
});
