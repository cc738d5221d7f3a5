export {
  MAX_MEMORY_CONTENT_CHARS,
  MEMORY_CAPABILITY_ID,
  type MemoryCapabilityConfig,
  type MemoryView,
  memoryCapability,
  memoryCapabilityConfigSchema,
  memoryScope,
} from './memory-capability.js';
