// The public face of @everruns-ts/core, by name. Three groups: the contracts and data every
// package shares; the kits for authors of capabilities and file-system backends; the engine that
// runs a turn's steps on top of the contracts. Nothing under the contracts imports the engine.

// ---------------------------------------------------------------------------------------------
// Contracts and data
// ---------------------------------------------------------------------------------------------

export type {
  Capability,
  CapabilityChange,
  CapabilityCommand,
  CapabilityPromptContext,
  CommandContext,
  CommandResult,
  JsonSchema,
  SessionCapabilityChanges,
  SessionHistoryAccess,
  ToolContext,
  ToolDefinition,
  ToolSpec,
} from './capability.js';
export type {
  AfterToolCallContext,
  AfterToolCallResult,
  BeforeModelCallContext,
  BeforeModelCallResult,
  BeforeToolCallContext,
  BeforeToolCallResult,
  CapabilityHookContext,
  CapabilityHooks,
  HookModel,
  HookModelCallRequest,
  ModelCallStop,
  UsageSnapshot,
} from './capability-hooks.js';
export { CapabilityRegistry, type ResolvedCapability } from './capability-registry.js';
export {
  COMPACTION_STORAGE_KEY,
  type CompactionRecord,
  compactionRecordSchema,
  compactionSection,
  parseCompactionRecord,
} from './compaction.js';
// Definitions and sessions.
export {
  type Agent,
  type AgentInput,
  agentSchema,
  type CapabilityConfig,
  capabilityConfigSchema,
  type DeclaredTool,
  type DeclaredToolInput,
  declaredToolSchema,
  definitionStatusSchema,
  type FileEncoding,
  fileEncodingSchema,
  type Harness,
  type HarnessInput,
  harnessSchema,
  type InitialFile,
  initialFileSchema,
  type NetworkAccessList,
  networkAccessListSchema,
  type Session,
  type SessionInput,
  type SessionStatus,
  sessionSchema,
  sessionStatusSchema,
} from './domain.js';
// LLM drivers and their registry.
export {
  DriverRegistry,
  type LlmCallOptions,
  type LlmDriver,
  type LlmRequest,
  type LlmResponse,
  type LlmStopReason,
  type LlmStreamEvent,
  type LlmUsage,
} from './driver.js';
// Errors: one class, stable codes.
export {
  ERROR_CODES,
  type ErrorCode,
  EverrunsError,
  type EverrunsErrorOptions,
  errorMessage,
  everrunsError,
  type TurnInProgressDetails,
  throwIfAborted,
  turnInProgressError,
} from './errors.js';
// Events and the event bus.
export {
  EMIT_THROUGH_SYNC,
  EPHEMERAL_EVENT_TYPES,
  type EphemeralEventType,
  EVENT_TYPES,
  type EventBus,
  type EventRequest,
  type EventType,
  eventTimeOf,
  isEphemeralEventType,
  markEmitThroughSync,
  type RuntimeEvent,
  runtimeEventSchema,
  syncEmitOf,
} from './event.js';
// The session file system.
export {
  DESTRUCTIVE_FILE_OPERATIONS,
  type FileContent,
  type FileStat,
  type GrepMatch,
  type GrepOptions,
  type ReadFileOptions,
  type SessionFileSystem,
  type SessionFileSystemFactory,
  type ToolCallScope,
} from './file-system.js';
// Ids: prefixed, sortable (prefix_ + 32 hex digits of a UUID v7).
export {
  type AgentId,
  type EventId,
  type HarnessId,
  ID_PREFIXES,
  type IdPrefix,
  idFromWords,
  idSchema,
  isIdWithPrefix,
  type MessageId,
  newId,
  newIdWithWords,
  type SessionId,
  type TurnId,
} from './ids.js';
export {
  lazyField,
  lazySchema,
  materializeLazySchema,
  safeParseDeferringJit,
} from './lazy-schema.js';
export {
  abortSignalOf,
  LazySignal,
  onAbortOf,
  type SignalSource,
  withSignalOf,
} from './lazy-signal.js';
export {
  LLM_REASONING_EFFORTS,
  type LlmRequestOptions,
  type LlmResponseFormat,
  type LlmToolChoice,
  llmRequestOptionsSchema,
  llmResponseFormatSchema,
  llmToolChoiceSchema,
  mergeLlmRequestOptions,
  parseLlmRequestOptions,
  RESERVED_EXTRA_BODY_KEYS,
  unsupportedRequestOptionError,
} from './llm-request-options.js';
export {
  addLlmUsage,
  findModelPrice,
  llmUsageSchema,
  type ModelPrice,
  type ModelPrices,
  type ModelUsageTotal,
  modelCallOf,
  modelPriceSchema,
  modelPricesSchema,
  totalLlmUsage,
  UsageTally,
  usageCost,
} from './llm-usage.js';
// MCP servers in definitions, and the platform's bridge to them.
export {
  type McpServerConfig,
  type McpServers,
  type McpTool,
  type McpToolRequest,
  type McpToolSource,
  mcpHttpServerSchema,
  mcpServerConfigSchema,
  mcpServerNameSchema,
  mcpServersSchema,
  mcpStdioServerSchema,
} from './mcp.js';
// Messages.
export {
  type ContentPart,
  contentPartSchema,
  InputMessage,
  inputMessageSchema,
  type Message,
  type MessageRole,
  messageReasoning,
  messageRoleSchema,
  messageSchema,
  messageText,
  messageToolCalls,
  type NewMessage,
  newMessageSchema,
  type ReasoningPart,
  type TextPart,
  type ToolCall,
  type ToolCallPart,
  type ToolResultPart,
  toolCallSchema,
} from './message.js';
export {
  checkAfterSeq,
  checkLatestLimit,
  loadLatestMessages,
  loadMessagesAfter,
  messagePageStart,
} from './message-range.js';
// Models.
export {
  LLM_PROVIDER_TYPES,
  LLMSIM_DEFAULT_MODEL,
  type LlmProviderType,
  llmProviderTypeSchema,
  type ModelWithProvider,
  modelWithProviderSchema,
} from './model.js';
export {
  isProviderNotConfigured,
  LLM_ERROR_FAILURE,
  modelFailureText,
  PROVIDER_NOT_CONFIGURED_FAILURE,
} from './model-failure-text.js';
export { PlatformDefinition, type PlatformDefinitionOptions } from './platform.js';
export { readFileIfExists } from './read-file-if-exists.js';
export {
  MAX_USAGE_SESSIONS,
  messageMatchesSearch,
  messageSearchRequestSchema,
  messageSearchText,
  parseMessageSearchRequest,
  readUsageSnapshot,
  searchSessionMessages,
  sumSessionUsage,
} from './session-history.js';
export {
  bindSchedules,
  SCHEDULED_MESSAGE_METADATA_KEY,
  type ScheduledMessageMetadata,
  type ScheduleHost,
  type SessionSchedule,
  type SessionScheduleRequest,
  type SessionSchedules,
  sessionScheduleSchema,
} from './session-schedules.js';
// Stores.
export type {
  BatchingEventBus,
  ClaimEventBus,
  JointClaimWrite,
  JointMessageOptions,
  JointMessageWrite,
  JointStatusOptions,
  JointStatusWrite,
  LoadSessionSetupOptions,
  MemoryEntry,
  MemoryStore,
  MessageEventBus,
  MessageFilter,
  MessagePage,
  MessagePageRequest,
  MessageSearchPage,
  MessageSearchRequest,
  MessageWriteLease,
  MessageWriteOptions,
  RuntimeAgentStore,
  RuntimeBackends,
  RuntimeHarnessStore,
  RuntimeMessageStore,
  RuntimeProviderStore,
  RuntimeSessionStore,
  SessionSetupSnapshot,
  SessionStorageStore,
  SourcedHistory,
  StatusEventBus,
  StoredMessageAndEvents,
  StoreMessageOptions,
  SumUsageOptions,
  TurnLease,
  TurnSnapshot,
  UpdateSessionStatusOptions,
} from './stores.js';
// Capabilities and tools, their registry, and the platform a host brings.
export {
  bindSubagents,
  type SessionSubagents,
  SUBAGENT_LINK_PREFIX,
  type SubagentCallScope,
  type SubagentHost,
  type SubagentRunRequest,
  type SubagentRunResult,
  subagentLinkKey,
} from './subagents.js';
export { isoFromMillis, isoNow } from './time.js';

// ---------------------------------------------------------------------------------------------
// Kits for plugin authors
// ---------------------------------------------------------------------------------------------

// For capability authors.
export {
  defineCapability,
  defineTool,
  isToolError,
  type ToolErrorResult,
  toolError,
  toolSpec,
} from './capability-kit.js';
// For capabilities that run work in a child process: why it ended without an answer.
export {
  exitDescription,
  keepStderrTail,
  ranOutOfHeap,
  STDERR_TAIL_CHARS,
  type StderrStream,
  type StderrTail,
} from './child-exit.js';
// For file-system backends: path rules and the text operations every backend performs alike.
export {
  DEFAULT_MAX_PATH_DEPTH,
  DEFAULT_MAX_PATH_LENGTH,
  globToRegExp,
  normalizeWorkspacePath,
  parentWorkspacePath,
  type WorkspacePathLimits,
  workspaceBaseName,
} from './file-system.js';
export {
  compileGrepPattern,
  pageTextLines,
  pageTextLinesInSlices,
  replaceExactText,
  splitLines,
  type TextPage,
} from './file-text.js';
export { formatZodError } from './format-zod-error.js';
// Bounded search: linear-time globs, grep patterns on a linear-time engine, and the limits.
export {
  compileGlob,
  compileGrepPathPattern,
  DEFAULT_MAX_GLOB_LENGTH,
  type GlobOptions,
  type PathMatcher,
  stripWorkspaceGlobPrefix,
} from './glob-matcher.js';
export {
  DEFAULT_GREP_LIMITS,
  type GrepLimitName,
  type GrepLimitReached,
  type GrepLimits,
  resolveGrepLimits,
} from './grep-limits.js';
export {
  compileGrepMatcher,
  findUnsupportedRegexSyntax,
  type GrepMatcherOptions,
  type LinearRegexEngine,
  type LineMatcher,
} from './grep-pattern.js';
export { GrepScan, type GrepScanOptions, yieldToEventLoop } from './grep-scan.js';

// ---------------------------------------------------------------------------------------------
// Engine: the steps of a turn, as every host runs them
// ---------------------------------------------------------------------------------------------

export {
  type ActAtomInput,
  type ActAtomResult,
  type ActCallOutcome,
  act,
  INTERRUPTED_TOOL_RESULT_TEXT,
} from './engine/act-atom.js';
export { assembleTurnContext } from './engine/assemble-turn-context.js';
export {
  MAX_TOOL_ARGUMENTS_DEPTH,
  MAX_TOOL_ARGUMENTS_VALUES,
  parseToolArgumentsText,
  type ToolArgumentsLimit,
  toolArgumentsTextOverLimit,
} from './engine/bound-tool-call-arguments.js';
export {
  closeOpenToolCalls,
  toolResultIdempotencyKey,
} from './engine/close-open-tool-calls.js';
export {
  type DependencyBlocker,
  detectDependencyBlocker,
} from './engine/detect-dependency-blocker.js';
export {
  emitEvents,
  type JointWriteMethods,
  setValueIfAbsentAndEmit,
  storeMessageAndEmit,
  updateSessionStatusAndEmit,
  type WrapJointWritesOptions,
  wrapJointWrites,
} from './engine/emit-events.js';
export { truncateResult } from './engine/execute-tool-call.js';
export { foldOverlay, type SessionOverlay } from './engine/fold-overlay.js';
// The atoms: input → reason → (act → reason)*.
export { type InputAtomInput, type InputAtomResult, input } from './engine/input-atom.js';
export {
  type ReasonAtomInput,
  type ReasonAtomResult,
  type ReasonTurnEnd,
  reason,
} from './engine/reason-atom.js';
export {
  findOpenToolCalls,
  MISSING_TOOL_RESULT_TEXT,
  type OpenToolCall,
  repairHistory,
} from './engine/repair-history.js';
export {
  DECLARED_TOOL_CAPABILITY_ID,
  HOST_CAPABILITY_ID,
  resolveTurnSetup,
} from './engine/resolve-turn-setup.js';
export {
  activateSessionCapability,
  type CapabilityChangeOptions,
  deactivateSessionCapability,
  sessionCapabilityChanges,
} from './engine/session-capability-changes.js';
export {
  type ExecuteSessionCommandOptions,
  executeSessionCommand,
  listSessionCommands,
  type SessionCommandInfo,
  type SessionCommandResult,
} from './engine/session-commands.js';
export { type ToolCompletion, toolCompletedRequest } from './engine/tool-completed.js';
export {
  definitionWithoutSecrets,
  mcpServersWithoutSecrets,
  modelWithoutSecrets,
  REDACTED_OPTION_VALUE,
  turnContextWithoutSecrets,
} from './engine/turn-context-without-secrets.js';
// What the atoms need, and what they resolve and assemble.
export {
  type AssembledTurnContext,
  type AtomDependencies,
  type BudgetCheckResult,
  type BudgetCheckScope,
  type CapabilityPromptContribution,
  DEFAULT_TURN_LIMITS,
  type ToolRegistryScope,
  type TurnLimits,
  type TurnMcpIssue,
  type TurnMcpTool,
  type TurnSetup,
  type TurnTool,
} from './engine/turn-types.js';
export {
  inputMessageSize,
  type ValidatedTurnInput,
  type ValidateTurnInputRequest,
  validateTurnInput,
} from './engine/validate-turn-input.js';
export {
  type ConsoleLike,
  consoleLogger,
  type EverrunsLogger,
  errorLogFields,
  everrunsLoggerSchema,
  parseLogger,
  silentLogger,
} from './logger.js';
export {
  foldNetworkAccess,
  isUrlAllowed,
  NETWORK_ACCESS_NONE,
} from './network-access.js';
export { redactSecretValues, secretValueForms } from './redact-secret-values.js';
export {
  createSecretRedactor,
  type NamedSecret,
  SECRET_PLACEHOLDER,
  type SecretForms,
  type SecretRedactor,
  secretForms,
} from './secret-redactor.js';
