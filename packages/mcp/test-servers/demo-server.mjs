// A small MCP server built with the official SDK's server side, for this package's tests and its
// README: arithmetic, every kind of result content, an error, a tool that hangs until cancelled,
// one that crashes its process, one that reports its environment and one that adds a tool.
// `createDemoServer()` returns the McpServer; run this file with `node` to serve it over stdio.
import { pathToFileURL } from 'node:url';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';

/** A 1x1 PNG (67 bytes), for the image result. */
const PIXEL =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAACklEQVR4nGMAAQAABQABDQottAAAAABJRU5ErkJggg==';

/**
 * The demo server. `name` tells it apart in tests; `connection` is reported by `whoami`.
 * @param {{ name?: string, connection?: number }} [options]
 */
export function createDemoServer(options = {}) {
  const server = new McpServer({ name: options.name ?? 'demo', version: '1.0.0' });
  let added = 0;

  server.registerTool(
    'add',
    {
      description: 'Adds two numbers.',
      inputSchema: { a: z.number(), b: z.number() },
      outputSchema: { sum: z.number() },
      annotations: { idempotentHint: true, readOnlyHint: true },
    },
    async ({ a, b }) => ({
      content: [{ type: 'text', text: JSON.stringify({ sum: a + b }) }],
      structuredContent: { sum: a + b },
    }),
  );

  server.registerTool(
    'divide',
    {
      description: 'Divides a by b.',
      inputSchema: { a: z.number(), b: z.number() },
    },
    async ({ a, b }) =>
      b === 0
        ? { isError: true, content: [{ type: 'text', text: 'division by zero' }] }
        : { content: [{ type: 'text', text: String(a / b) }] },
  );

  server.registerTool(
    'describe',
    {
      description: 'Returns text, an image, a resource link and an embedded resource.',
      inputSchema: { subject: z.string() },
    },
    async ({ subject }) => ({
      content: [
        { type: 'text', text: `about ${subject}` },
        { type: 'image', data: PIXEL, mimeType: 'image/png' },
        { type: 'resource_link', uri: 'file:///notes/readme.md', name: 'readme' },
        {
          type: 'resource',
          resource: { uri: 'memo://today', mimeType: 'text/plain', text: 'buy milk' },
        },
      ],
      structuredContent: { subject, parts: 4 },
    }),
  );

  server.registerTool(
    'hang',
    { description: 'Never answers; stops when the client cancels.' },
    async (extra) => {
      await new Promise((resolve) => {
        if (extra.signal.aborted) resolve(undefined);
        extra.signal.addEventListener('abort', resolve, { once: true });
      });
      return { content: [{ type: 'text', text: 'cancelled' }] };
    },
  );

  server.registerTool(
    'crash',
    { description: 'Ends the server process in the middle of the call.' },
    async () => {
      setImmediate(() => process.exit(3));
      await new Promise(() => {});
      return { content: [] };
    },
  );

  server.registerTool(
    'env',
    { description: 'Reports the environment of the server process.' },
    async () => ({ content: [{ type: 'text', text: JSON.stringify(process.env) }] }),
  );

  server.registerTool(
    'whoami',
    { description: 'Reports the server process id and connection number.' },
    async () => ({
      content: [
        {
          type: 'text',
          text: JSON.stringify({ pid: process.pid, connection: options.connection ?? 0 }),
        },
      ],
    }),
  );

  server.registerTool(
    'grow',
    { description: 'Adds a tool named extra_<n> (the server then says its tool list changed).' },
    async () => {
      added++;
      const name = `extra_${added}`;
      server.registerTool(name, { description: `Added tool ${added}.` }, async () => ({
        content: [{ type: 'text', text: name }],
      }));
      return { content: [{ type: 'text', text: `added ${name}` }] };
    },
  );

  server.registerTool(
    'dotted.name',
    { description: 'A tool whose name needs cleaning for model providers.' },
    async () => ({ content: [{ type: 'text', text: 'dotted' }] }),
  );

  return server;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await createDemoServer({ name: process.env.DEMO_SERVER_NAME ?? 'demo' }).connect(
    new StdioServerTransport(),
  );
}
