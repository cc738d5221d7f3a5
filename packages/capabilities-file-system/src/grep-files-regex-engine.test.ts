import type { GrepOptions } from '@everruns-ts/core';
import { LlmSimConfig } from '@everruns-ts/driver-llmsim';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { InMemorySessionFileStore } from '@everruns-ts/stores-memory';
import { describe, expect, it } from 'vitest';
import { FILE_SYSTEM_CAPABILITY_ID, fileSystemCapability, re2jsRegexEngine } from './index.js';

/** An in-memory store that records the options of every grep and cannot load re2js itself. */
class RecordingStore extends InMemorySessionFileStore {
  readonly grepOptions: (GrepOptions | undefined)[] = [];

  constructor() {
    super({
      loadRegexEngine: () => Promise.reject(new Error("Cannot find package 're2js'")),
    });
  }

  override grepFiles(pattern: string, pathPattern?: string, options?: GrepOptions) {
    this.grepOptions.push(options);
    return super.grepFiles(pattern, pathPattern, options);
  }
}

describe('grep_files regex engine (file-system)', () => {
  it('passes the re2js engine on every grepFiles call, so the store needs none of its own', async () => {
    const store = new RecordingStore();
    await store.writeFile('/a.txt', 'needle one\nhay\nneedle two\n');
    const runtime = await new InProcessRuntimeBuilder()
      .capability(fileSystemCapability)
      .fileSystemFactory({ forSession: () => store })
      .llmSim(
        LlmSimConfig.fromFunction((request) =>
          request.iteration === 1
            ? {
                text: '',
                toolCalls: [
                  { id: 'plain', name: 'grep_files', arguments: { pattern: 'needle' } },
                  {
                    id: 'scoped',
                    name: 'grep_files',
                    arguments: {
                      pattern: '^NEEDLE (a+)+$',
                      path_pattern: '*.txt',
                      ignore_case: true,
                    },
                  },
                ],
              }
            : 'done',
        ),
      )
      .singleSession((session) => {
        session.harness('files', 'You work with files.').withCapability(FILE_SYSTEM_CAPABILITY_ID);
      })
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    expect(await runtime.runTextTurn(sessionId, 'search')).toMatchObject({ success: true });
    expect(store.grepOptions).toHaveLength(2);
    for (const options of store.grepOptions) {
      expect(options?.regexEngine).toBe(re2jsRegexEngine);
    }
    const results = (await runtime.messages(sessionId))
      .flatMap((message) => message.content)
      .filter((part) => part.type === 'tool_result');
    expect(results.map((part) => part.isError)).toEqual([false, false]);
    expect(JSON.parse(results[0]?.content ?? '')).toMatchObject({ count: 2 });
    expect(JSON.parse(results[1]?.content ?? '')).toMatchObject({ count: 0 });
  });

  it('exports re2jsRegexEngine for embedders to hand to their own stores', async () => {
    const store = new InMemorySessionFileStore({
      regexEngine: re2jsRegexEngine,
      loadRegexEngine: () => Promise.reject(new Error("Cannot find package 're2js'")),
    });
    await store.writeFile('/a.txt', 'x = 1\n');
    expect(await store.grepFiles('^x = \\d$')).toHaveLength(1);
    expect(re2jsRegexEngine.name).toBe('re2js');
  });
});
