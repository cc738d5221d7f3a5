import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import {
  CapabilityRegistry,
  DriverRegistry,
  defineCapability,
  PlatformDefinition,
} from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver } from '@everruns-ts/driver-llmsim';
import { describe, expect, it } from 'vitest';
import { InProcessRuntimeBuilder } from './index.js';

// Issue 13, invariant 8: build() does not change the caller's objects.

const extraCapability = defineCapability({
  id: 'extra_notes',
  name: 'Extra notes',
  description: 'A capability given to the builder, not to the platform.',
  systemPrompt: 'Take notes.',
  tools: [],
});

const builtinLike = defineCapability({
  id: 'builtin_like',
  name: 'Built-in like',
  description: 'Stands in for a built-in capability.',
  systemPrompt: 'Built in.',
  tools: [],
});

function ids(registry: CapabilityRegistry): string[] {
  return registry.list().map((capability) => capability.id);
}

describe('InProcessRuntimeBuilder.build and the caller objects', () => {
  it('leaves a given platform registry unchanged when capability(), builtins() and drivers are added', async () => {
    const platform = new PlatformDefinition();
    platform.capabilities.register(testMathCapability);
    const before = ids(platform.capabilities);
    const runtime = await new InProcessRuntimeBuilder()
      .platformDefinition(platform)
      .builtins([builtinLike])
      .capability(extraCapability)
      .llmSim(LlmSimConfig.fixed('ok'))
      .build();
    expect(ids(platform.capabilities)).toEqual(before);
    expect(platform.drivers.providerTypes()).toEqual([]);
    expect(ids(runtime.platform.capabilities).sort()).toEqual(
      ['builtin_like', 'extra_notes', 'test_math'].sort(),
    );
    expect(runtime.platform.drivers.has('llmsim')).toBe(true);
    expect(runtime.platform).not.toBe(platform);
  });

  it('builds twice from one PlatformDefinition with the same extra capability and both runtimes run turns', async () => {
    const platform = new PlatformDefinition();
    platform.capabilities.register(testMathCapability);
    const build = () =>
      new InProcessRuntimeBuilder()
        .platformDefinition(platform)
        .builtins([builtinLike])
        .capability(extraCapability)
        .llmSim(LlmSimConfig.fixed('hello'))
        .singleSession((session) =>
          session.harness('h', 'Help.').withCapability('test_math').withCapability('extra_notes'),
        )
        .build();
    const first = await build();
    const second = await build();
    for (const runtime of [first, second]) {
      const result = await runtime.runTextTurn(runtime.defaultSessionId() as string, 'hi');
      expect(result).toMatchObject({ success: true, response: 'hello' });
    }
    expect(ids(platform.capabilities)).toEqual(['test_math']);
  });

  it('does not register drivers into a given driver registry', async () => {
    const drivers = new DriverRegistry();
    const runtime = await new InProcessRuntimeBuilder()
      .driverRegistry(drivers)
      .driver(new LlmSimDriver(LlmSimConfig.fixed('a')))
      .defaultModel({ model: 'llmsim-model', providerType: 'llmsim' })
      .build();
    expect(drivers.providerTypes()).toEqual([]);
    expect(runtime.platform.drivers.has('llmsim')).toBe(true);
  });

  it('keeps the drivers a given registry already holds', async () => {
    const drivers = new DriverRegistry();
    const driver = new LlmSimDriver(LlmSimConfig.fixed('from the registry'));
    drivers.register(driver);
    const runtime = await new InProcessRuntimeBuilder()
      .driverRegistry(drivers)
      .defaultModel({ model: 'llmsim-model', providerType: 'llmsim' })
      .singleSession((session) => session.harness('h', 'Help.'))
      .build();
    expect(runtime.platform.drivers.get('llmsim')).toBe(driver);
    const result = await runtime.runTextTurn(runtime.defaultSessionId() as string, 'hi');
    expect(result.response).toBe('from the registry');
  });

  it('uses the workspace factory of the given platform', async () => {
    const platform = new PlatformDefinition(new CapabilityRegistry(), new DriverRegistry());
    const seen: string[] = [];
    const inner = (await new InProcessRuntimeBuilder().llmSim(LlmSimConfig.fixed('x')).build())
      .hostAdapter.fileSystems;
    platform.withFileSystemFactory({
      forSession: (sessionId) => {
        seen.push(sessionId);
        return inner.forSession(sessionId);
      },
    });
    const runtime = await new InProcessRuntimeBuilder()
      .platformDefinition(platform)
      .llmSim(LlmSimConfig.fixed('x'))
      .singleSession((session) => session.harness('h', 'Help.'))
      .build();
    await runtime.fileSystem(runtime.defaultSessionId() as string);
    expect(seen).toContain(runtime.defaultSessionId());
    expect(runtime.platform.fileSystemFactory).toBe(platform.fileSystemFactory);
  });
});
