/**
 * Host patterns, as written in net.allow and in the hosts a secret may be sent to:
 * `[http:// | https://] host [:port | :*]`, where host is a DNS name, "*.name" (any subdomain at
 * any depth, not the name itself), "*" (any host), an IPv4 literal or a bracketed IPv6 literal.
 * Patterns are normalized by the WHATWG URL parser, the same one that produced the URLs they are
 * matched against, so two spellings of one host ("LOCALHOST.", "0x7f.1", IDN) always compare equal.
 */
import { isIPv4 } from "node:net";

type Scheme = "http:" | "https:";

interface Rule {
  readonly pattern: string;
  readonly scheme: Scheme | undefined;
  readonly ports: ReadonlySet<number> | "any";
}

type Parsed = Omit<Rule, "pattern"> & { host: string; kind: "exact" | "subdomains" | "any" };

/** Without a port, a pattern admits its scheme's default port, or both when it names no scheme. */
const DEFAULT_PORTS = {
  "http:": new Set([80]),
  "https:": new Set([443]),
  any: new Set([80, 443]),
};

export class HostPatterns {
  readonly #exact = new Map<string, Rule[]>();
  /** "*.example.com" is kept under "example.com" and found by walking the URL host's labels. */
  readonly #subdomains = new Map<string, Rule[]>();
  readonly #anyHost: Rule[] = [];

  constructor(patterns: readonly string[], what: string) {
    patterns.forEach((pattern, index) => {
      const parsed = parsePattern(pattern);
      if (typeof parsed === "string") {
        const shown = typeof pattern === "string" ? JSON.stringify(pattern) : String(pattern);
        throw new TypeError(`${what}[${index}]: ${shown} is not a host pattern (${parsed})`);
      }
      const rule: Rule = { pattern, scheme: parsed.scheme, ports: parsed.ports };
      if (parsed.kind === "any") this.#anyHost.push(rule);
      else append(parsed.kind === "exact" ? this.#exact : this.#subdomains, parsed.host, rule);
    });
  }

  /**
   * The pattern (as the user wrote it) that admits this URL, or undefined. When several do, the
   * most specific one: an exact name, then the closest "*." suffix, then "*".
   */
  match(url: URL): string | undefined {
    const scheme = url.protocol;
    if (scheme !== "http:" && scheme !== "https:") return undefined;
    const port = url.port === "" ? (scheme === "https:" ? 443 : 80) : Number(url.port);
    const admitting = (rules: readonly Rule[] | undefined): string | undefined =>
      rules?.find((rule) => (rule.scheme ?? scheme) === scheme && (rule.ports === "any" || rule.ports.has(port)))?.pattern;

    const host = withoutTrailingDot(url.hostname);
    const exact = admitting(this.#exact.get(host));
    if (exact !== undefined) return exact;
    if (this.#subdomains.size > 0 && !host.startsWith("[") && !isIPv4(host)) {
      for (let dot = host.indexOf("."); dot >= 0; dot = host.indexOf(".", dot + 1)) {
        const found = admitting(this.#subdomains.get(host.slice(dot + 1)));
        if (found !== undefined) return found;
      }
    }
    return admitting(this.#anyHost);
  }
}

function parsePattern(pattern: unknown): Parsed | string {
  if (typeof pattern !== "string") return "expected a string";
  if (/[\s\p{Cc}]/u.test(pattern)) return "whitespace and control characters are not allowed";
  let rest = pattern;
  let scheme: Scheme | undefined;
  const schemeEnd = rest.indexOf("://");
  if (schemeEnd >= 0) {
    const name = rest.slice(0, schemeEnd).toLowerCase();
    if (name !== "http" && name !== "https") return "the scheme must be http or https";
    scheme = `${name}:`;
    rest = rest.slice(schemeEnd + 3);
  }
  if (/[/\\]/.test(rest)) return "a path is not allowed";
  if (/[?#]/.test(rest)) return "a query or fragment is not allowed";
  if (rest.includes("@")) return "userinfo is not allowed";

  // The port follows the closing bracket of an IPv6 literal, or else the only colon.
  const bracketed = rest.startsWith("[");
  if (!bracketed && rest.indexOf(":") !== rest.lastIndexOf(":")) return "too many colons (IPv6 literals go in brackets)";
  if (bracketed && !rest.includes("]")) return "an unclosed [";
  const hostEnd = bracketed ? rest.indexOf("]") + 1 : rest.includes(":") ? rest.indexOf(":") : rest.length;
  const hostText = rest.slice(0, hostEnd);
  const portText = rest.slice(hostEnd);
  const port = Number(portText.slice(1));
  let ports: Rule["ports"] = DEFAULT_PORTS[scheme ?? "any"];
  if (portText === ":*") ports = "any";
  else if (/^:\d{1,5}$/.test(portText) && port >= 1 && port <= 65535) ports = new Set([port]);
  else if (portText !== "") return portText.startsWith(":") ? "the port must be 1-65535 or *" : 'unexpected text after "]"';

  if (hostText === "") return "the host is empty";
  if (hostText === "*") return { host: "", kind: "any", scheme, ports };
  const subdomains = hostText.startsWith("*.");
  const name = subdomains ? hostText.slice(2) : hostText;
  if (name.includes("*")) return 'a wildcard may only be a leading "*." label';
  const host = normalizedHost(name);
  if (host === undefined) return "not a valid host name";
  // Normalization can make one ("＊" becomes "*"); labels must also be non-empty: ".example.com"
  // is no wildcard and "a..b" no name that DNS would resolve.
  if (host.includes("*")) return 'a wildcard may only be a leading "*." label';
  if (!host.startsWith("[") && host.split(".").includes("")) return "the host name has an empty label";
  if (subdomains && (host.startsWith("[") || isIPv4(host))) return 'only a domain name may follow "*."';
  return { host, kind: subdomains ? "subdomains" : "exact", scheme, ports };
}

/** The host as a URL's hostname spells it: lowercase, punycode, IPv4 in dotted decimal. */
function normalizedHost(name: string): string | undefined {
  if (name === "") return undefined;
  try {
    return withoutTrailingDot(new URL(`http://${name}/`).hostname);
  } catch {
    return undefined;
  }
}

/** "example.com." is the fully qualified spelling of "example.com"; the two are one host. */
function withoutTrailingDot(host: string): string {
  return host.endsWith(".") ? host.slice(0, -1) : host;
}

function append(map: Map<string, Rule[]>, key: string, rule: Rule): void {
  const rules = map.get(key);
  if (rules === undefined) map.set(key, [rule]);
  else rules.push(rule);
}
