export {
  CAPABILITY_REQUESTS_CAPABILITY_ID,
  type CapabilityRequestResult,
  type CapabilityRequestsConfig,
  capabilityRequestsCapability,
  capabilityRequestsConfigSchema,
} from './capability-requests-capability.js';
export {
  redactSecretValues,
  resolveSecretReferences,
  SECRET_REFERENCE_PREFIX,
  secretReference,
  secretReferencesIn,
  secretValueForms,
} from './secret-references.js';
export {
  SESSION_CAPABILITY_ID,
  type SessionInfo,
  sessionCapability,
} from './session-capability.js';
export {
  MAX_STORAGE_KEY_CHARS,
  RESERVED_STORAGE_KEY_PREFIX,
  SESSION_STORAGE_CAPABILITY_ID,
  sessionStorageCapability,
} from './session-storage-capability.js';
