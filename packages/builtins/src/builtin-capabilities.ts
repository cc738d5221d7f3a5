import { agentInstructionsCapability } from '@everruns-ts/capabilities-agent-instructions';
import { currentTimeCapability } from '@everruns-ts/capabilities-current-time';
import { fileSystemCapability } from '@everruns-ts/capabilities-file-system';
import { memoryCapability, persistentMemoryCapability } from '@everruns-ts/capabilities-memory';
import { sessionCapability, sessionStorageCapability } from '@everruns-ts/capabilities-session';
import { skillsCapability } from '@everruns-ts/capabilities-skills';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { testWeatherCapability } from '@everruns-ts/capabilities-test-weather';
import { todoCapability } from '@everruns-ts/capabilities-todo';
import { webFetchCapability } from '@everruns-ts/capabilities-web-fetch';
import { type Capability, type CapabilityRegistry, PlatformDefinition } from '@everruns-ts/core';

/**
 * The built-in capabilities, as upstream's `CapabilityRegistry::with_builtins()` registers them:
 * `current_time`, `session_file_system`, `agent_instructions`, `skills`, `session`,
 * `session_storage`, `stateless_todo_list`, `web_fetch`, `memory` (with its former id
 * `persistent_memory` as an alias), `test_math` and `test_weather`. Registering them switches nothing on: a harness, agent or session still names
 * each one it uses by id.
 */
export const BUILTIN_CAPABILITIES: readonly Capability[] = Object.freeze([
  currentTimeCapability,
  fileSystemCapability as Capability,
  agentInstructionsCapability,
  skillsCapability as Capability,
  sessionCapability,
  sessionStorageCapability,
  todoCapability,
  webFetchCapability as Capability,
  memoryCapability as Capability,
  persistentMemoryCapability as Capability,
  testMathCapability,
  testWeatherCapability as Capability,
]);

/**
 * Registers every built-in capability whose id the registry does not hold yet, and returns the
 * registry. A capability registered before the call keeps its id, so it replaces the built-in of
 * that id. Throws `CAPABILITY_CYCLE` only if a capability already registered closes a dependency
 * cycle with a built-in.
 */
export function registerBuiltins(registry: CapabilityRegistry): CapabilityRegistry {
  for (const capability of BUILTIN_CAPABILITIES) {
    if (!registry.has(capability.id)) registry.register(capability);
  }
  return registry;
}

/**
 * A platform with the built-in capabilities registered (see {@link registerBuiltins}): a new
 * `PlatformDefinition`, or the one given, whose own capabilities keep their ids. For a host
 * that builds its platform itself, such as a durable host; an `InProcessRuntimeBuilder` reads
 * better with `.builtins(BUILTIN_CAPABILITIES)`.
 */
export function withBuiltins(
  platform: PlatformDefinition = new PlatformDefinition(),
): PlatformDefinition {
  registerBuiltins(platform.capabilities);
  return platform;
}
