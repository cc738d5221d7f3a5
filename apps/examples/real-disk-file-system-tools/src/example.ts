import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUILTIN_CAPABILITIES } from '@everruns-ts/builtins';
import type { SessionFileSystemFactory } from '@everruns-ts/core';
import { RealDiskSessionFileSystemFactory } from '@everruns-ts/fs-realdisk';
import {
  ApprovalGatingFileStore,
  type FileApprovalRequest,
  InProcessRuntimeBuilder,
  LlmSimConfig,
  type TurnResult,
  WriteBlocklistFileStore,
} from '@everruns-ts/runtime';

/** Stable ids so the example's output is the same on every run. */
export const HARNESS_ID = 'harness_00000000000000000000000000000092';
export const AGENT_ID = 'agent_00000000000000000000000000000092';
export const SESSION_ID = 'session_00000000000000000000000000000092';

/** What the example observed. */
export interface FileSystemToolsOutput {
  result: TurnResult;
  /** The tool results the model saw, in order. */
  toolResults: { content: string; isError: boolean }[];
  /** What the approval gate was asked. */
  approvals: FileApprovalRequest[];
  /** Files on disk afterwards, read with plain `node:fs`. */
  outputOnDisk: string;
  inputOnDisk: string;
}

/**
 * Runs the example in `workspace`, an existing directory. The simulated model reads a file seeded
 * on disk, writes a new one and overwrites the seeded one (each asks the approval gate, with the
 * content before and after) and tries to write into `.git` (refused by the write blocklist; the
 * turn goes on).
 */
export async function runRealDiskFileSystemToolsExample(
  workspace: string,
): Promise<FileSystemToolsOutput> {
  // 1. A file seeded directly on disk, for the model to read.
  writeFileSync(join(workspace, 'input.txt'), 'hello from real disk');

  // 2. Each session's workspace: the real directory, behind an approval gate that approves
  //    everything and remembers what it was asked, behind the write blocklist (outermost, so a
  //    blocked write is refused before anyone is asked about it).
  const approvals: FileApprovalRequest[] = [];
  const realDisk = new RealDiskSessionFileSystemFactory({ root: workspace });
  const workspaces: SessionFileSystemFactory = {
    forSession: (sessionId) =>
      new WriteBlocklistFileStore(
        new ApprovalGatingFileStore(
          realDisk.forSession(sessionId),
          (request) => {
            approvals.push(request);
            return 'approve';
          },
          { sessionId },
        ),
      ),
  };

  // 3. The built-in capabilities, of which the harness switches on only the file tools; the
  //    simulated model follows a fixed script of tool calls.
  const runtime = await new InProcessRuntimeBuilder()
    .builtins(BUILTIN_CAPABILITIES)
    .fileSystemFactory(workspaces)
    .llmSim(
      LlmSimConfig.fixed('done').withToolCallSequence([
        [{ id: 'call_read_1', name: 'read_file', arguments: { path: '/workspace/input.txt' } }],
        [
          {
            id: 'call_write_1',
            name: 'write_file',
            arguments: { path: '/workspace/output.txt', content: 'hello back' },
          },
        ],
        [
          {
            id: 'call_write_2',
            name: 'write_file',
            arguments: { path: '/input.txt', content: 'hello again' },
          },
        ],
        [
          {
            id: 'call_write_3',
            name: 'write_file',
            arguments: { path: '/.git/config', content: '[core]\n' },
          },
        ],
        [],
      ]),
    )
    .harness({
      id: HARNESS_ID,
      name: 'files',
      displayName: 'Files',
      description: 'Harness exposing the file tools',
      systemPrompt: 'Use the file tools.',
      capabilities: [{ id: 'session_file_system' }],
    })
    .agent({
      id: AGENT_ID,
      name: 'files-agent',
      systemPrompt: 'Use tools when needed.',
      maxIterations: 8,
    })
    .session({ id: SESSION_ID, harnessId: HARNESS_ID, agentId: AGENT_ID, title: 'Files Session' })
    .build();

  const result = await runtime.runTextTurn(SESSION_ID, 'Read input.txt, then write output.txt.');
  const toolResults = (await runtime.messages(SESSION_ID)).flatMap((message) =>
    message.content.flatMap((part) =>
      part.type === 'tool_result' ? [{ content: part.content, isError: part.isError }] : [],
    ),
  );

  // 4. Straight from the disk, without any store: the bytes are there.
  return {
    result,
    toolResults,
    approvals,
    outputOnDisk: readFileSync(join(workspace, 'output.txt'), 'utf8'),
    inputOnDisk: readFileSync(join(workspace, 'input.txt'), 'utf8'),
  };
}
