import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/**
 * Address ranges refused unless private networks are allowed: loopback, the RFC 1918 private
 * ranges, link-local (cloud metadata lives there), "this network", shared CGNAT space, and their
 * IPv6 counterparts (loopback, unspecified, unique-local `fc00::/7`, link-local `fe80::/10`).
 */
export const PRIVATE_RANGES: readonly string[] = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '::/128',
  '::1/128',
  'fc00::/7',
  'fe80::/10',
];

const privateRanges = new BlockList();
for (const range of PRIVATE_RANGES) {
  const [network, prefix] = range.split('/') as [string, string];
  privateRanges.addSubnet(network, Number(prefix), network.includes(':') ? 'ipv6' : 'ipv4');
}

/** Strips IPv6 brackets and unwraps IPv4-mapped IPv6 (`::ffff:127.0.0.1` → `127.0.0.1`). */
function canonicalAddress(address: string): string {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(bare);
  if (mapped) return mapped[1] as string;
  const mappedHex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(bare);
  if (mappedHex) {
    const high = Number.parseInt(mappedHex[1] as string, 16);
    const low = Number.parseInt(mappedHex[2] as string, 16);
    return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  }
  return bare;
}

/** True when `address` (an IPv4 or IPv6 literal) lies in one of the {@link PRIVATE_RANGES}. */
export function isPrivateAddress(address: string): boolean {
  const canonical = canonicalAddress(address);
  const family = isIP(canonical);
  if (family === 0) throw new TypeError(`not an IP address: ${address}`);
  return privateRanges.check(canonical, family === 6 ? 'ipv6' : 'ipv4');
}

/** A resolved address with its family (4 or 6). */
export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Why a host may not be fetched. */
export class NetworkRefusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NetworkRefusal';
  }
}

/**
 * Resolves `hostname` (or takes it as an IP literal) and returns every address, after checking
 * each one: when private networks are not allowed, a single private address refuses the whole
 * host (a name that resolves to both a public and a private address is refused). Throws
 * {@link NetworkRefusal}.
 */
export async function resolveCheckedAddresses(
  hostname: string,
  allowPrivateNetwork: boolean,
): Promise<ResolvedAddress[]> {
  const literal = canonicalAddress(hostname);
  let addresses: ResolvedAddress[];
  if (isIP(literal) !== 0) {
    addresses = [{ address: literal, family: isIP(literal) as 4 | 6 }];
  } else {
    try {
      const found = await dnsLookup(hostname, { all: true, verbatim: true });
      addresses = found.map((entry) => ({
        address: canonicalAddress(entry.address),
        family: (isIP(canonicalAddress(entry.address)) || entry.family) as 4 | 6,
      }));
    } catch (error) {
      throw new NetworkRefusal(
        `the host ${hostname} could not be resolved (${(error as NodeJS.ErrnoException).code ?? 'DNS error'})`,
      );
    }
    if (addresses.length === 0) throw new NetworkRefusal(`the host ${hostname} has no address`);
  }
  if (!allowPrivateNetwork) {
    const blocked = addresses.find((entry) => isPrivateAddress(entry.address));
    if (blocked) {
      throw new NetworkRefusal(
        `${hostname} resolves to the private address ${blocked.address}; private networks are not allowed`,
      );
    }
  }
  return addresses;
}

/** True when `hostname` matches a host pattern: an exact name, or `*.example.com` for its subdomains. */
export function hostMatches(hostname: string, pattern: string): boolean {
  const host = hostname.toLowerCase().replace(/\.$/, '');
  const wanted = pattern.toLowerCase().replace(/\.$/, '');
  if (wanted.startsWith('*.')) return host.endsWith(wanted.slice(1));
  return host === wanted;
}
