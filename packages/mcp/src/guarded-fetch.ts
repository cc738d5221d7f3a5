/** The fetch signature the SDK's HTTP transports take. */
export type FetchFunction = (url: string | URL, init?: RequestInit) => Promise<Response>;

/**
 * A fetch that never follows a redirect by itself (`redirect: 'manual'` on every request), so a
 * redirect reaches the SDK's transports, which follow it only within the same origin
 * (`redirectPolicy: 'same-origin'`) and fail otherwise. Requests that open a server-sent event
 * stream go through it too, so no request of an MCP connection is ever redirected to another
 * host.
 */
export function noRedirectFetch(base: FetchFunction = fetch): FetchFunction {
  return (url, init) => base(url, { ...init, redirect: 'manual' });
}

/** Checks an MCP server URL: only `http:` and `https:`, no user name or password in it. */
export function checkServerUrl(raw: string): URL {
  const url = new URL(raw);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`an MCP server URL must be http: or https:, got ${url.protocol}`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new Error('an MCP server URL must not carry a user name or password (use headers)');
  }
  return url;
}
