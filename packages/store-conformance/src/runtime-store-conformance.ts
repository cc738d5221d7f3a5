import { afterAll, beforeAll, describe } from 'vitest';
import { agentStoreTests } from './agent-store-tests.js';
import { ephemeralEventTests, eventBusTests } from './event-bus-tests.js';
import { harnessStoreTests } from './harness-store-tests.js';
import { mcpServerDefinitionTests } from './mcp-server-definition-tests.js';
import { memoryStoreTests } from './memory-store-tests.js';
import { messageAndEventsTests } from './message-and-events-tests.js';
import { messageSearchTests } from './message-search-tests.js';
import { messageStoreTests } from './message-store-tests.js';
import { providerStoreTests } from './provider-store-tests.js';
import { asPartOfAggregate, defineRuntimeArea } from './runtime-area.js';
import { sessionStorageTests } from './session-storage-tests.js';
import { sessionStoreTests } from './session-store-tests.js';
import type { RuntimeStoreInitializer } from './types.js';
import { upsertAndPagingTests } from './upsert-and-paging-tests.js';

/**
 * Registers the whole runtime-store conformance suite for a backend: every area
 * (harnesses, agents, sessions, MCP servers in definitions, messages, providers, session storage, memory, event bus; the
 * ephemeral-event area when the initializer sets `ephemeralEvents`) and the initializer's
 * `additionalTests`. Call it at the top level of a vitest file.
 *
 * @example
 * runtimeStoreConformance({ name: 'memory', create: () => inMemoryBackends() });
 */
export function runtimeStoreConformance(initializer: RuntimeStoreInitializer): void {
  describe(`${initializer.name}: runtime store conformance`, () => {
    beforeAll(async () => {
      await initializer.beforeAll?.();
    });
    afterAll(async () => {
      await initializer.afterAll?.();
    });
    asPartOfAggregate(() => {
      harnessStoreTests(initializer);
      agentStoreTests(initializer);
      sessionStoreTests(initializer);
      mcpServerDefinitionTests(initializer);
      messageStoreTests(initializer);
      messageSearchTests(initializer);
      upsertAndPagingTests(initializer);
      providerStoreTests(initializer);
      sessionStorageTests(initializer);
      memoryStoreTests(initializer);
      eventBusTests(initializer);
      messageAndEventsTests(initializer);
      if (initializer.ephemeralEvents === true) ephemeralEventTests(initializer);
      const { additionalTests } = initializer;
      if (additionalTests !== undefined) {
        defineRuntimeArea(initializer, 'additional tests', additionalTests);
      }
    });
  });
}
