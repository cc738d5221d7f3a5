// The redactor lives in core (the tool runner uses it for every tool); re-exported for callers
// that imported it from here.
export {
  createSecretRedactor,
  SECRET_PLACEHOLDER,
  type SecretForms,
  type SecretRedactor,
  secretForms,
} from '@everruns-ts/core';
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
  WEB_FETCH_CAPABILITY_ID,
  type WebFetchConfig,
  type WebFetchResult,
  webFetchCapability,
  webFetchConfigSchema,
} from './web-fetch-capability.js';
