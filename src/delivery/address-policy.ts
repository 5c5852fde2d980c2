/**
 * Which IP addresses outbound webhook deliveries may connect to.
 *
 * Endpoint URLs are chosen by tenants, so without this policy a delivery could
 * be aimed at the platform's own loopback services, the private network or the
 * cloud metadata endpoint (SSRF). Everything that is not publicly routable
 * unicast is refused unless the operator explicitly allows the network.
 */
import ipaddr from 'ipaddr.js';

type IP = ipaddr.IPv4 | ipaddr.IPv6;
type Network = readonly [IP, number];

/** Networks the operator has explicitly allowed despite the default policy. */
export type AllowList = readonly Network[];

interface BlockedRange {
  network: Network;
  /** Completes "<ip> is …". */
  what: string;
}

function ranges(entries: ReadonlyArray<readonly [string, string]>): BlockedRange[] {
  return entries.map(([cidr, what]) => ({ network: ipaddr.parseCIDR(cidr), what }));
}

// Order matters only for the wording of the reason (the first match wins), so
// the specific ranges come before the ranges that contain them.
const BLOCKED_V4 = ranges([
  ['0.0.0.0/8', 'an unspecified address'],
  ['10.0.0.0/8', 'a private address'],
  ['100.64.0.0/10', 'a carrier-grade NAT address'],
  ['127.0.0.0/8', 'a loopback address'],
  // Also where AWS/GCP/Azure serve instance metadata (169.254.169.254).
  ['169.254.0.0/16', 'a link-local address'],
  ['172.16.0.0/12', 'a private address'],
  ['192.0.0.0/24', 'an IETF protocol assignment address'],
  ['192.0.2.0/24', 'a documentation address'],
  ['192.88.99.0/24', 'a deprecated 6to4 relay address'],
  ['192.168.0.0/16', 'a private address'],
  ['198.18.0.0/15', 'a benchmarking address'],
  ['198.51.100.0/24', 'a documentation address'],
  ['203.0.113.0/24', 'a documentation address'],
  ['224.0.0.0/4', 'a multicast address'],
  ['255.255.255.255/32', 'the broadcast address'],
  ['240.0.0.0/4', 'a reserved address'],
]);

const BLOCKED_V6 = ranges([
  ['::/128', 'an unspecified address'],
  ['::1/128', 'a loopback address'],
  ['100::/64', 'a discard-only address'],
  // Teredo tunnels to an arbitrary IPv4 host through a relay; there is no
  // legitimate webhook receiver that needs it.
  ['2001::/32', 'a Teredo address'],
  ['2001:2::/48', 'a benchmarking address'],
  ['2001:db8::/32', 'a documentation address'],
  ['3fff::/20', 'a documentation address'],
  // Includes fd00:ec2::254, the AWS IPv6 instance metadata endpoint.
  ['fc00::/7', 'a unique-local address'],
  ['fe80::/10', 'a link-local address'],
  ['fec0::/10', 'a site-local address'],
  ['ff00::/8', 'a multicast address'],
  // RFC 8215 local-use NAT64 prefix: translates into the operator's own network.
  ['64:ff9b:1::/48', 'a local-use NAT64 address'],
]);

// IPv6 ranges whose packets end up at an IPv4 host; the embedded IPv4 address
// decides. `extract` returns the 4 bytes of the embedded address.
interface EmbeddingRange {
  network: Network;
  /** Completes "<ip> is … for <v4>". */
  what: string;
  extract: (bytes: number[]) => number[];
}

const last32 = (b: number[]): number[] => b.slice(12, 16);
// Deprecated IPv4-compatible ::a.b.c.d (:: and ::1 are matched before this).
const COMPATIBLE: EmbeddingRange = { network: ipaddr.parseCIDR('::/96'), what: 'an IPv4-compatible address', extract: last32 };
const EMBEDDING_V6: EmbeddingRange[] = [
  { network: ipaddr.parseCIDR('::ffff:0:0/96'), what: 'an IPv4-mapped address', extract: last32 },
  { network: ipaddr.parseCIDR('::ffff:0:0:0/96'), what: 'an IPv4-translated address', extract: last32 },
  { network: ipaddr.parseCIDR('64:ff9b::/96'), what: 'a NAT64 address', extract: last32 },
  { network: ipaddr.parseCIDR('2002::/16'), what: 'a 6to4 address', extract: (b) => b.slice(2, 6) },
  COMPATIBLE,
];

function inNetwork(addr: IP, [net, bits]: Network): boolean {
  // ipaddr.js throws when matching across address families.
  return addr.kind() === net.kind() && addr.match(net, bits);
}

function matchRange(addr: IP, list: readonly BlockedRange[]): string | null {
  for (const range of list) if (inNetwork(addr, range.network)) return range.what;
  return null;
}

function embeddedIPv4(addr: ipaddr.IPv6): { v4: ipaddr.IPv4; what: string; compat: boolean } | null {
  const bytes = addr.toByteArray();
  for (const range of EMBEDDING_V6) {
    if (inNetwork(addr, range.network)) return { v4: new ipaddr.IPv4(range.extract(bytes)), what: range.what, compat: range === COMPATIBLE };
  }
  return null;
}

/**
 * Parses CIDR strings ("10.0.0.0/8", "fd00::/8"); a bare address means just
 * that host. Throws on anything else so a typo in configuration fails at start-up
 * instead of silently allowing nothing (or everything).
 */
export function parseNetworks(cidrs: string[]): AllowList {
  return cidrs.map((raw): Network => {
    const text = raw.trim();
    let network: [IP, number];
    try {
      network = text.includes('/')
        ? ipaddr.parseCIDR(text)
        : ((addr) => [addr, addr.kind() === 'ipv4' ? 32 : 128] as [IP, number])(ipaddr.parse(text));
    } catch {
      throw new Error(`invalid network ${JSON.stringify(raw)}: expected CIDR notation such as "10.0.0.0/8" or "fd00::/8"`);
    }
    const [addr, bits] = network;
    // Written as ::ffff:a.b.c.d/104 the operator means the IPv4 network.
    if (addr.kind() === 'ipv6' && bits >= 96 && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
      return [(addr as ipaddr.IPv6).toIPv4Address(), bits - 96];
    }
    return [addr, bits];
  });
}

function isAllowed(addr: IP, allow: AllowList): boolean {
  return allow.some((net) => inNetwork(addr, net));
}

/**
 * Returns null when `ip` may be contacted, otherwise a short reason such as
 * "127.0.0.1 is a loopback address". Unparseable input is refused.
 */
export function blockedReason(ip: string, allow: AllowList): string | null {
  let addr: IP;
  try {
    addr = ipaddr.parse(ip);
  } catch {
    return `${ip} is not a valid IP address`;
  }

  if (addr.kind() === 'ipv4') {
    if (isAllowed(addr, allow)) return null;
    const what = matchRange(addr, BLOCKED_V4);
    return what === null ? null : `${ip} is ${what}`;
  }

  const v6 = addr as ipaddr.IPv6;
  if (isAllowed(v6, allow)) return null;
  // The kernel connects an IPv4-mapped address to the IPv4 host itself, so an
  // allowed IPv4 network covers its mapped spelling too (and only that one:
  // NAT64/6to4 go through a gateway, which is a different host).
  if (v6.isIPv4MappedAddress() && isAllowed(v6.toIPv4Address(), allow)) return null;

  const what = matchRange(v6, BLOCKED_V6);
  if (what !== null) return `${ip} is ${what}`;

  const embedded = embeddedIPv4(v6);
  if (embedded !== null) {
    const v4 = embedded.v4.toString();
    const inner = matchRange(embedded.v4, BLOCKED_V4);
    if (inner !== null) return `${ip} is ${embedded.what} for ${v4}, which is ${inner}`;
    // IPv4-compatible addresses are deprecated and never routed to a public host.
    if (embedded.compat) return `${ip} is a deprecated IPv4-compatible address`;
  }
  return null;
}
