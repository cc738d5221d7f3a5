import { readdir, readFile } from 'node:fs/promises';
import { EverrunsError, type LinearRegexEngine } from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import { InMemorySessionFileStore, InMemorySessionFileSystemFactory } from './index.js';
import { loadRe2jsRegexEngine } from './re2js-regex-engine.js';

/** An engine that matches the pattern as plain text and records what it compiled. */
function recordingEngine(name: string): LinearRegexEngine & { compiled: string[] } {
  const compiled: string[] = [];
  return {
    name,
    compiled,
    compile(pattern) {
      compiled.push(pattern);
      return { test: (line) => line.includes(pattern) };
    },
  };
}

function missingModule(): Promise<never> {
  const error = Object.assign(new Error("Cannot find package 're2js'"), {
    code: 'ERR_MODULE_NOT_FOUND',
  });
  return Promise.reject(error);
}

async function storeWithFile(
  options: ConstructorParameters<typeof InMemorySessionFileStore>[0] = {},
): Promise<InMemorySessionFileStore> {
  const files = new InMemorySessionFileStore(options);
  await files.writeFile('/notes.txt', 'a (b) line\nanother line\n');
  return files;
}

describe('InMemorySessionFileStore grep engine (stores-memory)', () => {
  it('rejects grep with CONFIGURATION naming re2js and regexEngine when re2js cannot be loaded', async () => {
    const files = await storeWithFile({ loadRegexEngine: missingModule });
    const error = await files.grepFiles('line').then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(EverrunsError.hasCode(error, 'CONFIGURATION')).toBe(true);
    const configuration = error as EverrunsError;
    expect(configuration.message).toContain('linear-time regex engine');
    expect(configuration.message).toContain('install `re2js`');
    expect(configuration.message).toContain('`regexEngine`');
    expect(configuration.details).toEqual({ missing: 're2js' });
    expect((configuration.cause as { code?: string }).code).toBe('ERR_MODULE_NOT_FOUND');
  });

  it('greps with the engine passed on the call without loading re2js', async () => {
    let loads = 0;
    const files = await storeWithFile({
      loadRegexEngine: () => {
        loads++;
        return missingModule();
      },
    });
    const engine = recordingEngine('plain-text');
    // `(b)` as plain text: the call's engine decides, not re2js (where it would be a group).
    expect(await files.grepFiles('(b)', undefined, { regexEngine: engine })).toEqual([
      { path: '/notes.txt', lineNumber: 1, line: 'a (b) line' },
    ]);
    expect(engine.compiled).toEqual(['(b)']);
    expect(loads).toBe(0);
  });

  it("prefers the call's engine over the store's, and the store's over loading re2js", async () => {
    let loads = 0;
    const storeEngine = recordingEngine('store');
    const callEngine = recordingEngine('call');
    const files = await storeWithFile({
      regexEngine: storeEngine,
      loadRegexEngine: () => {
        loads++;
        return missingModule();
      },
    });
    expect(await files.grepFiles('another')).toHaveLength(1);
    expect(await files.grepFiles('line', undefined, { regexEngine: callEngine })).toHaveLength(2);
    expect(storeEngine.compiled).toEqual(['another']);
    expect(callEngine.compiled).toEqual(['line']);
    expect(loads).toBe(0);
  });

  it("still refuses backreferences and overlong patterns with the caller's engine", async () => {
    const files = await storeWithFile({ loadRegexEngine: missingModule });
    const regexEngine = recordingEngine('plain-text');
    await expect(files.grepFiles('(a)\\1', undefined, { regexEngine })).rejects.toMatchObject({
      code: 'INVALID_INPUT',
    });
    await expect(
      files.grepFiles('a'.repeat(1_001), undefined, { regexEngine }),
    ).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
    expect(regexEngine.compiled).toEqual([]);
  });

  it('gives every session store of the factory its regexEngine', async () => {
    const engine = recordingEngine('factory');
    const factory = new InMemorySessionFileSystemFactory({
      regexEngine: engine,
      loadRegexEngine: missingModule,
    });
    const files = factory.forSession('session_one');
    await files.writeFile('/a.txt', 'needle\n');
    expect(await files.grepFiles('needle')).toHaveLength(1);
    expect(engine.compiled).toEqual(['needle']);
  });

  it('imports re2js once, on first grep, when no engine is given', async () => {
    const first = loadRe2jsRegexEngine();
    expect(loadRe2jsRegexEngine()).toBe(first);
    expect((await first).name).toBe('re2js');
    const files = await storeWithFile();
    // Linear time: (a+)+$ over a long line that does not match returns promptly.
    await files.writeFile('/long.txt', `${'a'.repeat(50_000)}!`);
    const started = performance.now();
    expect(await files.grepFiles('(a+)+$', '/long.txt')).toEqual([]);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('ships no static import of re2js, and declares it an optional peer only', async () => {
    const sourceDirectory = new URL('./', import.meta.url);
    const shipped = (await readdir(sourceDirectory)).filter(
      (name) => name.endsWith('.ts') && !name.endsWith('.test.ts'),
    );
    for (const name of shipped) {
      const text = await readFile(new URL(name, sourceDirectory), 'utf8');
      expect(text, name).not.toMatch(/from\s+['"]re2js['"]|require\(\s*['"]re2js['"]\s*\)/);
    }
    const manifest = JSON.parse(
      await readFile(new URL('../package.json', import.meta.url), 'utf8'),
    );
    expect(manifest.dependencies?.re2js).toBeUndefined();
    expect(manifest.peerDependencies.re2js).toBeDefined();
    expect(manifest.peerDependenciesMeta.re2js).toEqual({ optional: true });
  });
});
