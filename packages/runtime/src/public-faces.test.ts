import { describe, expect, it } from 'vitest';
import * as host from './host-entry.js';
import * as embedder from './index.js';

describe('the public faces of the runtime', () => {
  it('gives an embedder the builders, the runtime and the file-store decorators from .', () => {
    expect(Object.keys(embedder).sort()).toEqual([
      'AgentBuilder',
      'ApprovalGatingFileStore',
      'DEFAULT_TURN_STREAM_HIGH_WATER_MARK',
      'DEFAULT_WRITE_BLOCKLIST',
      'DefinitionBuilder',
      'DelegatingFileStore',
      'HarnessBuilder',
      'InProcessRuntime',
      'InProcessRuntimeBuilder',
      'InputMessage',
      'LlmSimConfig',
      'LlmSimDriver',
      'LlmSimTurn',
      'NamedDefinitionBuilder',
      'OUTPUT_FEEDBACK_METADATA_KEY',
      'PlatformDefinition',
      'SessionBuilder',
      'SingleSessionBuilder',
      'TURN_OUTPUT_FORMAT_NAME',
      'TURN_OUTPUT_WRAPPER_KEY',
      'TurnEventTranslator',
      'TurnStream',
      'WriteBlocklistFileStore',
      'errorPartSchema',
      'hasRealPathResolver',
      'inMemoryBackends',
      'reasoningDeltaPartSchema',
      'stepFinishPartSchema',
      'stepStartPartSchema',
      'textDeltaPartSchema',
      'toolCallDeltaPartSchema',
      'toolCallPartSchema',
      'toolCallStartPartSchema',
      'toolResultPartSchema',
      'turnFinishPartSchema',
      'turnResultSchema',
      'turnStartPartSchema',
      'turnStreamPartSchema',
      'turnStreamToReadableStream',
      'turnStreamToSSEResponse',
      'turnStreamToUIMessageStreamResponse',
    ]);
  });

  it('gives a durable host its activities, planner, journals and approvals from ./host, and none of them from .', () => {
    const hostOnly = [
      'executeInputActivity',
      'executeReasonActivity',
      'executeActActivity',
      'RuntimeSessionLifecycle',
      'toolCallJournalOf',
      'withHostOverrides',
      'forOrganization',
      'planNextHostTurn',
      'planResumeAfterToolResults',
      'initialTurnState',
      'runtimeTurnStateSchema',
      'executeTurnStep',
      'settleTurn',
      'initialTurnStep',
      'parseRuntimeTurnStep',
      'turnStepKey',
      'turnResultOf',
      'SessionStorageToolCallJournal',
      'DurableFileApprovals',
      'FILE_APPROVAL_KEY_PREFIX',
      'loadWaitingTurn',
      'storeClientToolResults',
      'clientToolResultsSchema',
    ];
    for (const name of hostOnly) {
      expect(host, name).toHaveProperty(name);
      expect(embedder, name).not.toHaveProperty(name);
    }
  });

  it('gives a durable host the turn stream, its event translator and the part schema from ./host too', () => {
    for (const name of ['TurnStream', 'TurnEventTranslator', 'turnStreamPartSchema']) {
      expect(host, name).toHaveProperty(name);
      expect(embedder, name).toHaveProperty(name);
    }
  });

  it('gives a durable host the structured output review from ./host only, its constants from both', () => {
    expect(host).toHaveProperty('StructuredOutput');
    expect(embedder).not.toHaveProperty('StructuredOutput');
    for (const name of ['OUTPUT_FEEDBACK_METADATA_KEY', 'TURN_OUTPUT_FORMAT_NAME']) {
      expect(host, name).toHaveProperty(name);
      expect(embedder, name).toHaveProperty(name);
    }
  });

  it('keeps the turn driver and its step runner out of both faces', () => {
    for (const name of ['driveTurn', 'runTurnStep']) {
      expect(host).not.toHaveProperty(name);
      expect(embedder).not.toHaveProperty(name);
    }
  });
});
