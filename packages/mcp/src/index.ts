export { checkServerUrl, type FetchFunction, noRedirectFetch } from './guarded-fetch.js';
export { boundText, type CallToolResultLike, mapToolResult } from './map-result.js';
export {
  DEFAULT_MCP_CONNECT_TIMEOUT_MS,
  DEFAULT_MCP_MAX_DESCRIPTION_CHARS,
  DEFAULT_MCP_MAX_RESULT_CHARS,
  DEFAULT_MCP_TIMEOUT_MS,
  McpClientPool,
  type McpClientPoolOptions,
  mcpClientPoolOptionsSchema,
  mcpConnectionKey,
} from './mcp-client-pool.js';
export { MAX_TOOL_NAME_LENGTH, namespacedToolName, TOOL_NAME_PATTERN } from './tool-names.js';
