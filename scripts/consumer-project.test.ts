// The check that what we publish works for someone who is not us: the packages it installs are
// packed once (as `pnpm publish` would), a chosen set is installed with npm into a fresh project
// in the system temp folder (outside the workspace, so nothing resolves through the monorepo),
// its code is type-checked by the project's own TypeScript with `strict` and `skipLibCheck:
// false` under `moduleResolution` node16 and bundler, and a small program runs on the in-memory
// stores, on PostgreSQL (a schema of its own, dropped afterwards) and on a real-disk workspace;
// the inspector's bin runs as `npx @everruns-ts/inspector` would, against a seeded schema.
// Third-party packages get the versions the workspace lockfile resolved, through npm
// `overrides`. Needs the build (`pnpm test` builds first) and `DATABASE_URL` (default
// postgres://postgres@127.0.0.1:5432/test).
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packPackages, publishedPackages, ROOT } from './pack-packages.mjs';

const run = promisify(execFile);
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** The packages the consumer asks for by name, as a user following the guide would. */
const CHOSEN = [
  '@everruns-ts/runtime',
  '@everruns-ts/core',
  '@everruns-ts/capabilities-test-math',
  '@everruns-ts/stores-postgres',
  '@everruns-ts/fs-realdisk',
  '@everruns-ts/capabilities-file-system',
  '@everruns-ts/host-pgboss',
  '@everruns-ts/inspector',
];
/**
 * The other @everruns-ts packages the chosen ones depend on (dependencies and peers, all the way
 * down): not on the registry before the first release, so their tarballs are installed too (what
 * the getting-started page says).
 */
const DEPENDED_ON = dependedOn(CHOSEN);

function dependedOn(chosen: readonly string[]): string[] {
  const manifests = new Map(
    publishedPackages().map(({ name, manifest }) => [name, manifest as Record<string, unknown>]),
  );
  const found = new Set<string>();
  const visit = (name: string) => {
    const manifest = manifests.get(name);
    if (!manifest) throw new Error(`${name} is not a published package`);
    for (const field of ['dependencies', 'peerDependencies'] as const) {
      for (const dependency of Object.keys((manifest[field] as object | undefined) ?? {})) {
        if (!dependency.startsWith('@everruns-ts/') || found.has(dependency)) continue;
        if (chosen.includes(dependency)) continue;
        found.add(dependency);
        visit(dependency);
      }
    }
  };
  for (const name of chosen) visit(name);
  return [...found].sort();
}

/** The version the workspace's lockfile resolved for `name`, as installed for `fromPackage`. */
function lockedVersion(name: string, fromPackage: string): string {
  const manifest = join(ROOT, fromPackage, 'node_modules', name, 'package.json');
  return JSON.parse(readFileSync(manifest, 'utf8')).version;
}

const PROGRAM = `import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FILE_SYSTEM_CAPABILITY_ID, fileSystemCapability } from '@everruns-ts/capabilities-file-system';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { type EverrunsError, messageText } from '@everruns-ts/core';
import { RealDiskSessionFileSystemFactory } from '@everruns-ts/fs-realdisk';
import { PgBossHost, type PgBossHostOptions } from '@everruns-ts/host-pgboss';
import { InProcessRuntimeBuilder, LlmSimConfig } from '@everruns-ts/runtime';
import { postgresBackends } from '@everruns-ts/stores-postgres';

function mathModel() {
  return LlmSimConfig.sequence(['', 'The answer is 4.']).withToolCallSequence([
    [{ name: 'add', arguments: { a: 2, b: 2 } }],
    [],
  ]);
}

// 1. In memory.
const memory = await new InProcessRuntimeBuilder()
  .capability(testMathCapability)
  .llmSim(mathModel())
  .singleSession((s) => s.harness('math', 'You are a math assistant.').withCapability('test_math'))
  .build();
const inMemory = await memory.runTextTurn(memory.defaultSessionId()!, 'What is 2 + 2?');
console.log('memory:', inMemory.success, inMemory.response, inMemory.toolCallsCount);

// 2. PostgreSQL, in a schema of its own; a second set of stores (its own pool) reads it back.
const schema = process.env.CONSUMER_SCHEMA!;
const open = () =>
  postgresBackends(
    { connectionString: process.env.DATABASE_URL! },
    { schema, secretKey: { id: 'consumer', key: process.env.EVERRUNS_SECRET_KEY! } },
  );
const backends = open();
await backends.migrate();
const durable = await new InProcessRuntimeBuilder()
  .backends(backends)
  .capability(testMathCapability)
  .llmSim(mathModel())
  .singleSession((s) => s.harness('math', 'You are a math assistant.').withCapability('test_math'))
  .build();
const sessionId = durable.defaultSessionId()!;
const onPostgres = await durable.runTextTurn(sessionId, 'What is 2 + 2?');
await durable.close();
const reader = open();
const messages = await reader.messages.load(sessionId);
console.log('postgres:', onPostgres.response, messages.map((m) => m.role).join(','));
console.log('postgres read back:', messageText(messages.at(-1)!));
await reader.pool.query(\`DROP SCHEMA "\${schema}" CASCADE\`);
await reader.close();

// 3. A real-disk workspace.
const sessionsDirectory = await mkdtemp(join(tmpdir(), 'everruns-consumer-disk-'));
const disk = await new InProcessRuntimeBuilder()
  .capability(fileSystemCapability)
  .fileSystemFactory(new RealDiskSessionFileSystemFactory({ sessionsDirectory }))
  .llmSim(
    LlmSimConfig.sequence(['', 'Noted.']).withToolCallSequence([
      [{ name: 'write_file', arguments: { path: '/notes/todo.md', content: 'buy milk' } }],
      [],
    ]),
  )
  .singleSession((s) =>
    s.harness('notes', 'You keep notes.').withCapability(FILE_SYSTEM_CAPABILITY_ID),
  )
  .build();
const diskSession = disk.defaultSessionId()!;
const noted = await disk.runTextTurn(diskSession, 'Remember to buy milk.');
const written = await readFile(join(sessionsDirectory, diskSession, 'notes', 'todo.md'), 'utf8');
const workspace = await disk.fileSystem(diskSession);
const escape = await workspace
  .readFile('/../../etc/passwd')
  .catch((error: EverrunsError) => error.code);
console.log('disk:', noted.response, written, escape);
await rm(sessionsDirectory, { recursive: true, force: true });

// 4. The durable host's entry point loads (its types are checked by tsc above).
const hostOptions: Partial<PgBossHostOptions> = { supervise: false };
console.log('host-pgboss:', typeof PgBossHost.start, hostOptions.supervise);
`;

/** Seeds one math session (a model with an API key) for the inspector bin to show. */
const INSPECTOR_SEED = `import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { InProcessRuntimeBuilder, LlmSimConfig } from '@everruns-ts/runtime';
import { postgresBackends } from '@everruns-ts/stores-postgres';

const backends = postgresBackends(
  { connectionString: process.env.DATABASE_URL },
  {
    schema: process.env.CONSUMER_SCHEMA,
    secretKey: { id: 'k1', key: Buffer.from(process.env.EVERRUNS_SECRET_KEY, 'hex') },
  },
);
await backends.migrate();
const runtime = await new InProcessRuntimeBuilder()
  .backends(backends)
  .capability(testMathCapability)
  .llmSim(
    LlmSimConfig.sequence(['', 'The answer is 4.']).withToolCallSequence([
      [{ name: 'add', arguments: { a: 2, b: 2 } }],
      [],
    ]),
  )
  .singleSession((s) => s.harness('math', 'You are a math assistant.').withCapability('test_math'))
  .build();
const sessionId = runtime.defaultSessionId();
await runtime.runTextTurn(sessionId, 'What is 2 + 2?');
await runtime.close();
console.log(sessionId);
`;

const EXPECTED_OUTPUT = [
  'memory: true The answer is 4. 1',
  'postgres: The answer is 4. user,agent,tool_result,agent',
  'postgres read back: The answer is 4.',
  'disk: Noted. buy milk INVALID_PATH',
  'host-pgboss: function false',
  '',
].join('\n');

/** Compiler options every consumer config shares: the strictest a user is likely to set. */
const STRICT = {
  strict: true,
  skipLibCheck: false,
  target: 'ES2022',
  lib: ['ES2022'],
  types: ['node'],
  noUncheckedIndexedAccess: true,
};

let work: string;
const timings: Record<string, number> = {};

async function timed<T>(label: string, step: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await step();
  } finally {
    timings[label] = Math.round(performance.now() - started);
  }
}

describe('a consumer project outside the workspace', () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'everruns-consumer-'));
    const tarballs: Map<string, string> = await timed('pack', async () =>
      packPackages(join(work, 'tarballs'), [...CHOSEN, ...DEPENDED_ON]),
    );
    const app = join(work, 'app');
    mkdirSync(app);
    const dependencies: Record<string, string> = {};
    for (const name of [...CHOSEN, ...DEPENDED_ON]) {
      dependencies[name] = `file:${tarballs.get(name)}`;
    }
    dependencies.zod = lockedVersion('zod', 'packages/core');
    const overrides: Record<string, string> = {
      pg: lockedVersion('pg', 'packages/stores-postgres'),
      '@types/pg': lockedVersion('@types/pg', 'packages/stores-postgres'),
      'pg-boss': lockedVersion('pg-boss', 'packages/host-pgboss'),
      re2js: lockedVersion('re2js', 'packages/fs-realdisk'),
      yaml: lockedVersion('yaml', 'packages/capabilities-skills'),
      'html-to-text': lockedVersion('html-to-text', 'packages/capabilities-web-fetch'),
      'node-html-markdown': lockedVersion('node-html-markdown', 'packages/capabilities-web-fetch'),
      zod: dependencies.zod,
    };
    const manifest = {
      name: 'everruns-consumer',
      private: true,
      type: 'module',
      dependencies,
      devDependencies: {
        typescript: lockedVersion('typescript', '.'),
        '@types/node': lockedVersion('@types/node', '.'),
      },
      overrides,
    };
    writeFileSync(join(app, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    writeFileSync(join(app, 'main.ts'), PROGRAM);
    writeFileSync(join(app, 'seed-inspector.mjs'), INSPECTOR_SEED);
    const node16 = { module: 'Node16', moduleResolution: 'Node16', outDir: 'out' };
    const bundler = { module: 'ESNext', moduleResolution: 'Bundler', noEmit: true };
    for (const [file, options] of [
      ['tsconfig.node16.json', node16],
      ['tsconfig.bundler.json', bundler],
    ] as const) {
      writeFileSync(
        join(app, file),
        JSON.stringify({ compilerOptions: { ...STRICT, ...options }, files: ['main.ts'] }),
      );
    }
    await timed('npm install', () =>
      run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], {
        cwd: app,
        env: { ...process.env, npm_config_workspaces: 'false' },
      }),
    );
  }, 300_000);

  afterAll(() => {
    console.log(`consumer project timings (ms): ${JSON.stringify(timings)}`);
    // CONSUMER_KEEP=1 keeps the project for a look (its path is printed).
    if (process.env.CONSUMER_KEEP) console.log(`kept: ${work}`);
    else if (work) rmSync(work, { recursive: true, force: true });
  });

  it('installs the packed packages with npm, LICENSE included, third parties at the locked versions', () => {
    const modules = join(work, 'app', 'node_modules');
    for (const name of [...CHOSEN, ...DEPENDED_ON]) {
      expect(existsSync(join(modules, name, 'LICENSE')), name).toBe(true);
      expect(existsSync(join(modules, name, 'dist', 'index.d.ts')), name).toBe(true);
      expect(existsSync(join(modules, name, 'src')), name).toBe(false);
    }
    const installed = (name: string) =>
      JSON.parse(readFileSync(join(modules, name, 'package.json'), 'utf8')).version;
    expect(installed('pg')).toBe(lockedVersion('pg', 'packages/stores-postgres'));
    expect(installed('@types/pg')).toBe(lockedVersion('@types/pg', 'packages/stores-postgres'));
  });

  it('type-checks under moduleResolution bundler, strict, skipLibCheck false', async () => {
    const app = join(work, 'app');
    const result = await timed('tsc bundler', () =>
      run(join(app, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.bundler.json'], {
        cwd: app,
      }).catch((error: { stdout: string }) => ({ stdout: error.stdout, failed: true })),
    );
    expect(result.stdout).toBe('');
  }, 240_000);

  it('compiles under moduleResolution node16 and runs on memory, PostgreSQL and the real disk', async () => {
    const app = join(work, 'app');
    const compiled = await timed('tsc node16', () =>
      run(join(app, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.node16.json'], {
        cwd: app,
      }).catch((error: { stdout: string }) => ({ stdout: error.stdout, failed: true })),
    );
    expect(compiled.stdout).toBe('');
    const schema = `consumer_${randomBytes(6).toString('hex')}`;
    const { stdout } = await timed('run', () =>
      run(process.execPath, [join(app, 'out', 'main.js')], {
        cwd: app,
        env: {
          ...process.env,
          DATABASE_URL,
          CONSUMER_SCHEMA: schema,
          EVERRUNS_SECRET_KEY: randomBytes(32).toString('hex'),
        },
      }),
    );
    expect(stdout).toBe(EXPECTED_OUTPUT);
  }, 240_000);

  it('runs the inspector bin: --help, then against PostgreSQL it serves a seeded session and its context', async () => {
    const app = join(work, 'app');
    const bin = join(app, 'node_modules', '.bin', 'everruns-inspector');
    const help = await run(bin, ['--help'], { cwd: app });
    expect(help.stdout).toContain('--database-url <url>');
    expect(help.stdout).toContain('--secret-key <key>');

    const schema = `consumer_inspector_${randomBytes(6).toString('hex')}`;
    const secretKey = randomBytes(32).toString('hex');
    const seeded = await run(process.execPath, [join(app, 'seed-inspector.mjs')], {
      cwd: app,
      env: {
        ...process.env,
        DATABASE_URL,
        CONSUMER_SCHEMA: schema,
        EVERRUNS_SECRET_KEY: secretKey,
      },
    });
    const sessionId = seeded.stdout.trim();
    const child = spawn(
      bin,
      [
        '--database-url',
        DATABASE_URL,
        '--schema',
        schema,
        '--secret-key',
        secretKey,
        '--port',
        '0',
      ],
      {
        cwd: app,
        env: { ...process.env, EVERRUNS_SECRET_KEY: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let output = '';
        child.stdout.on('data', (chunk: Buffer) => {
          output += chunk.toString('utf8');
          const match = /at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(output);
          if (match) resolve(match[1] as string);
        });
        child.stderr.on('data', (chunk: Buffer) => {
          output += chunk.toString('utf8');
        });
        child.once('exit', (code) => reject(new Error(`inspector exited (${code}): ${output}`)));
      });
      const sessions = (await (await fetch(`${url}api/sessions`)).json()) as { id: string }[];
      expect(sessions.map((session) => session.id)).toEqual([sessionId]);
      const detail = (await (await fetch(`${url}api/sessions/${sessionId}`)).json()) as {
        turns: { turnId: string }[];
      };
      const turnId = detail.turns[0]?.turnId as string;
      const view = (await (
        await fetch(`${url}api/sessions/${sessionId}/turns/${turnId}/context`)
      ).json()) as {
        contexts: {
          systemPrompt: string;
          tools: { name: string }[];
          messages: { role: string }[];
        }[];
      };
      const context = view.contexts.at(-1);
      expect(context?.systemPrompt).toContain('You are a math assistant.');
      expect(context?.tools.map((tool) => tool.name)).toContain('add');
      expect(context?.messages.map((message) => message.role)).toEqual(
        expect.arrayContaining(['user', 'agent', 'tool_result']),
      );
      const icon = await fetch(`${url}favicon.ico`);
      expect(icon.status).toBe(200);
      const page = await (await fetch(url)).text();
      expect(page).toContain('everruns-ts inspector');
    } finally {
      child.kill('SIGTERM');
      const drop = `DROP SCHEMA IF EXISTS "${schema}" CASCADE`;
      await run(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `import pg from 'pg'; const client = new pg.Client(process.env.DATABASE_URL);
           await client.connect(); await client.query(process.env.DROP); await client.end();`,
        ],
        { cwd: app, env: { ...process.env, DATABASE_URL, DROP: drop } },
      );
    }
  }, 60_000);
});
