import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  agentSchema,
  harnessSchema,
  materializeLazySchema,
  modelWithProviderSchema,
  sessionSchema,
} from './index.js';

// How many zod schemas a call builds, counted with zod's own construction hook. This file runs in
// a module graph of its own, so no other test has built core's lazy schemas before it.
function schemasBuiltBy(run: () => void): number {
  let built = 0;
  z.config({ postProcessor: () => built++ });
  try {
    run();
  } finally {
    z.config({ postProcessor: undefined });
  }
  return built;
}

afterEach(() => z.config({ postProcessor: undefined }));

describe("a first parse builds none of the lazy schemas its value doesn't use", () => {
  it('a harness, a model, an agent and a session without MCP servers, options or tools', () => {
    // The agent and model schemas are lazy themselves: built first, apart, so that what the parses
    // build is only what their fields would pull in.
    const own = schemasBuiltBy(() => {
      materializeLazySchema(agentSchema);
      materializeLazySchema(modelWithProviderSchema);
    });
    expect(own).toBeGreaterThan(0);
    const built = schemasBuiltBy(() => {
      harnessSchema.parse({ id: 'harness_one', name: 'one', capabilities: [{ id: 'math' }] });
      modelWithProviderSchema.parse({ model: 'sim', providerType: 'llmsim' });
      agentSchema.parse({ id: 'agent_one', name: 'one', tools: ['read_file'] });
      sessionSchema.parse({ id: 'session_one', harnessId: 'harness_one' });
    });
    expect(built).toBe(0);
  });

  it('builds them when a value uses them, and validates it', () => {
    const built = schemasBuiltBy(() => {
      const harness = harnessSchema.parse({
        id: 'harness_mcp',
        name: 'mcp',
        mcpServers: { docs: { transport: 'http', url: 'https://mcp.example.com/' } },
      });
      expect(harness.mcpServers?.docs).toMatchObject({ transport: 'http' });
      const model = modelWithProviderSchema.parse({
        model: 'sim',
        providerType: 'llmsim',
        options: { temperature: 0.5, toolChoice: 'auto' },
      });
      expect(model.options).toEqual({ temperature: 0.5, toolChoice: 'auto' });
    });
    expect(built).toBeGreaterThan(40);
    const bad = modelWithProviderSchema.safeParse({
      model: 'sim',
      providerType: 'llmsim',
      options: { temperature: 9 },
    });
    expect(bad.error?.issues[0]?.path).toEqual(['options', 'temperature']);
  });
});
