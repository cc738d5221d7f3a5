export {
  type DirectoryEntry,
  FILE_SYSTEM_CAPABILITY_ID,
  type FileSystemCapabilityConfig,
  fileSystemCapability,
  fileSystemCapabilityConfigSchema,
  type GrepFilesResult,
  type ReadFileResult,
} from './file-system-capability.js';
export { re2jsRegexEngine } from './re2js-regex-engine.js';
