import type { ToolSpec } from '../capability.js';
import { toolSpec } from '../capability-kit.js';
import { EverrunsError, errorMessage } from '../errors.js';
import type { McpServerConfig, McpToolSource } from '../mcp.js';
import { createSecretRedactor } from '../secret-redactor.js';
import type { TurnMcpIssue, TurnMcpTool, TurnTool } from './turn-types.js';

/** What {@link addMcpTools} adds to a turn's tools. */
export interface McpToolsOutcome {
  mcpTools: TurnMcpTool[];
  mcpIssues: TurnMcpIssue[];
}

/** Values shorter than this are not redacted from messages (they would match by chance). */
const MIN_REDACTED_VALUE_CHARS = 4;

/**
 * Asks `source` for the tools of the enabled `servers` and adds them to `tools` and `toolSpecs`
 * (capability id `mcp:<server>`), after the capability tools. A tool whose name is already taken
 * (by a capability tool or an earlier MCP tool) is left out with a `name_clash` issue, so the
 * capability tool always wins; a tool outside the server's `tools` allow-list or the agent's
 * `allow` list is left out silently; a server the source could not reach becomes an
 * `unreachable` issue and the turn goes on. Rethrows only when `signal` fired.
 */
export async function addMcpTools(
  source: McpToolSource,
  request: {
    sessionId: string;
    servers: Readonly<Record<string, McpServerConfig>>;
    signal?: AbortSignal | undefined;
    allow: ReadonlySet<string> | null;
  },
  tools: Map<string, TurnTool>,
  toolSpecs: ToolSpec[],
): Promise<McpToolsOutcome> {
  const { servers, signal } = request;
  const mcpTools: TurnMcpTool[] = [];
  const mcpIssues: TurnMcpIssue[] = [];
  let listed: Awaited<ReturnType<McpToolSource['listTools']>>;
  try {
    listed = await source.listTools({
      sessionId: request.sessionId,
      servers,
      ...(signal ? { signal } : {}),
    });
  } catch (error) {
    if (signal?.aborted || EverrunsError.hasCode(error, 'ABORTED')) throw error;
    // A source that fails as a whole leaves every server out; the turn goes on without them.
    listed = {
      tools: [],
      errors: Object.keys(servers).map((server) => ({ server, message: errorMessage(error) })),
    };
  }
  for (const { server, message } of listed.errors) {
    mcpIssues.push({
      server,
      kind: 'unreachable',
      message: redactServerSecrets(message, servers[server]),
    });
  }
  for (const { server, serverToolName, tool } of listed.tools) {
    const config = Object.hasOwn(servers, server) ? servers[server] : undefined;
    if (!config) continue;
    if (config.tools && !config.tools.includes(serverToolName)) continue;
    if (request.allow && !request.allow.has(tool.name)) continue;
    if (tools.has(tool.name)) {
      const owner = tools.get(tool.name)?.capabilityId;
      mcpIssues.push({
        server,
        kind: 'name_clash',
        toolName: tool.name,
        serverToolName,
        message: `Tool ${tool.name} of MCP server ${server} was left out: the name is taken by ${owner?.startsWith('mcp:') ? `MCP server ${owner.slice(4)}` : `capability ${owner}`}`,
      });
      continue;
    }
    tools.set(tool.name, {
      tool,
      capabilityId: `mcp:${server}`,
      config: undefined,
      mcp: { server, serverToolName },
    });
    toolSpecs.push(toolSpec(tool));
    mcpTools.push({ name: tool.name, server, serverToolName });
  }
  return { mcpTools, mcpIssues };
}

/** `message` without the values of the server's `env` or `headers`. */
function redactServerSecrets(message: string, server: McpServerConfig | undefined): string {
  if (!server) return message;
  const values = Object.values(
    (server.transport === 'stdio' ? server.env : server.headers) ?? {},
  ).filter((value) => value.length >= MIN_REDACTED_VALUE_CHARS);
  if (values.length === 0) return message;
  return createSecretRedactor(values.map((value) => ({ value }))).redact(message);
}
