import { InputMessage } from '@everruns-ts/core';
import {
  randomId,
  runtimeStoreConformance,
  sessionFileSystemConformance,
} from '@everruns-ts/store-conformance';
import { InMemorySessionFileStore } from '@everruns-ts/stores-memory';
import { expect, it } from 'vitest';
import { countingBackends } from './counting-backends.js';
import { CountingMessageStore } from './counting-message-store.js';

// The whole runtime-store suite, against a backend that lives outside the everruns-ts packages.
runtimeStoreConformance({
  name: 'third-party counting store',
  create: () => countingBackends(),
  additionalTests({ backends }) {
    it('counts the calls it delegates', async () => {
      const { messages } = backends();
      if (!(messages instanceof CountingMessageStore)) throw new Error('unexpected store');
      const sessionId = randomId('session');
      const before = messages.callCount('addInputMessage');
      await messages.addInputMessage(sessionId, InputMessage.user('hello'));
      await messages.load(sessionId);
      expect(messages.callCount('addInputMessage')).toBe(before + 1);
      expect(messages.callCount('load')).toBeGreaterThan(0);
    });
  },
});

// A session file system from elsewhere is checked the same way.
sessionFileSystemConformance({
  name: 'third-party workspace',
  capabilities: { maxFileBytes: 1024 },
  create: () => new InMemorySessionFileStore({ maxFileBytes: 1024 }),
});
