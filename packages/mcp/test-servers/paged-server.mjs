// An MCP server (the SDK's low-level Server) whose tools/list answers in three pages of two
// tools, for the pagination test. Run with `node` to serve it over stdio.
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';

const PAGES = [
  ['p1', 'p2'],
  ['p3', 'p4'],
  ['p5', 'p6'],
];
const server = new Server({ name: 'paged', version: '1.0.0' }, { capabilities: { tools: {} } });
server.setRequestHandler(ListToolsRequestSchema, async (request) => {
  const page = Number(request.params?.cursor ?? 0);
  return {
    tools: (PAGES[page] ?? []).map((name) => ({
      name,
      description: `Tool ${name}.`,
      inputSchema: { type: 'object', properties: {} },
    })),
    ...(page + 1 < PAGES.length ? { nextCursor: String(page + 1) } : {}),
  };
});
server.setRequestHandler(CallToolRequestSchema, async (request) => ({
  content: [{ type: 'text', text: `called ${request.params.name}` }],
}));
await server.connect(new StdioServerTransport());
