// The example's MCP server, built with the official SDK's server side and served over stdio:
// unit conversions, and a tool that says which variables the host let through to it.
// Run it alone with `node src/units-server.mjs` (it then waits for a client on stdin).
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';

const server = new McpServer({ name: 'units', version: '1.0.0' });

server.registerTool(
  'celsius_to_fahrenheit',
  {
    description: 'Converts a temperature from degrees Celsius to degrees Fahrenheit.',
    inputSchema: { celsius: z.number() },
    annotations: { idempotentHint: true, readOnlyHint: true },
  },
  async ({ celsius }) => {
    const fahrenheit = Math.round((celsius * 9) / 5 + 32);
    return { content: [{ type: 'text', text: `${celsius} °C is ${fahrenheit} °F` }] };
  },
);

server.registerTool(
  'kilometres_to_miles',
  {
    description: 'Converts a distance from kilometres to miles (two decimals).',
    inputSchema: { kilometres: z.number().nonnegative() },
    annotations: { idempotentHint: true, readOnlyHint: true },
  },
  async ({ kilometres }) => ({
    content: [
      { type: 'text', text: `${kilometres} km is ${(kilometres * 0.621371).toFixed(2)} mi` },
    ],
  }),
);

server.registerTool(
  'environment',
  {
    description: 'Lists the names of the environment variables this server was started with.',
    inputSchema: {},
  },
  async () => ({
    content: [
      {
        type: 'text',
        text: Object.keys(process.env)
          .filter((name) => name.startsWith('UNITS_') || name === 'HOST_ONLY_SECRET')
          .sort()
          .join(', '),
      },
    ],
  }),
);

await server.connect(new StdioServerTransport());
