import { expect, it } from 'vitest';
import { HOSTILE_STRINGS, randomId, TRICKY_TEXT } from './helpers.js';
import { defineRuntimeArea } from './runtime-area.js';
import type { RuntimeStoreInitializer } from './types.js';

/**
 * Tests of `SessionStorageStore`: values and secrets (set, replace, get, delete), listings sorted
 * by code unit (byte order for ASCII, as `COLLATE "C"`), literal prefixes, secrets never listed
 * with values, isolation between sessions, exact round-trips and hostile keys.
 */
export function sessionStorageTests(initializer: RuntimeStoreInitializer): void {
  defineRuntimeArea(initializer, 'session storage', ({ backends }) => {
    it('sets, replaces, gets and deletes values', async () => {
      const { storage } = backends();
      const sessionId = randomId('session');
      expect(await storage.getValue(sessionId, 'k')).toBeNull();
      await storage.setValue(sessionId, 'k', 'one');
      await storage.setValue(sessionId, 'k', 'two');
      expect(await storage.getValue(sessionId, 'k')).toBe('two');
      await storage.setValue(sessionId, 'empty', '');
      expect(await storage.getValue(sessionId, 'empty')).toBe('');
      expect(await storage.deleteValue(sessionId, 'k')).toBe(true);
      expect(await storage.deleteValue(sessionId, 'k')).toBe(false);
      expect(await storage.getValue(sessionId, 'k')).toBeNull();
      expect(await storage.deleteValue(randomId('session'), 'k')).toBe(false);
    });

    it('lists keys sorted by code unit', async () => {
      const { storage } = backends();
      const sessionId = randomId('session');
      const keys = ['b', 'B', 'a', 'a/b', 'a-b', 'A_b', '10', '9', '~', ' space'];
      for (const key of keys) await storage.setValue(sessionId, key, key);
      expect(await storage.listKeys(sessionId)).toEqual([...keys].sort());
      expect(await storage.listKeys(sessionId, '')).toEqual([...keys].sort());
      expect(await storage.listKeys(randomId('session'))).toEqual([]);
    });

    it('matches prefixes literally, never as patterns', async () => {
      const { storage } = backends();
      const sessionId = randomId('session');
      const keys = [
        'session_a',
        'session_b',
        'session1_x',
        'sessionXa',
        '50%',
        '50% off',
        '500',
        '_',
        '_x',
        'ax',
        'a%',
        'a\\b',
        'a\\\\b',
        '[ab]c',
        'ac',
        '.*',
        'xyz',
      ];
      for (const key of keys) await storage.setValue(sessionId, key, 'v');
      expect(await storage.listKeys(sessionId, 'session_')).toEqual(['session_a', 'session_b']);
      expect(await storage.listKeys(sessionId, '50%')).toEqual(['50%', '50% off']);
      expect(await storage.listKeys(sessionId, '_')).toEqual(['_', '_x']);
      expect(await storage.listKeys(sessionId, 'a%')).toEqual(['a%']);
      expect(await storage.listKeys(sessionId, 'a\\')).toEqual(['a\\\\b', 'a\\b']);
      expect(await storage.listKeys(sessionId, '[ab]')).toEqual(['[ab]c']);
      expect(await storage.listKeys(sessionId, '.*')).toEqual(['.*']);
      expect(await storage.listKeys(sessionId, 'nothing')).toEqual([]);
    });

    it('keeps secrets apart from values and out of key listings', async () => {
      const { storage } = backends();
      const sessionId = randomId('session');
      const secret = `s3cr3t-${randomId()}`;
      await storage.setValue(sessionId, 'shared', 'plain');
      await storage.setSecret(sessionId, 'shared', secret);
      await storage.setSecret(sessionId, 'api_key', secret);
      expect(await storage.getSecret(sessionId, 'api_key')).toBe(secret);
      expect(await storage.getSecret(sessionId, 'shared')).toBe(secret);
      expect(await storage.getValue(sessionId, 'shared')).toBe('plain');
      expect(await storage.getValue(sessionId, 'api_key')).toBeNull();
      const keys = await storage.listKeys(sessionId);
      expect(keys).toEqual(['shared']);
      expect(JSON.stringify(keys)).not.toContain(secret);
      const secretKeys = await storage.listSecretKeys(sessionId);
      expect(secretKeys).toEqual(['api_key', 'shared']);
      expect(JSON.stringify(secretKeys)).not.toContain(secret);
      expect(await storage.listSecretKeys(sessionId, 'api_')).toEqual(['api_key']);
      expect(await storage.listSecretKeys(sessionId, 'api%')).toEqual([]);
    });

    it('replaces and deletes secrets', async () => {
      const { storage } = backends();
      const sessionId = randomId('session');
      expect(await storage.getSecret(sessionId, 'token')).toBeNull();
      await storage.setSecret(sessionId, 'token', 'one');
      await storage.setSecret(sessionId, 'token', 'two');
      expect(await storage.getSecret(sessionId, 'token')).toBe('two');
      expect(await storage.deleteSecret(sessionId, 'token')).toBe(true);
      expect(await storage.deleteSecret(sessionId, 'token')).toBe(false);
      expect(await storage.getSecret(sessionId, 'token')).toBeNull();
      expect(await storage.listSecretKeys(sessionId)).toEqual([]);
    });

    it('deleting a value leaves the secret with the same key, and the other way round', async () => {
      const { storage } = backends();
      const sessionId = randomId('session');
      await storage.setValue(sessionId, 'k', 'value');
      await storage.setSecret(sessionId, 'k', 'secret');
      expect(await storage.deleteValue(sessionId, 'k')).toBe(true);
      expect(await storage.getSecret(sessionId, 'k')).toBe('secret');
      await storage.setValue(sessionId, 'k', 'value');
      expect(await storage.deleteSecret(sessionId, 'k')).toBe(true);
      expect(await storage.getValue(sessionId, 'k')).toBe('value');
    });

    it('keeps sessions apart', async () => {
      const { storage } = backends();
      const [one, two] = [randomId('session'), randomId('session')];
      await storage.setValue(one, 'k', 'one');
      await storage.setSecret(one, 's', 'one');
      expect(await storage.getValue(two, 'k')).toBeNull();
      expect(await storage.getSecret(two, 's')).toBeNull();
      expect(await storage.listKeys(two)).toEqual([]);
      expect(await storage.listSecretKeys(two)).toEqual([]);
      expect(await storage.deleteValue(two, 'k')).toBe(false);
      expect(await storage.getValue(one, 'k')).toBe('one');
    });

    it('round-trips NUL, Unicode and large values exactly', async () => {
      const { storage } = backends();
      const sessionId = randomId('session');
      const large = `${TRICKY_TEXT}${'x'.repeat(100_000)}`;
      await storage.setValue(sessionId, 'tricky', TRICKY_TEXT);
      await storage.setValue(sessionId, 'large', large);
      await storage.setSecret(sessionId, 'tricky', TRICKY_TEXT);
      expect(await storage.getValue(sessionId, 'tricky')).toBe(TRICKY_TEXT);
      expect(await storage.getValue(sessionId, 'large')).toBe(large);
      expect(await storage.getSecret(sessionId, 'tricky')).toBe(TRICKY_TEXT);
    });

    it('setValueIfAbsent (when offered) stores once; one of many racing callers wins', async () => {
      const { storage } = backends();
      if (!storage.setValueIfAbsent) return;
      const sessionId = randomId('session');
      expect(await storage.setValueIfAbsent(sessionId, 'claim', 'first')).toBe(true);
      expect(await storage.setValueIfAbsent(sessionId, 'claim', 'second')).toBe(false);
      expect(await storage.getValue(sessionId, 'claim')).toBe('first');
      expect(await storage.setValueIfAbsent(randomId('session'), 'claim', 'other')).toBe(true);
      await storage.setSecret(sessionId, 'secret-key', 's');
      expect(await storage.setValueIfAbsent(sessionId, 'secret-key', 'v')).toBe(true);
      expect(await storage.getSecret(sessionId, 'secret-key')).toBe('s');
      expect(await storage.setValueIfAbsent(sessionId, 'tricky', TRICKY_TEXT)).toBe(true);
      expect(await storage.getValue(sessionId, 'tricky')).toBe(TRICKY_TEXT);
      const racing = await Promise.all(
        Array.from({ length: 10 }, (_, index) =>
          storage.setValueIfAbsent!(sessionId, 'race', `caller ${index}`),
        ),
      );
      expect(racing.filter(Boolean)).toHaveLength(1);
      expect(await storage.getValue(sessionId, 'race')).toBe(`caller ${racing.indexOf(true)}`);
    });

    it('deleteValuesWithPrefix (when offered) deletes literal prefixes only', async () => {
      const { storage } = backends();
      if (!storage.deleteValuesWithPrefix) return;
      const sessionId = randomId('session');
      const otherSession = randomId('session');
      for (const key of ['turn_1/a', 'turn_1/b', 'turn_10/a', 'turnX1/a', '50%/a', '500/a']) {
        await storage.setValue(sessionId, key, 'v');
      }
      await storage.setValue(otherSession, 'turn_1/a', 'v');
      await storage.setSecret(sessionId, 'turn_1/secret', 's');
      expect(await storage.deleteValuesWithPrefix(sessionId, 'turn_1/')).toBe(2);
      expect(await storage.deleteValuesWithPrefix(sessionId, 'turn_1/')).toBe(0);
      expect(await storage.deleteValuesWithPrefix(sessionId, '50%')).toBe(1);
      expect(await storage.listKeys(sessionId)).toEqual(['500/a', 'turnX1/a', 'turn_10/a']);
      expect(await storage.listKeys(otherSession)).toEqual(['turn_1/a']);
      expect(await storage.getSecret(sessionId, 'turn_1/secret')).toBe('s');
      await expect(storage.deleteValuesWithPrefix(sessionId, '')).rejects.toMatchObject({
        code: 'INVALID_INPUT',
      });
      expect(await storage.listKeys(sessionId)).toHaveLength(3);
      for (const value of HOSTILE_STRINGS) {
        const key = `${value}${randomId()}`;
        await storage.setValue(sessionId, key, value);
        expect(await storage.deleteValuesWithPrefix(sessionId, key)).toBe(1);
      }
      expect(await storage.listKeys(sessionId)).toHaveLength(3);
    });

    it('accepts hostile session ids and keys as opaque data', async () => {
      const { storage } = backends();
      for (const value of HOSTILE_STRINGS) {
        const sessionId = `${value}${randomId()}`;
        const key = `${value}${randomId()}`;
        await storage.setValue(sessionId, key, value);
        await storage.setSecret(sessionId, key, `secret ${value}`);
        expect(await storage.getValue(sessionId, key)).toBe(value);
        expect(await storage.getSecret(sessionId, key)).toBe(`secret ${value}`);
        expect(await storage.listKeys(sessionId, value)).toEqual([key]);
        expect(await storage.listSecretKeys(sessionId)).toEqual([key]);
        expect(await storage.deleteValue(sessionId, key)).toBe(true);
        expect(await storage.deleteSecret(sessionId, key)).toBe(true);
      }
    });
  });
}
