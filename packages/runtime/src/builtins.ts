import { agentInstructionsCapability } from '@everruns-ts/capabilities-agent-instructions';
import { currentTimeCapability } from '@everruns-ts/capabilities-current-time';
import { fileSystemCapability } from '@everruns-ts/capabilities-file-system';
import { memoryCapability } from '@everruns-ts/capabilities-memory';
import { sessionCapability, sessionStorageCapability } from '@everruns-ts/capabilities-session';
import { skillsCapability } from '@everruns-ts/capabilities-skills';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { testWeatherCapability } from '@everruns-ts/capabilities-test-weather';
import { todoCapability } from '@everruns-ts/capabilities-todo';
import { webFetchCapability } from '@everruns-ts/capabilities-web-fetch';
import type { Capability } from '@everruns-ts/core';

/**
 * The capabilities {@link InProcessRuntimeBuilder} registers when no `PlatformDefinition` is
 * given, as upstream's `CapabilityRegistry::with_builtins()`. They are only registered: a session
 * uses the ones its overlay switches on. A `PlatformDefinition` replaces them all; a capability
 * passed to `builder.capability(...)` replaces the built-in of the same id.
 */
export const BUILTIN_CAPABILITIES: readonly Capability[] = Object.freeze([
  currentTimeCapability,
  fileSystemCapability as Capability,
  agentInstructionsCapability,
  skillsCapability,
  sessionCapability,
  sessionStorageCapability,
  todoCapability,
  webFetchCapability as Capability,
  memoryCapability as Capability,
  testMathCapability,
  testWeatherCapability as Capability,
]);
