// `rm` and `rmdir` on a directory with files in it: the store keeps it (its deleteFile answers
// false without `recursive`, as upstream's stores) and the shell says why; `rm -r` removes it.
import { InProcessRuntimeBuilder, LlmSimConfig } from '@everruns-ts/runtime';
import { describe, expect, it } from 'vitest';
import { VIRTUAL_BASH_CAPABILITY_ID, virtualBashCapability } from './index.js';

async function shell(commands: string) {
  const runtime = await new InProcessRuntimeBuilder()
    .capability(virtualBashCapability)
    .llmSim(
      LlmSimConfig.sequence(['', 'done']).withToolCallSequence([
        [{ id: 'sh', name: 'bash', arguments: { commands } }],
        [],
      ]),
    )
    .singleSession((s) =>
      s
        .harness('shell', '')
        .withCapability(VIRTUAL_BASH_CAPABILITY_ID)
        .initialFile('/d/keep.txt', 'kept'),
    )
    .build();
  const sessionId = runtime.defaultSessionId()!;
  await runtime.runTextTurn(sessionId, 'go');
  const result = (await runtime.messages(sessionId))
    .flatMap((message) => message.content)
    .find((part) => part.type === 'tool_result');
  const files = await runtime.fileSystem(sessionId);
  return {
    output: JSON.parse((result as { content: string }).content) as {
      stderr: string;
      stdout: string;
    },
    kept: (await files.statFile('/d/keep.txt')) !== null,
  };
}

describe('rm and rmdir on a non-empty directory', () => {
  it('keeps it without -r, with the reason on stderr', async () => {
    const rm = await shell('rm d; rmdir d; ls d');
    expect(rm.kept).toBe(true);
    expect(rm.output.stderr).toContain("rm: cannot remove 'd'");
    expect(rm.output.stderr).toContain('rmdir: failed to remove');
    expect(rm.output.stdout).toContain('keep.txt');
  });

  it('removes it with rm -r', async () => {
    const rm = await shell('rm -r d');
    expect(rm.kept).toBe(false);
  });
});
