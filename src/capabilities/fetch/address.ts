/**
 * Which IP addresses the host may connect to for a sandbox: public unicast ones, and those inside
 * the user's allowPrivate ranges. It judges the address the socket will really use (never a name),
 * so callers check each resolved address and then connect to exactly that address.
 */
import { isIP, isIPv6 } from "node:net";
import ipaddr from "ipaddr.js";

export type AddressVerdict = { ok: true; rule: string } | { ok: false; rule: string };

type Address = ipaddr.IPv4 | ipaddr.IPv6;
type Range = [Address, number];

/** ipaddr.js range names, and what a refusal says; any other non-unicast name is "reserved". */
const REFUSALS = new Map<string, AddressVerdict>(([
  ["unspecified", "unspecified address"],
  ["loopback", "loopback address"],
  ["private", "private address"],
  ["linkLocal", "link-local address"],
  ["carrierGradeNat", "carrier-grade NAT address"],
  ["uniqueLocal", "unique-local address"],
  ["multicast", "multicast address"],
  ["broadcast", "broadcast address"],
  ["rfc6052", "IPv6 transition address (NAT64)"],
  ["6to4", "IPv6 transition address (6to4)"],
  ["teredo", "IPv6 transition address (Teredo)"],
  // ::ffff:0:a.b.c.d (SIIT) is not special to the kernel: it is routed as IPv6, towards whatever
  // translator the network has. We cannot know where that ends, so it is refused like NAT64.
  ["rfc6145", "IPv6 transition address (IPv4-translated)"],
] as const).map(([range, rule]) => [range, refused(rule)]));

/**
 * Endpoints that hand out the machine's credentials. A range like "169.254.0.0/16" or
 * "fd00::/8" is allowed for some local service, not for these; only an entry naming the exact
 * address reaches them. 168.63.129.16 is publicly routable, but inside Azure it is the WireServer.
 */
const METADATA = new Set(
  [
    "169.254.169.254", // AWS, GCP, Azure, OCI, DigitalOcean… instance metadata
    "fd00:ec2::254", // AWS instance metadata over IPv6
    "168.63.129.16", // Azure WireServer / platform DNS
    "100.100.100.200", // Alibaba Cloud instance metadata
    "169.254.170.2", // AWS ECS task metadata and task-role credentials
    "169.254.170.23", // AWS EKS Pod Identity agent (pod-role credentials), IPv4 …
    "fd00:ec2::23", // … and IPv6
  ].map((text) => ipaddr.parse(text).toNormalizedString()),
);

const GLOBAL_UNICAST = ipaddr.parseCIDR("2000::/3");
const IPV4_COMPATIBLE = ipaddr.parseCIDR("::/96");
const PUBLIC = allowed("public address");
const INVALID = refused("invalid address");
const METADATA_REFUSED = refused("cloud metadata address");
const RESERVED = refused("reserved address");
const IPV4_COMPATIBLE_REFUSED = refused("IPv6 transition address (IPv4-compatible)");

/** Decides whether the host may connect to an IP address for a sandbox. */
export class AddressPolicy {
  readonly #v4: { range: Range; verdict: AddressVerdict }[] = [];
  readonly #v6: { range: Range; verdict: AddressVerdict }[] = [];
  /** Metadata addresses (normalized) that an entry names exactly, with that entry's verdict. */
  readonly #namedMetadata = new Map<string, AddressVerdict>();

  /** `what` names the list in error messages ("net.allowPrivate"). */
  constructor(allowPrivate: readonly string[], what = "allowPrivate") {
    allowPrivate.forEach((entry, index) => {
      const range = parseEntry(entry);
      if (typeof range === "string") {
        const shown = typeof entry === "string" ? JSON.stringify(entry) : String(entry);
        throw new TypeError(`${what}[${index}]: ${shown} is not an IP address or CIDR range (${range})`);
      }
      const verdict = allowed(`allowPrivate ${entry}`);
      (range[0].kind() === "ipv4" ? this.#v4 : this.#v6).push({ range, verdict });
      const key = range[0].toNormalizedString();
      if (range[1] === (range[0].kind() === "ipv4" ? 32 : 128) && METADATA.has(key) && !this.#namedMetadata.has(key)) {
        this.#namedMetadata.set(key, verdict);
      }
    });
  }

  /** `address`: an IP literal as a resolver or a URL's hostname gives it ("[::1]", "fe80::1%eth0"). */
  check(address: string): AddressVerdict {
    const addr = parseAddress(address);
    if (addr === undefined) return INVALID;
    const key = addr.toNormalizedString();
    if (METADATA.has(key)) return this.#namedMetadata.get(key) ?? METADATA_REFUSED;
    const refusal = refusalOf(addr);
    if (refusal === undefined) return PUBLIC;
    for (const { range, verdict } of addr.kind() === "ipv4" ? this.#v4 : this.#v6) {
      if (addr.match(range)) return verdict;
    }
    return refusal;
  }
}

/** The bare IP if a WHATWG URL hostname ("127.0.0.1", "[::1]") is an IP literal, else undefined. */
export function ipLiteral(hostname: string): string | undefined {
  if (hostname.startsWith("[") && hostname.endsWith("]")) {
    const inner = hostname.slice(1, -1);
    return isIPv6(inner) ? inner : undefined;
  }
  return isIP(hostname) === 0 ? undefined : hostname;
}

/** Why an address is refused (unless allowPrivate says otherwise), or undefined for a public one. */
function refusalOf(addr: Address): AddressVerdict | undefined {
  const range = addr.range();
  if (range !== "unicast") return REFUSALS.get(range) ?? RESERVED;
  if (addr instanceof ipaddr.IPv4 || addr.match(GLOBAL_UNICAST)) return undefined;
  // :: and ::1 were named above; the rest of ::/96 is the deprecated IPv4-compatible form.
  return addr.match(IPV4_COMPATIBLE) ? IPV4_COMPATIBLE_REFUSED : RESERVED;
}

function allowed(rule: string): AddressVerdict {
  return Object.freeze({ ok: true, rule });
}

function refused(rule: string): AddressVerdict {
  return Object.freeze({ ok: false, rule });
}

/**
 * Node's own parser (the one the socket uses) must accept the text first: it takes IPv4 only as
 * four plain decimals, so ipaddr.js's octal and hex readings ("010.0.0.1") never come into play.
 * IPv4-mapped addresses are judged as the IPv4 address the socket reaches.
 */
function parseAddress(text: string): Address | undefined {
  if (typeof text !== "string") return undefined;
  const bare = text.startsWith("[") ? ipLiteral(text) : text;
  if (bare === undefined) return undefined;
  const family = isIP(bare);
  try {
    if (family === 4) return ipaddr.IPv4.parse(bare);
    if (family !== 6) return undefined;
    const zone = bare.indexOf("%"); // picks the interface, not the kind of address
    const v6 = parseIPv6(zone < 0 ? bare : bare.slice(0, zone));
    return v6.isIPv4MappedAddress() ? v6.toIPv4Address() : v6;
  } catch {
    return undefined;
  }
}

/**
 * ipaddr.js reads "::a.b.c.d" (IPv4-compatible, ::/96) as "::ffff:a.b.c.d" (IPv4-mapped), so
 * "::8.8.8.8" would pass as public; "0::a.b.c.d" is the same address and parses as what it is.
 */
function parseIPv6(text: string): ipaddr.IPv6 {
  return ipaddr.IPv6.parse(text.startsWith("::") ? `0${text}` : text);
}

/** An allowPrivate entry as a range, or why it is not one. */
function parseEntry(entry: unknown): Range | string {
  if (typeof entry !== "string") return "expected a string";
  const slash = entry.indexOf("/");
  const text = slash < 0 ? entry : entry.slice(0, slash);
  const bare = text.startsWith("[") ? ipLiteral(text) ?? "" : text;
  const family = isIP(bare);
  if (family === 0) return "not a valid IP address";
  if (bare.includes("%")) return "zone ids are not allowed";
  const bits = family === 4 ? 32 : 128;
  const prefix = slash < 0 ? bits : /^\d{1,3}$/.test(entry.slice(slash + 1)) ? Number(entry.slice(slash + 1)) : NaN;
  if (!(prefix <= bits)) return `the prefix length must be 0-${bits}`;
  const addr = family === 4 ? ipaddr.IPv4.parse(bare) : parseIPv6(bare);
  const network = (family === 4 ? ipaddr.IPv4 : ipaddr.IPv6).networkAddressFromCIDR(`${addr.toString()}/${prefix}`);
  if (network.toNormalizedString() !== addr.toNormalizedString()) {
    return `bits are set past the /${prefix} prefix; did you mean "${network.toString()}/${prefix}"?`;
  }
  // Mapped addresses are judged as IPv4, so an entry inside ::ffff:0:0/96 is kept as IPv4 too.
  if (addr instanceof ipaddr.IPv6 && addr.isIPv4MappedAddress() && prefix >= 96) return [addr.toIPv4Address(), prefix - 96];
  return [addr, prefix];
}
