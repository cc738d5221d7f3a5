import { describe, expect, it } from 'vitest';
import {
  agentSchema,
  detectDependencyBlocker,
  foldOverlay,
  harnessSchema,
  sessionSchema,
} from '../index.js';

describe('foldOverlay and detectDependencyBlocker', () => {
  const root = harnessSchema.parse({
    id: 'h_root',
    name: 'root',
    systemPrompt: 'root',
    capabilities: [{ id: 'a', config: 'root' }, { id: 'b' }],
    maxIterations: 10,
    defaultModelId: 'root-model',
    initialFiles: [{ path: '/x', content: 'root' }],
  });
  const child = harnessSchema.parse({
    id: 'h_child',
    name: 'child',
    parentHarnessId: 'h_root',
    systemPrompt: '  ',
  });
  const agent = agentSchema.parse({
    id: 'a1',
    name: 'agent',
    systemPrompt: 'agent',
    capabilities: [{ id: 'a', config: 'agent' }],
    initialFiles: [{ path: '/x', content: 'agent' }],
  });
  const session = sessionSchema.parse({
    id: 's1',
    harnessId: 'h_child',
    agentId: 'a1',
    maxIterations: 3,
  });

  it('folds root first, then agent, then session', () => {
    const overlay = foldOverlay([root, child], agent, session);
    expect(overlay.systemPrompts).toEqual(['root', 'agent']);
    expect(overlay.capabilities).toEqual([{ id: 'b' }, { id: 'a', config: 'agent' }]);
    expect(overlay.maxIterations).toBe(3);
    expect(overlay.modelId).toBe('root-model');
    expect(overlay.initialFiles.map((file) => file.content)).toEqual(['agent']);
  });

  it('reports missing or disabled harnesses and agents', () => {
    expect(detectDependencyBlocker(session, [root, child], agent)).toBeNull();
    expect(detectDependencyBlocker(session, null, agent)?.code).toBe('harness_missing');
    expect(
      detectDependencyBlocker(session, [{ ...root, status: 'disabled' }, child], agent)?.code,
    ).toBe('harness_disabled');
    expect(detectDependencyBlocker(session, [root, child], null)?.code).toBe('agent_missing');
    expect(
      detectDependencyBlocker(session, [root, child], { ...agent, status: 'archived' }),
    ).toMatchObject({
      code: 'agent_disabled',
      dependencyId: 'a1',
    });
  });
});
