export {
  hostMatches,
  isPrivateAddress,
  NetworkRefusal,
  PRIVATE_RANGES,
  type ResolvedAddress,
  resolveCheckedAddresses,
} from './network-guard.js';
export {
  WEB_FETCH_CAPABILITY_ID,
  type WebFetchConfig,
  type WebFetchResult,
  webFetchCapability,
  webFetchConfigSchema,
} from './web-fetch-capability.js';
