import type { McpServerConfig } from '@everruns-ts/core';
import { parseStored, type StoreContext, stringifyForStore } from './store-context.js';
import { textDigest } from './text-codec.js';

/**
 * The env and header values of a definition's MCP servers as stored: one sealed JSON object
 * `{ [server]: { env?, headers? } }`, the key id and the sealed bytes in base64. The document's
 * `mcpServers` are stored without `env` and `headers`.
 */
interface SealedMcpSecrets {
  keyId: string;
  sealed: string;
}

/** The member of a stored document that holds {@link SealedMcpSecrets}. */
const SEALED_MEMBER = 'mcpSecretsSealed';

type WithMcpServers = { id: string; mcpServers?: Record<string, McpServerConfig> };
type SecretValues = Record<
  string,
  { env?: Record<string, string>; headers?: Record<string, string> }
>;

/**
 * The document as it is written: the `env` of each stdio MCP server and the `headers` of each
 * HTTP one taken out and sealed together with the store's cipher, bound to the document's kind
 * and id (a sealed value copied into another document fails to open). A document without such
 * values is returned as it is.
 */
export function sealMcpSecrets<T extends WithMcpServers>(
  context: StoreContext,
  kind: string,
  document: T,
): T {
  const servers = document.mcpServers;
  if (!servers) return document;
  const secrets: SecretValues = {};
  const stored: Record<string, McpServerConfig> = {};
  let any = false;
  for (const [name, server] of Object.entries(servers)) {
    let kept: McpServerConfig = server;
    if (server.transport === 'stdio' && server.env !== undefined) {
      const { env, ...rest } = server;
      kept = rest;
      define(secrets, name, { env });
      any = true;
    } else if (server.transport === 'http' && server.headers !== undefined) {
      const { headers, ...rest } = server;
      kept = rest;
      define(secrets, name, { headers });
      any = true;
    }
    define(stored, name, kept);
  }
  if (!any) return document;
  const sealed = context.cipher.seal(
    stringifyForStore(secrets, `${kind} MCP secrets`),
    sealContext(kind, document.id),
  );
  const sealedMember: SealedMcpSecrets = {
    keyId: sealed.keyId,
    sealed: sealed.sealed.toString('base64'),
  };
  return { ...document, mcpServers: stored, [SEALED_MEMBER]: sealedMember };
}

/**
 * The document as read: the sealed env and header values opened and put back into its MCP
 * servers. Throws `SECRET_KEY_MISMATCH` when the configured keys cannot open them.
 */
export function openMcpSecrets<T extends WithMcpServers>(
  context: StoreContext,
  kind: string,
  document: T,
): T {
  const holder = document as T & { [SEALED_MEMBER]?: SealedMcpSecrets };
  const sealed = holder[SEALED_MEMBER];
  if (sealed === undefined) return document;
  const { [SEALED_MEMBER]: _sealed, ...rest } = holder;
  const plain = context.cipher.open(
    { keyId: sealed.keyId, sealed: Buffer.from(sealed.sealed, 'base64') },
    sealContext(kind, document.id),
    `The MCP server secrets of ${kind} ${document.id}`,
  );
  const secrets = parseStored<SecretValues>(plain, `${kind} MCP secrets`);
  const servers: Record<string, McpServerConfig> = {};
  const storedServers: Record<string, McpServerConfig> = document.mcpServers ?? {};
  for (const [name, server] of Object.entries(storedServers)) {
    const values = Object.hasOwn(secrets, name) ? secrets[name] : undefined;
    define(servers, name, values ? ({ ...server, ...values } as McpServerConfig) : server);
  }
  return { ...rest, mcpServers: servers } as unknown as T;
}

function sealContext(kind: string, id: string): Buffer {
  return Buffer.concat([Buffer.from(`mcp\u0000${kind}\u0000`, 'utf8'), textDigest(id)]);
}

/** Sets an own property, whatever its name (a server may be called `__proto__`). */
function define<V>(target: Record<string, V>, key: string, value: NoInfer<V>): void {
  Object.defineProperty(target, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}
