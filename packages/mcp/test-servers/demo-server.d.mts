import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';

/** The demo server of demo-server.mjs. */
export declare function createDemoServer(options?: {
  name?: string;
  connection?: number;
}): McpServer;
