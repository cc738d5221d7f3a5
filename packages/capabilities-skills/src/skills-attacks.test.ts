// Attacks on the skills capability from hostile workspace files, through real turns on the
// memory store and on the real disk: a scripted model calls list_skills and activate_skill; each
// test asserts its bound (time, event-loop delay) and exactly what the model saw.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileSystemCapability } from '@everruns-ts/capabilities-file-system';
import type { Message, SessionFileSystemFactory } from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver, type LlmSimToolCall } from '@everruns-ts/driver-llmsim';
import { RealDiskSessionFileSystemFactory } from '@everruns-ts/fs-realdisk';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { afterAll, describe, expect, it } from 'vitest';
import { SKILLS_CAPABILITY_ID, skillsCapability } from './index.js';

/** The bound of the issue: no tool call holds the event loop longer than this. */
const MAX_LOOP_DELAY_MS = 100;

const temporaryDirectories: string[] = [];

afterAll(async () => {
  for (const directory of temporaryDirectories)
    await rm(directory, { recursive: true, force: true });
});

const STORES: Record<string, () => Promise<SessionFileSystemFactory | undefined>> = {
  memory: async () => undefined,
  'real disk': async () => {
    const directory = await mkdtemp(join(tmpdir(), 'skills-attacks-'));
    temporaryDirectories.push(directory);
    return new RealDiskSessionFileSystemFactory({ sessionsDirectory: directory });
  },
};

function skill(name: string, extra = ''): string {
  return `---\nname: ${name}\ndescription: The ${name} skill.\n${extra}---\nDo ${name}.\n`;
}

/** 5 MB of plain `key: value` lines: listing skills blocked for over 12 s before the fix. */
const HUGE_FRONT_MATTER = `---\nname: huge\ndescription: d\n${Array.from(
  { length: 400_000 },
  (_, index) => `k${index}: v\n`,
).join('')}---\nbody\n`;

const HOSTILE_SKILLS: Record<string, string> = {
  '/.agents/skills/huge/SKILL.md': HUGE_FRONT_MATTER,
  // Under the file limit, over the front matter limit.
  '/.agents/skills/long/SKILL.md': `---\nname: long\ndescription: ${'d'.repeat(200_000)}\n---\nbody`,
  '/.agents/skills/keys/SKILL.md': `---\nname: keys\ndescription: d\n${Array.from(
    { length: 500 },
    (_, index) => `k${index}: v\n`,
  ).join('')}---\nbody`,
  '/.agents/skills/laughs/SKILL.md': `---\nname: laughs\ndescription: d\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n---\nbody`,
  '/.agents/skills/nested/SKILL.md': `---\nname: nested\ndescription: d\nx: ${'['.repeat(3000)}${']'.repeat(3000)}\n---\nbody`,
  '/.agents/skills/tagged/SKILL.md': skill(
    'tagged',
    'run: !!js/function "function () { globalThis.pwned = true }"\nother: !custom value\n',
  ),
  '/.agents/skills/plain/SKILL.md': skill('plain', 'note: "Use it: always."\n'),
  '/.agents/skills/expand/SKILL.md': `---\nname: expand\ndescription: d\n---\n${'$ARGUMENTS'.repeat(20_000)}`,
};

function toolResults(messages: Message[]) {
  const results = new Map<string, { content: string; isError: boolean; json: unknown }>();
  for (const message of messages)
    for (const part of message.content)
      if (part.type === 'tool_result') {
        let json: unknown;
        try {
          json = JSON.parse(part.content);
        } catch {}
        results.set(part.toolCallId, { ...part, json });
      }
  return results;
}

async function skillsRuntime(
  factory: SessionFileSystemFactory | undefined,
  calls: LlmSimToolCall[],
  files: Record<string, string>,
  config: Record<string, unknown> = {},
) {
  const driver = new LlmSimDriver(
    LlmSimConfig.sequence(['', 'done']).withToolCallSequence([calls, []]),
  );
  let builder = new InProcessRuntimeBuilder()
    .capability(fileSystemCapability)
    .capability(skillsCapability)
    .driver(driver)
    .defaultModel({ model: 'llmsim-model', providerType: 'llmsim' });
  if (factory) builder = builder.fileSystemFactory(factory);
  const runtime = await builder
    .singleSession((session) => {
      session.harness('skilled', 'Base prompt.').withCapability(SKILLS_CAPABILITY_ID, config);
      for (const [path, content] of Object.entries(files)) session.seedTextFile(path, content);
    })
    .build();
  return { runtime, driver, sessionId: runtime.defaultSessionId() as string };
}

async function measured<T>(run: () => Promise<T>) {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  const started = performance.now();
  const value = await run();
  const elapsedMs = performance.now() - started;
  histogram.disable();
  return { value, elapsedMs, maxLoopDelayMs: histogram.max / 1e6 };
}

describe.each(Object.keys(STORES))('skills under attack, on %s', (store) => {
  it('lists hostile skills quickly, each refused before parsing, and runs no custom tag', async () => {
    const { runtime, driver, sessionId } = await skillsRuntime(
      await (STORES[store] as () => Promise<SessionFileSystemFactory | undefined>)(),
      [
        { id: 'list', name: 'list_skills', arguments: {} },
        { id: 'tagged', name: 'activate_skill', arguments: { name: 'tagged' } },
        {
          id: 'expand',
          name: 'activate_skill',
          arguments: { name: 'expand', arguments: 'x'.repeat(16_000) },
        },
        { id: 'huge', name: 'activate_skill', arguments: { name: 'huge' } },
      ],
      HOSTILE_SKILLS,
    );
    const turn = await measured(() => runtime.runTextTurn(sessionId, 'list'));
    expect(turn.value).toMatchObject({ success: true, response: 'done' });
    expect(turn.elapsedMs).toBeLessThan(5_000);
    expect(turn.maxLoopDelayMs).toBeLessThan(MAX_LOOP_DELAY_MS);
    expect((globalThis as { pwned?: boolean }).pwned).toBeUndefined();
    const results = toolResults(await runtime.messages(sessionId));
    const listed = results.get('list')?.json as { skills: Record<string, string>[]; count: number };
    const byName = Object.fromEntries(listed.skills.map((entry) => [entry.name, entry]));
    expect(listed.count).toBe(8);
    expect(byName.huge?.error).toMatch(
      /^Invalid SKILL\.md: the file is \d+ bytes, more than the 262144 allowed$/,
    );
    expect(byName.long?.error).toBe(
      'Invalid SKILL.md: the front matter is longer than 8192 bytes, or not closed by a "---" line',
    );
    expect(byName.keys?.error).toBe(
      'Invalid SKILL.md: the front matter has more than 64 keys (502)',
    );
    expect(byName.laughs?.error).toMatch(/not valid YAML: .*alias/i);
    expect(byName.nested?.error).toBe(
      'Invalid SKILL.md: the front matter nests "[" or "{" deeper than 32 levels',
    );
    expect(byName.plain).toEqual({
      name: 'plain',
      description: 'The plain skill.',
      path: '/.agents/skills/plain/SKILL.md',
    });
    expect(results.get('tagged')?.json).toMatchObject({
      name: 'tagged',
      instructions: 'Do tagged.',
    });
    expect(results.get('expand')).toMatchObject({
      isError: true,
      content:
        'activate_skill failed: with these arguments the instructions would be 320000000 characters, more than the 1048576 allowed',
    });
    expect(results.get('huge')?.content).toMatch(
      /^activate_skill failed: \/\.agents\/skills\/huge\/SKILL\.md is \d+ bytes, more than the 262144 allowed$/,
    );
    // The system prompt names only the usable skills.
    const prompt = driver.requests[0]?.systemPrompt ?? '';
    expect(prompt).toContain('- plain: The plain skill.');
    expect(prompt).not.toContain('- huge');
  });

  it('refuses the 5 MB front matter by its size before parsing, even when large files are allowed', async () => {
    const { runtime, sessionId } = await skillsRuntime(
      await (STORES[store] as () => Promise<SessionFileSystemFactory | undefined>)(),
      [{ id: 'list', name: 'list_skills', arguments: {} }],
      { '/.agents/skills/huge/SKILL.md': HUGE_FRONT_MATTER },
      { maxSkillFileBytes: 10_000_000 },
    );
    const turn = await measured(() => runtime.runTextTurn(sessionId, 'list'));
    expect(turn.elapsedMs).toBeLessThan(5_000);
    expect(turn.maxLoopDelayMs).toBeLessThan(MAX_LOOP_DELAY_MS);
    expect(toolResults(await runtime.messages(sessionId)).get('list')?.json).toEqual({
      count: 1,
      skills: [
        {
          name: 'huge',
          path: '/.agents/skills/huge/SKILL.md',
          error:
            'Invalid SKILL.md: the front matter is longer than 8192 bytes, or not closed by a "---" line',
        },
      ],
    });
  });

  it('reads at most maxSkills skills, yielding between them, while another session goes on', async () => {
    const files: Record<string, string> = {};
    // Near the limits: each front matter takes the parser a few milliseconds.
    const filler = Array.from({ length: 60 }, (_, index) => `k${index}: ${'v'.repeat(100)}\n`).join(
      '',
    );
    for (let index = 0; index < 400; index++) {
      const name = `skill-${String(index).padStart(3, '0')}`;
      files[`/.agents/skills/${name}/SKILL.md`] = skill(name, filler);
    }
    const attack = await skillsRuntime(
      await (STORES[store] as () => Promise<SessionFileSystemFactory | undefined>)(),
      [{ id: 'list', name: 'list_skills', arguments: {} }],
      files,
      { maxSkills: 300 },
    );
    const bystander = await skillsRuntime(
      await (STORES[store] as () => Promise<SessionFileSystemFactory | undefined>)(),
      [{ id: 'plain', name: 'activate_skill', arguments: { name: 'plain' } }],
      { '/.agents/skills/plain/SKILL.md': skill('plain') },
    );
    let attackDone = false;
    const turn = await measured(async () => {
      const attackTurn = attack.runtime
        .runTextTurn(attack.sessionId, 'list')
        .finally(() => (attackDone = true));
      await new Promise((resolve) => setTimeout(resolve, 20));
      const quiet = await bystander.runtime.runTextTurn(bystander.sessionId, 'hi');
      expect(quiet).toMatchObject({ success: true, response: 'done' });
      const bystanderFinishedFirst = !attackDone;
      await attackTurn;
      return bystanderFinishedFirst;
    });
    expect(turn.value, 'the bystander finished while the attack was still reading skills').toBe(
      true,
    );
    expect(turn.maxLoopDelayMs).toBeLessThan(MAX_LOOP_DELAY_MS);
    expect(turn.elapsedMs).toBeLessThan(30_000);
    const listed = toolResults(await attack.runtime.messages(attack.sessionId)).get('list')
      ?.json as { skills: { name: string; error?: string }[]; count: number; omitted: number };
    expect(listed).toMatchObject({ count: 300, omitted: 100 });
    expect(listed.skills.filter((entry) => entry.error)).toEqual([]);
    expect(listed.skills.at(-1)?.name).toBe('skill-299');
    expect(
      toolResults(await bystander.runtime.messages(bystander.sessionId)).get('plain')?.json,
    ).toMatchObject({ instructions: 'Do plain.' });
  });
});
