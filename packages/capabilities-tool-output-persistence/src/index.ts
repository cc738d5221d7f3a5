export {
  DEFAULT_HEAD_CHARS,
  DEFAULT_TAIL_CHARS,
  DEFAULT_THRESHOLD_CHARS,
  TOOL_OUTPUT_PERSISTENCE_CAPABILITY_ID,
  TOOL_OUTPUTS_DIRECTORY,
  type ToolOutputPersistenceConfig,
  type ToolOutputPreviewInput,
  toolOutputPath,
  toolOutputPersistenceCapability,
  toolOutputPersistenceConfigSchema,
  toolOutputPreview,
} from './tool-output-persistence-capability.js';
