import type { NetworkAccessList } from './domain.js';

/**
 * The pattern an `allowed` list holds when two layers' allow-lists have nothing in common: it
 * matches no URL, so the folded list denies everything instead of reading as "no restriction".
 */
export const NETWORK_ACCESS_NONE = '<none>';

/**
 * Folds an inner layer's network access list onto the outer one (harness → agent → session):
 * `blocked` lists add up; `allowed` is inherited when the inner layer sets none, taken from the
 * inner layer when the outer sets none, and otherwise narrowed to the inner patterns an outer
 * pattern covers (none left denies everything, see {@link NETWORK_ACCESS_NONE}).
 */
export function foldNetworkAccess(
  outer: NetworkAccessList | undefined,
  inner: NetworkAccessList | undefined,
): NetworkAccessList | undefined {
  if (!inner) return outer ? copy(outer) : undefined;
  if (!outer) return copy(inner);
  const blocked = [...outer.blocked];
  for (const pattern of inner.blocked) if (!blocked.includes(pattern)) blocked.push(pattern);
  let allowed: string[];
  if (inner.allowed.length === 0) allowed = [...outer.allowed];
  else if (outer.allowed.length === 0) allowed = [...inner.allowed];
  else {
    allowed = inner.allowed.filter((pattern) =>
      outer.allowed.some((parent) => patternWithin(pattern, parent)),
    );
    if (allowed.length === 0) allowed = [NETWORK_ACCESS_NONE];
  }
  return { allowed, blocked };
}

/**
 * Whether a list lets a tool reach `url`: a `blocked` match denies; an empty `allowed` allows
 * the rest; otherwise an `allowed` pattern must match. Only http(s) URLs with a host can match;
 * `undefined` (no list) allows everything.
 */
export function isUrlAllowed(list: NetworkAccessList | undefined, url: string): boolean {
  if (!list) return true;
  const parsed = parseHttpUrl(url);
  if (list.blocked.length > 0 && (!parsed || matchesAny(parsed, list.blocked))) return false;
  if (list.allowed.length === 0) return true;
  return parsed !== undefined && matchesAny(parsed, list.allowed);
}

function copy(list: NetworkAccessList): NetworkAccessList {
  return { allowed: [...list.allowed], blocked: [...list.blocked] };
}

function parseHttpUrl(url: string): URL | undefined {
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return undefined;
    return parsed.hostname ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function isUrlPattern(pattern: string): boolean {
  return /^https?:\/\//i.test(pattern);
}

function matchesAny(url: URL, patterns: readonly string[]): boolean {
  return patterns.some((pattern) => {
    if (isUrlPattern(pattern)) {
      const prefix = parseHttpUrl(pattern);
      return prefix !== undefined && url.href.startsWith(prefix.href);
    }
    return hostMatches(pattern, url.hostname.toLowerCase());
  });
}

function hostMatches(pattern: string, host: string): boolean {
  const lower = pattern.toLowerCase();
  if (lower.startsWith('*.')) {
    const suffix = lower.slice(2);
    return host === suffix || host.endsWith(`.${suffix}`);
  }
  return host === lower;
}

/** Whether everything `child` allows is allowed by `parent` (URLs compared normalised). */
function patternWithin(child: string, parent: string): boolean {
  if (isUrlPattern(parent)) {
    const parentUrl = parseHttpUrl(parent);
    const childUrl = isUrlPattern(child) ? parseHttpUrl(child) : undefined;
    if (!parentUrl || !childUrl) return false;
    return childUrl.href.startsWith(parentUrl.href);
  }
  if (isUrlPattern(child)) {
    const childUrl = parseHttpUrl(child);
    return childUrl !== undefined && hostMatches(parent, childUrl.hostname.toLowerCase());
  }
  if (parent.startsWith('*.')) {
    const childHost = child.startsWith('*.') ? child.slice(2) : child;
    return hostMatches(parent, childHost.toLowerCase());
  }
  // An exact host never covers a wildcard of its subdomains.
  return child.toLowerCase() === parent.toLowerCase();
}
