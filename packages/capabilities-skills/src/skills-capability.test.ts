import { fileSystemCapability } from '@everruns-ts/capabilities-file-system';
import type { Message } from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver, type LlmSimToolCall } from '@everruns-ts/driver-llmsim';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { describe, expect, it } from 'vitest';
import { parseSkillFile, SKILLS_CAPABILITY_ID, skillsCapability } from './index.js';

const PDF_SKILL = `---
name: pdf-processing
description: Extract text and tables from PDF files.
version: 2
---
# PDF processing

Run the extractor on $ARGUMENTS, then summarise.
`;

const REVIEW_SKILL = `---
name: code-review
description: >
  Review a change for bugs,
  style and tests.
---
Check every changed line.
`;

const WORKSPACE: Record<string, string> = {
  '/.agents/skills/pdf-processing/SKILL.md': PDF_SKILL,
  '/.agents/skills/code-review/SKILL.md': REVIEW_SKILL,
  '/.agents/skills/broken/SKILL.md': '---\nname: [unclosed\n---\nbody',
  '/.agents/skills/nameless/SKILL.md': '---\ndescription: no name here\n---\nbody',
  '/.agents/skills/empty-dir/notes.txt': 'not a skill',
  '/.agents/skills/README.md': 'a stray file',
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

async function skillsRuntime(calls: LlmSimToolCall[], files: Record<string, string> = WORKSPACE) {
  const driver = new LlmSimDriver(
    calls.length === 0
      ? LlmSimConfig.fixed('done')
      : LlmSimConfig.sequence(['', 'done']).withToolCallSequence([calls, []]),
  );
  const runtime = await new InProcessRuntimeBuilder()
    .capability(fileSystemCapability)
    .capability(skillsCapability)
    .driver(driver)
    .defaultModel({ model: 'llmsim-model', providerType: 'llmsim' })
    .singleSession((session) => {
      session.harness('skilled', 'Base prompt.').withCapability(SKILLS_CAPABILITY_ID);
      for (const [path, content] of Object.entries(files)) session.seedTextFile(path, content);
    })
    .build();
  return { runtime, driver, sessionId: runtime.defaultSessionId() as string };
}

describe('skillsCapability', () => {
  it('names the valid skills in the system prompt the model receives', async () => {
    const { runtime, driver, sessionId } = await skillsRuntime([]);
    await runtime.runTextTurn(sessionId, 'hi');
    const prompt = driver.requests[0]?.systemPrompt ?? '';
    expect(prompt).toContain('<capability id="skills">');
    expect(prompt).toContain('- code-review: Review a change for bugs, style and tests.');
    expect(prompt).toContain('- pdf-processing: Extract text and tables from PDF files.');
    expect(prompt.indexOf('code-review')).toBeLessThan(prompt.indexOf('pdf-processing'));
    expect(prompt).not.toContain('broken');
    expect(prompt).not.toContain('nameless');
  });

  it('switches on session_file_system with it', async () => {
    const { runtime, sessionId } = await skillsRuntime([]);
    const context = await runtime.loadContext(sessionId);
    expect(context.tools.map((tool) => tool.name)).toEqual(
      expect.arrayContaining(['list_skills', 'activate_skill', 'read_file', 'write_file']),
    );
    expect(context.capabilityPrompts.map((prompt) => prompt.capabilityId)).toEqual([
      'session_file_system',
      'skills',
    ]);
  });

  it('adds nothing to the prompt when the workspace has no skills', async () => {
    const { runtime, sessionId } = await skillsRuntime([], {});
    const context = await runtime.loadContext(sessionId);
    expect(context.capabilityPrompts.map((prompt) => prompt.capabilityId)).toEqual([
      'session_file_system',
    ]);
  });

  it('lists skills and loads one with its arguments through a real turn', async () => {
    const { runtime, sessionId } = await skillsRuntime([
      { id: 'list', name: 'list_skills', arguments: {} },
      {
        id: 'load',
        name: 'activate_skill',
        arguments: { name: 'pdf-processing', arguments: 'report.pdf' },
      },
      { id: 'plain', name: 'activate_skill', arguments: { name: 'code-review' } },
    ]);
    expect(await runtime.runTextTurn(sessionId, 'summarise report.pdf')).toMatchObject({
      success: true,
    });
    const results = toolResults(await runtime.messages(sessionId));
    expect(results.get('list')?.json).toEqual({
      count: 4,
      skills: [
        {
          name: 'broken',
          path: '/.agents/skills/broken/SKILL.md',
          error: expect.stringContaining('not valid YAML'),
        },
        {
          name: 'code-review',
          description: 'Review a change for bugs, style and tests.',
          path: '/.agents/skills/code-review/SKILL.md',
        },
        {
          name: 'nameless',
          path: '/.agents/skills/nameless/SKILL.md',
          error: expect.stringContaining('"name"'),
        },
        {
          name: 'pdf-processing',
          description: 'Extract text and tables from PDF files.',
          path: '/.agents/skills/pdf-processing/SKILL.md',
        },
      ],
    });
    expect(results.get('load')?.json).toEqual({
      name: 'pdf-processing',
      description: 'Extract text and tables from PDF files.',
      path: '/.agents/skills/pdf-processing/SKILL.md',
      instructions: '# PDF processing\n\nRun the extractor on report.pdf, then summarise.',
    });
    expect(results.get('plain')?.json).toMatchObject({ instructions: 'Check every changed line.' });
  });

  it('reports unknown, invalid and malformed skill requests as tool errors', async () => {
    const { runtime, sessionId } = await skillsRuntime([
      { id: 'unknown', name: 'activate_skill', arguments: { name: 'juggling' } },
      { id: 'broken', name: 'activate_skill', arguments: { name: 'broken' } },
      { id: 'traversal', name: 'activate_skill', arguments: { name: '../../AGENTS.md' } },
      { id: 'missing', name: 'activate_skill', arguments: {} },
      { id: 'type', name: 'activate_skill', arguments: { name: ['pdf'] } },
      { id: 'extra', name: 'list_skills', arguments: { all: true } },
    ]);
    await runtime.runTextTurn(sessionId, 'go');
    const results = toolResults(await runtime.messages(sessionId));
    const error = (id: string) => {
      expect(results.get(id)?.isError, id).toBe(true);
      return results.get(id)?.content ?? '';
    };
    expect(error('unknown')).toContain(
      'there is no skill "juggling". Available: code-review, pdf-processing.',
    );
    expect(error('broken')).toContain('/.agents/skills/broken/SKILL.md is invalid');
    expect(error('traversal')).toMatch(/activate_skill: name: must be a skill directory name/);
    expect(error('missing')).toMatch(/name:/);
    expect(error('type')).toMatch(/name: .*string/);
    expect(error('extra')).toContain('all');
  });

  it('picks up a skill written during the session on the next turn', async () => {
    const { runtime, driver, sessionId } = await skillsRuntime([], {});
    await runtime.runTextTurn(sessionId, 'one');
    await runtime.seedTextFile(
      sessionId,
      '/.agents/skills/new-skill/SKILL.md',
      '---\nname: new-skill\ndescription: Freshly added.\n---\nDo it.',
    );
    await runtime.runTextTurn(sessionId, 'two');
    expect(driver.requests[0]?.systemPrompt).not.toContain('new-skill');
    expect(driver.requests[1]?.systemPrompt).toContain('- new-skill: Freshly added.');
  });
});

describe('parseSkillFile', () => {
  it('parses front matter with the yaml package and returns the body', () => {
    expect(parseSkillFile(PDF_SKILL)).toEqual({
      name: 'pdf-processing',
      description: 'Extract text and tables from PDF files.',
      body: '# PDF processing\n\nRun the extractor on $ARGUMENTS, then summarise.',
      metadata: {
        name: 'pdf-processing',
        description: 'Extract text and tables from PDF files.',
        version: 2,
      },
    });
    expect(parseSkillFile('---\r\nname: "x: y"\r\ndescription: d\r\n---\r\nbody').name).toBe(
      'x: y',
    );
  });

  it('names what is wrong with a bad file', () => {
    expect(() => parseSkillFile('# no front matter')).toThrow(/no YAML front matter/);
    expect(() => parseSkillFile('---\n- a\n- b\n---\n')).toThrow(/must be a YAML mapping/);
    expect(() => parseSkillFile('---\nname: x\n---\n')).toThrow(/"description"/);
    expect(() => parseSkillFile('---\nname: 3\ndescription: d\n---\n')).toThrow(/"name"/);
  });
});
