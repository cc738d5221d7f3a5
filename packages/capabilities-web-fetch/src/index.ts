export {
  type ConvertedHtml,
  type ConvertHtmlOptions,
  convertHtml,
  HtmlConversionError,
} from './convert-html.js';
export {
  limitHtmlNesting,
  limitHtmlNestingChunks,
  limitHtmlNestingInSlices,
} from './limit-html-nesting.js';
export {
  hostMatches,
  isPrivateAddress,
  NetworkRefusal,
  PRIVATE_RANGES,
  type ResolvedAddress,
  resolveCheckedAddresses,
} from './network-guard.js';
export {
  createSecretRedactor,
  SECRET_PLACEHOLDER,
  type SecretForms,
  type SecretRedactor,
  secretForms,
} from './secret-redaction.js';
export {
  WEB_FETCH_CAPABILITY_ID,
  type WebFetchConfig,
  type WebFetchResult,
  webFetchCapability,
  webFetchConfigSchema,
} from './web-fetch-capability.js';
