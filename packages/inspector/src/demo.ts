import {
  FILE_SYSTEM_CAPABILITY_ID,
  fileSystemCapability,
} from '@everruns-ts/capabilities-file-system';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import type { LlmRequest, SessionFileSystemFactory } from '@everruns-ts/core';
import {
  ApprovalGatingFileStore,
  HarnessBuilder,
  type InProcessRuntime,
  InProcessRuntimeBuilder,
  inMemoryBackends,
  LlmSimConfig,
  SessionBuilder,
  type TurnResult,
} from '@everruns-ts/runtime';
import { DurableFileApprovals } from '@everruns-ts/runtime/host';
import { InMemorySessionFileSystemFactory } from '@everruns-ts/stores-memory';
import { durableApprovalsView, type InspectorApprovals } from './inspector-approvals.js';
import { type InspectorSource, runtimeInspectorSource } from './inspector-source.js';

/** The demo: a runtime with finished and running turns, and a delete waiting for approval. */
export interface InspectorDemo {
  runtime: InProcessRuntime;
  source: InspectorSource;
  /** The approvals as the inspector sees them. */
  approvals: InspectorApprovals;
  /** The runtime's durable approvals the workspace gate asks. */
  durableApprovals: DurableFileApprovals;
  /** A math session with one finished turn (two tool calls, one of them an error). */
  mathSessionId: string;
  /** A workspace session whose turn waits for approval to delete `/drafts/old-notes.md`. */
  filesSessionId: string;
  /** The path the pending delete touches. */
  pendingDeletePath: string;
  /** The turn waiting on the approval; settles once someone decides. */
  pendingTurn: Promise<TurnResult>;
  /** Denies what is still pending, waits for the turn, releases the runtime. */
  close(): Promise<void>;
}

const PENDING_DELETE_PATH = '/drafts/old-notes.md';

/**
 * Builds the inspector's demo: an in-memory runtime scripted with the simulated model, a math
 * session with a finished turn, and a workspace session whose turn is blocked on a pending file
 * delete. Each tool call's workspace is an `ApprovalGatingFileStore` asking the runtime's
 * `DurableFileApprovals` (approval records in session storage, ids derived from the tool call).
 */
export async function createInspectorDemo(): Promise<InspectorDemo> {
  const backends = inMemoryBackends();
  const durableApprovals = new DurableFileApprovals({
    storage: backends.storage,
    events: backends.events,
  });
  const approvals = durableApprovalsView(durableApprovals, backends);
  const workspaces = new InMemorySessionFileSystemFactory();
  const fileSystems: SessionFileSystemFactory = {
    forSession: (sessionId) => workspaces.forSession(sessionId),
    forToolCall: (workspace, scope) =>
      new ApprovalGatingFileStore(workspace, durableApprovals.gateFor(scope), {
        sessionId: scope.sessionId,
      }),
  };

  const mathHarness = new HarnessBuilder(
    'math',
    'You are a careful math assistant. Use the calculator tools for every operation.',
  )
    .displayName('Math')
    .capability(testMathCapability.id);
  const filesHarness = new HarnessBuilder(
    'workspace',
    'You keep the workspace tidy. Ask before removing anything important.',
  )
    .displayName('Workspace')
    .capability(FILE_SYSTEM_CAPABILITY_ID);
  const mathSession = new SessionBuilder(mathHarness.harnessId()).title('Math: 2 + 2 and 1 / 0');
  const filesSession = new SessionBuilder(filesHarness.harnessId())
    .title('Workspace clean-up')
    .initialFile('/README.md', '# Project\n\nNotes live in /drafts.\n')
    .initialFile(PENDING_DELETE_PATH, '# Old notes\n\n- nothing important\n');

  const runtime = await new InProcessRuntimeBuilder()
    .backends(backends)
    .fileSystemFactory(fileSystems)
    .capability(testMathCapability)
    .capability(fileSystemCapability)
    .llmSim(LlmSimConfig.fromFunction(demoModel))
    .harness(mathHarness.build())
    .harness(filesHarness.build())
    .session(mathSession.build())
    .session(filesSession.build())
    .build();
  const source = runtimeInspectorSource(runtime, { approvals, label: 'memory (demo)' });

  const mathSessionId = mathSession.sessionId();
  const filesSessionId = filesSession.sessionId();
  await runtime.runTextTurn(mathSessionId, 'What is 2 + 2? And what is 1 divided by 0?');
  const requested = new Promise<void>((resolve) => {
    const unsubscribe = backends.events.subscribe((event) => {
      if (event.type !== 'approval.requested') return;
      unsubscribe();
      resolve();
    });
  });
  const pendingTurn = runtime.runTextTurn(filesSessionId, `Delete ${PENDING_DELETE_PATH}.`);
  pendingTurn.catch(() => undefined);
  await Promise.race([requested, pendingTurn]);

  return {
    runtime,
    source,
    approvals,
    durableApprovals,
    mathSessionId,
    filesSessionId,
    pendingDeletePath: PENDING_DELETE_PATH,
    pendingTurn,
    async close() {
      for (const entry of await approvals.pending()) await approvals.decide(entry.id, 'deny');
      await pendingTurn.catch(() => undefined);
      await runtime.close();
    },
  };
}

/** The simulated model's script: answers depend on the session's harness and the history. */
function demoModel(request: LlmRequest) {
  const last = request.messages.at(-1);
  const lastIsUser = last?.role === 'user';
  if (request.tools.some((tool) => tool.name === 'add')) {
    if (lastIsUser) {
      return {
        text: 'Let me work both out.',
        toolCalls: [
          { name: 'add', arguments: { a: 2, b: 2 } },
          { name: 'divide', arguments: { a: 1, b: 0 } },
        ],
      };
    }
    return '2 + 2 = 4. 1 / 0 has no answer: division by zero is undefined.';
  }
  if (lastIsUser) {
    return {
      text: 'I will remove the old notes.',
      toolCalls: [{ name: 'delete_file', arguments: { path: PENDING_DELETE_PATH } }],
    };
  }
  const result = last?.content.find((part) => part.type === 'tool_result');
  return result?.type === 'tool_result' && result.isError
    ? `I could not delete ${PENDING_DELETE_PATH}: ${result.content}`
    : `Deleted ${PENDING_DELETE_PATH}.`;
}
