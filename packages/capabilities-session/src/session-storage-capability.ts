import { type Capability, defineCapability, defineTool, toolError } from '@everruns-ts/core';
import { z } from 'zod';
import { secretReference } from './secret-references.js';

/** Id of the {@link sessionStorageCapability}, as upstream (`session_storage`). */
export const SESSION_STORAGE_CAPABILITY_ID = 'session_storage';

/** Longest key or secret name, in characters. */
export const MAX_STORAGE_KEY_CHARS = 255;

/**
 * Keys and secret names starting with this belong to the platform (for example the runtime's
 * tool-call journal): the tools neither list nor touch them.
 */
export const RESERVED_STORAGE_KEY_PREFIX = 'everruns:';

const keyField = z
  .string()
  .min(1)
  .max(MAX_STORAGE_KEY_CHARS)
  .refine((key) => !key.startsWith(RESERVED_STORAGE_KEY_PREFIX), {
    message: `keys starting with "${RESERVED_STORAGE_KEY_PREFIX}" are reserved for the platform`,
  });

const visible = (keys: string[]) =>
  keys.filter((key) => !key.startsWith(RESERVED_STORAGE_KEY_PREFIX));

const kvStoreTool = defineTool({
  name: 'kv_store',
  description:
    'Session key/value storage: set, get, delete or list keys. Values are strings (encode JSON yourself); setting an existing key overwrites it.',
  inputSchema: z.strictObject({
    operation: z.enum(['set', 'get', 'delete', 'list']).describe('The operation.'),
    key: keyField.optional().describe('The key; required for set, get and delete.'),
    value: z.string().optional().describe('The value; required for set.'),
  }),
  idempotent: true,
  execute: async (input, context) => {
    const { storage, sessionId } = context;
    if (input.operation === 'list') {
      const keys = visible(await storage.listKeys(sessionId));
      return { operation: 'list', keys, count: keys.length };
    }
    if (input.key === undefined) {
      return toolError(`kv_store: key is required for the ${input.operation} operation.`);
    }
    const key = input.key;
    switch (input.operation) {
      case 'set': {
        if (input.value === undefined)
          return toolError('kv_store: value is required for the set operation.');
        await storage.setValue(sessionId, key, input.value);
        return { operation: 'set', key, stored: true };
      }
      case 'get': {
        const value = await storage.getValue(sessionId, key);
        return { operation: 'get', key, found: value !== null, value };
      }
      case 'delete':
        return { operation: 'delete', key, deleted: await storage.deleteValue(sessionId, key) };
    }
  },
});

const secretStoreTool = defineTool({
  name: 'secret_store',
  description:
    'Session secrets (API keys, tokens): list their names, check one, or delete one. Values are never shown: refer to a secret as secret://<name> where a tool accepts secret references.',
  inputSchema: z.strictObject({
    operation: z.enum(['list', 'get', 'delete']).describe('The operation.'),
    name: keyField.optional().describe('The secret name; required for get and delete.'),
  }),
  idempotent: true,
  execute: async (input, context) => {
    const { storage, sessionId } = context;
    if (input.operation === 'list') {
      const names = visible(await storage.listSecretKeys(sessionId));
      return {
        operation: 'list',
        secrets: names.map((name) => ({ name, reference: secretReference(name) })),
        count: names.length,
      };
    }
    if (input.name === undefined) {
      return toolError(`secret_store: name is required for the ${input.operation} operation.`);
    }
    const name = input.name;
    if (input.operation === 'get') {
      // Only whether it exists: the value stays out of the conversation.
      const found = (await storage.getSecret(sessionId, name)) !== null;
      return found
        ? { operation: 'get', name, found, reference: secretReference(name) }
        : { operation: 'get', name, found };
    }
    return { operation: 'delete', name, deleted: await storage.deleteSecret(sessionId, name) };
  },
});

const SYSTEM_PROMPT = [
  'Use kv_store for session data (keys are unique per session; setting a key overwrites it).',
  'Secrets are stored by the user or the host, never shown to you: secret_store lists their names. Refer to a secret as secret://<name> in the arguments of tools that accept secret references; never ask for or repeat a secret value.',
].join('\n');

/**
 * The `session_storage` capability: `kv_store` (set, get, delete, list) and `secret_store`
 * (list, get, delete) on the session storage store (`context.storage`).
 *
 * A secret's value never reaches the model: `secret_store` answers with its name and its
 * reference `secret://<name>` only, and offers no `set` (a value the model typed would already be
 * in the conversation). Secrets are put in place by the host (`storage.setSecret`); tools that need
 * one resolve references with {@link resolveSecretReferences}.
 */
export const sessionStorageCapability: Capability = defineCapability({
  id: SESSION_STORAGE_CAPABILITY_ID,
  name: 'Storage',
  description:
    'Session key/value storage, and secrets the agent can use by reference without ever seeing them.',
  systemPrompt: SYSTEM_PROMPT,
  tools: [kvStoreTool, secretStoreTool],
});
