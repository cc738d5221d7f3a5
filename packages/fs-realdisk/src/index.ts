export { RealDiskFileStore } from './real-disk-file-store.js';
export {
  DEFAULT_MAX_FILE_BYTES,
  DEFAULT_MAX_WALK_ENTRIES,
  type RealDiskFileStoreOptions,
  type RealDiskResolution,
} from './real-disk-file-store-options.js';
export {
  RealDiskSessionFileSystemFactory,
  type RealDiskSessionFileSystemFactoryOptions,
  type RealDiskStoreSettings,
} from './real-disk-session-file-system-factory.js';
