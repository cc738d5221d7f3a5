import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileSystemCapability } from '@everruns-ts/capabilities-file-system';
import {
  defineCapability,
  defineTool,
  type Message,
  type RuntimeBackends,
  type SessionFileSystem,
  type SessionFileSystemFactory,
  type ToolResultPart,
  toolError,
} from '@everruns-ts/core';
import { LlmSimConfig, type LlmSimToolCall } from '@everruns-ts/driver-llmsim';
import { RealDiskSessionFileSystemFactory } from '@everruns-ts/fs-realdisk';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { DATABASE_URL, dropSchemas, randomSchemaName } from '@everruns-ts/runtime-suites';
import { InMemorySessionFileSystemFactory, inMemoryBackends } from '@everruns-ts/stores-memory';
import { postgresBackends } from '@everruns-ts/stores-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  DEFAULT_THRESHOLD_CHARS,
  TOOL_OUTPUT_PERSISTENCE_CAPABILITY_ID,
  type ToolOutputPersistenceConfig,
  toolOutputPath,
  toolOutputPersistenceCapability,
  toolOutputPersistenceConfigSchema,
  toolOutputPreview,
} from './index.js';

// tool_output_persistence through real turns: a tool returns 5 MB (one line holding a secret it
// read), the afterToolCall hook writes it to the workspace and the model gets a preview; the model
// then reads a middle slice with read_file. On the in-memory workspace and a real temporary
// directory, with the in-memory stores and with PostgreSQL.

const SECRET = `s3cr3t-${randomBytes(6).toString('hex')}`;
const LINE_COUNT = 65_536;
const line = (index: number) => `line ${String(index).padStart(6, '0')}: ${'x'.repeat(64)}`;

/** The tool's whole output: 65,536 lines of 78 characters (5 MiB), line 3 holding the secret. */
function bigOutput(): string {
  const lines: string[] = [];
  for (let index = 1; index <= LINE_COUNT; index++) {
    lines.push(index === 3 ? `line 000003: token=${SECRET}` : line(index));
  }
  return `${lines.join('\n')}\n`;
}

const bigOutputCapability = defineCapability({
  id: 'big_output',
  name: 'Big output',
  description: 'A tool whose result is large.',
  tools: [
    defineTool({
      name: 'dump',
      description: 'Returns a large text.',
      inputSchema: z.strictObject({ fail: z.boolean().optional(), chars: z.number().optional() }),
      async execute(input, context) {
        // Read through the storage, so the runtime knows to redact it from the result.
        await context.storage.getSecret(context.sessionId, 'api_token');
        const text = input.chars === undefined ? bigOutput() : 'y'.repeat(input.chars);
        return input.fail ? toolError(`failed after printing:\n${text}`) : text;
      },
    }),
  ],
});

const schema = randomSchemaName('tool_outputs');
const secretKey = { id: 'k', key: randomBytes(32) };
const directories: string[] = [];

beforeAll(async () => {
  const backends = postgresBackends(
    { connectionString: DATABASE_URL, poolConfig: { max: 2 } },
    { schema, secretKey },
  );
  await backends.migrate();
  await backends.close();
});
afterAll(async () => {
  await dropSchemas(schema);
  for (const directory of directories) await rm(directory, { recursive: true, force: true });
});

async function temporaryDirectory(): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'tool-outputs-'));
  directories.push(directory);
  return directory;
}

const stores: Record<string, () => RuntimeBackends> = {
  memory: () => inMemoryBackends(),
  postgres: () =>
    postgresBackends(
      { connectionString: DATABASE_URL, poolConfig: { max: 4 } },
      { schema, secretKey },
    ),
};

const workspaces: Record<
  string,
  () => Promise<{ factory: SessionFileSystemFactory; root?: string }>
> = {
  memory: async () => ({ factory: new InMemorySessionFileSystemFactory() }),
  'real disk': async () => {
    const root = await temporaryDirectory();
    return { factory: new RealDiskSessionFileSystemFactory({ root }), root };
  },
};

function results(messages: readonly Message[]): Map<string, ToolResultPart> {
  const found = new Map<string, ToolResultPart>();
  for (const message of messages) {
    for (const part of message.content) {
      if (part.type === 'tool_result') found.set(part.toolCallId, part);
    }
  }
  return found;
}

/** One real turn whose model makes each step's calls in order, then answers "done". */
async function runSteps(
  steps: LlmSimToolCall[][],
  options: {
    backends: RuntimeBackends;
    factory: SessionFileSystemFactory;
    config?: ToolOutputPersistenceConfig;
    maxToolResultChars?: number;
    beforeTurn?: (sessionId: string) => Promise<void>;
  },
) {
  let builder = new InProcessRuntimeBuilder()
    .backends(options.backends)
    .fileSystemFactory(options.factory)
    .capability(fileSystemCapability)
    .capability(bigOutputCapability)
    .capability(toolOutputPersistenceCapability)
    .llmSim(
      LlmSimConfig.sequence([...steps.map(() => ''), 'done']).withToolCallSequence([...steps, []]),
    );
  if (options.maxToolResultChars !== undefined) {
    builder = builder.limits({ maxToolResultChars: options.maxToolResultChars });
  }
  const runtime = await builder
    .singleSession((session) =>
      session
        .harness(`h_${randomBytes(6).toString('hex')}`, 'You run tools.')
        .withCapability('big_output')
        .withCapability(TOOL_OUTPUT_PERSISTENCE_CAPABILITY_ID, options.config),
    )
    .build();
  const sessionId = runtime.defaultSessionId() as string;
  try {
    await options.backends.storage.setSecret(sessionId, 'api_token', SECRET);
    await options.beforeTurn?.(sessionId);
    const turn = await runtime.runTextTurn(sessionId, 'go');
    expect(turn.success).toBe(true);
    const messages = await runtime.messages(sessionId);
    const workspace = await options.factory.forSession(sessionId);
    return { results: results(messages), workspace, sessionId };
  } finally {
    await runtime.close();
  }
}

const EXPECTED = bigOutput().replace(SECRET, 'secret://api_token');

describe.each([
  ['memory', 'memory'],
  ['memory', 'real disk'],
  ['postgres', 'memory'],
])('tool_output_persistence (%s stores, %s workspace)', (storeName, workspaceName) => {
  it('saves a 5 MB result whole (secret redacted); the model gets a head/tail preview and reads a middle slice with read_file', async () => {
    const { factory, root } = await workspaces[workspaceName]!();
    const { results: found, workspace } = await runSteps(
      [
        [{ id: 'call_big', name: 'dump', arguments: {} }],
        [
          {
            id: 'call_read',
            name: 'read_file',
            arguments: { path: '/.tool-outputs/call_big.txt', offset: 32_000, limit: 3 },
          },
        ],
      ],
      { backends: stores[storeName]!(), factory },
    );
    const stored = found.get('call_big')!;
    expect(stored.isError).toBe(false);
    const path = '/.tool-outputs/call_big.txt';
    expect(stored.content).toBe(
      toolOutputPreview({
        content: EXPECTED,
        path,
        sizeBytes: EXPECTED.length,
        headChars: 4096,
        tailChars: 2048,
      }),
    );
    expect(stored.content.length).toBeLessThan(7000);
    expect(stored.content).toContain(
      `the full output (${EXPECTED.length} characters, ${EXPECTED.length} bytes, ${LINE_COUNT} lines) is saved in the workspace at ${path}`,
    );
    expect(stored.content).toContain('line 000003: token=secret://api_token');
    expect(stored.content).not.toContain(SECRET);
    expect(stored.content).toContain(`${line(65_536)}\n`);
    // The head (4,096 characters of 78-character lines) stops inside line 54, the tail (2,048)
    // starts inside line 65,509.
    expect(stored.content).toContain(
      `${EXPECTED.length - 4096 - 2048} characters not shown: lines 54 to 65509 (read_file offset 53)`,
    );

    // The file holds the whole redacted output.
    const file = await workspace.readFile(path);
    expect(file.content).toBe(EXPECTED);
    if (root !== undefined) {
      expect(await readFile(join(root, '.tool-outputs', 'call_big.txt'), 'utf8')).toBe(EXPECTED);
    }

    const read = JSON.parse(found.get('call_read')!.content);
    expect(read).toMatchObject({
      path,
      content: `${line(32_001)}\n${line(32_002)}\n${line(32_003)}\n`,
      total_lines: LINE_COUNT,
      lines_shown: { start: 32_001, end: 32_003 },
      next_offset: 32_003,
    });
  });

  it('treats an error result alike, and leaves a result under the threshold untouched', async () => {
    const { factory } = await workspaces[workspaceName]!();
    const { results: found, workspace } = await runSteps(
      [
        [
          { id: 'call_fail', name: 'dump', arguments: { fail: true } },
          { id: 'call_small', name: 'dump', arguments: { chars: DEFAULT_THRESHOLD_CHARS } },
        ],
      ],
      { backends: stores[storeName]!(), factory },
    );
    const failed = found.get('call_fail')!;
    expect(failed.isError).toBe(true);
    expect(failed.content).toContain('is saved in the workspace at /.tool-outputs/call_fail.txt');
    const file = await workspace.readFile('/.tool-outputs/call_fail.txt');
    expect(file.content.startsWith('failed after printing:\nline 000001: ')).toBe(true);
    expect(file.content).toContain('token=secret://api_token');
    const small = found.get('call_small')!;
    expect(small.content).toBe('y'.repeat(DEFAULT_THRESHOLD_CHARS));
    expect(await workspace.statFile('/.tool-outputs/call_small.txt')).toBeNull();
  });

  it.each([
    [
      'a file where the directory should be',
      (workspace: SessionFileSystem) => workspace.writeFile('/.tool-outputs', 'in the way'),
      /.+/,
    ],
    [
      'a read-only file at the path',
      (workspace: SessionFileSystem) =>
        workspace.seedInitialFile({
          path: '/.tool-outputs/call_big.txt',
          content: 'kept',
          encoding: 'text',
          isReadonly: true,
        }),
      /read-only|read only|FILE_READ_ONLY/i,
    ],
  ])(
    'when the file cannot be written (%s), the result gets the runtime’s usual cut and says it was not saved',
    async (_name, obstruct, reason) => {
      const { factory } = await workspaces[workspaceName]!();
      const { results: found, workspace } = await runSteps(
        [[{ id: 'call_big', name: 'dump', arguments: {} }]],
        {
          backends: stores[storeName]!(),
          factory,
          maxToolResultChars: 20_000,
          beforeTurn: async (sessionId) => {
            await obstruct(await factory.forSession(sessionId));
          },
        },
      );
      const stored = found.get('call_big')!;
      expect(stored.isError).toBe(false);
      const [notice] = stored.content.split('\n');
      expect(notice).toMatch(
        new RegExp(
          `^\\[tool_output_persistence: the full output \\(${EXPECTED.length} characters\\) could not be saved to /\\.tool-outputs/call_big\\.txt \\(.+\\); it is cut to the runtime's result limit below and the rest is lost\\.\\]$`,
        ),
      );
      expect(notice).toMatch(reason);
      expect(stored.content).toContain(`]\nline 000001: ${'x'.repeat(64)}\n`);
      expect(stored.content).toContain('…[truncated: the result was');
      expect(stored.content).toContain('the limit is 20000]');
      expect(stored.content).not.toContain(SECRET);
      // Nothing was replaced in the workspace.
      const kept = await workspace.statFile('/.tool-outputs/call_big.txt');
      if (kept)
        expect((await workspace.readFile('/.tool-outputs/call_big.txt')).content).toBe('kept');
    },
  );
});

describe('tool_output_persistence pieces', () => {
  it('names the file after the call id, sanitised, without collisions', () => {
    expect(toolOutputPath('call_abc-1')).toBe('/.tool-outputs/call_abc-1.txt');
    const odd = toolOutputPath('../../etc/passwd');
    expect(odd).toMatch(/^\/\.tool-outputs\/etcpasswd-[0-9a-f]{8}\.txt$/);
    expect(toolOutputPath('a.b')).not.toBe(toolOutputPath('ab'));
    expect(toolOutputPath('')).toMatch(/^\/\.tool-outputs\/call-[0-9a-f]{8}\.txt$/);
    expect(toolOutputPath('x'.repeat(300)).length).toBeLessThan(120);
  });

  it('validates the configuration', () => {
    expect(toolOutputPersistenceConfigSchema.safeParse({}).success).toBe(true);
    expect(
      toolOutputPersistenceConfigSchema.safeParse({
        thresholdChars: 1000,
        headChars: 600,
        tailChars: 400,
      }).success,
    ).toBe(false);
    expect(toolOutputPersistenceConfigSchema.safeParse({ thresholdChars: 10 }).success).toBe(false);
    expect(toolOutputPersistenceConfigSchema.safeParse({ other: true }).success).toBe(false);
  });

  it('never splits a surrogate pair in the preview', () => {
    const content = '😀'.repeat(5000);
    const preview = toolOutputPreview({
      content,
      path: '/.tool-outputs/x.txt',
      sizeBytes: 20_000,
      headChars: 101,
      tailChars: 101,
    });
    expect(
      /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(preview),
    ).toBe(false);
    expect(preview).toContain('first 100 and last 100 characters');
  });
});
