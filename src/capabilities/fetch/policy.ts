/**
 * A sandbox's network policy: which URLs may be requested, and which addresses may be connected to.
 * URLs are judged before any connection; names are judged where the connection is made, on the very
 * addresses it then connects to, so no second lookup can swap in another (DNS rebinding).
 */
import { lookup as systemLookup } from "node:dns/promises";
import type { LookupFunction } from "node:net";
import { AddressPolicy, ipLiteral, type AddressVerdict } from "./address.js";
import { HostPatterns } from "./hosts.js";
import type { NetLookup, ResolvedNetOptions } from "./options.js";

/** A connection refused because of where the name led. Carries the rule, never the address. */
export class AddressRefusedError extends Error {
  override name = "AddressRefusedError";
  constructor(readonly rule: string) {
    super(rule);
  }
}

const defaultResolver: NetLookup = async (hostname) => (await systemLookup(hostname, { all: true, verbatim: true })).map((entry) => entry.address);

export class NetworkPolicy {
  private readonly hosts: HostPatterns;
  private readonly addresses: AddressPolicy;
  private readonly resolve: NetLookup;

  constructor(options: Pick<ResolvedNetOptions, "allow" | "allowPrivate" | "lookup">) {
    this.hosts = new HostPatterns(options.allow, "net.allow");
    this.addresses = new AddressPolicy(options.allowPrivate, "net.allowPrivate");
    this.resolve = options.lookup ?? defaultResolver;
  }

  /** Everything that can be judged from the URL alone, including a literal address. */
  checkUrl(url: URL): AddressVerdict {
    if (url.protocol !== "http:" && url.protocol !== "https:") return { ok: false, rule: "only http and https URLs can be fetched" };
    if (url.username !== "" || url.password !== "") return { ok: false, rule: "URLs with credentials are refused" };
    const pattern = this.hosts.match(url);
    if (pattern === undefined) return { ok: false, rule: "not in the allow list" };
    // A literal address is connected to as it is: the resolver never sees it.
    const literal = ipLiteral(url.hostname);
    if (literal !== undefined) {
      const verdict = this.addresses.check(literal);
      return verdict.ok ? { ok: true, rule: `${pattern} (${verdict.rule})` } : verdict;
    }
    return { ok: true, rule: pattern };
  }

  /**
   * net.connect's `lookup` for this sandbox's connections: resolves the name, refuses unless every
   * address is allowed, and hands over only addresses it checked.
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    this.addressesOf(hostname).then(
      (addresses) => {
        const wanted = options.family === 4 || options.family === 6 ? addresses.filter((entry) => entry.family === options.family) : addresses;
        const first = wanted[0];
        if (!first) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: "ENOTFOUND" }), "", 0);
        if (options.all) return (callback as unknown as (error: null, all: typeof wanted) => void)(null, wanted);
        callback(null, first.address, first.family);
      },
      (error: Error) => callback(error as NodeJS.ErrnoException, "", 0),
    );
  };

  private async addressesOf(hostname: string): Promise<Array<{ address: string; family: 4 | 6 }>> {
    const answers = await this.resolve(hostname);
    if (!Array.isArray(answers) || answers.length === 0) throw Object.assign(new Error(`no address for ${hostname}`), { code: "ENOTFOUND" });
    return answers.map((answer: unknown) => {
      const address = typeof answer === "string" ? ipLiteral(answer) ?? ipLiteral(`[${answer}]`) : undefined;
      if (address === undefined) throw new AddressRefusedError("the resolver returned something that is not an address");
      const verdict = this.addresses.check(address);
      if (!verdict.ok) throw new AddressRefusedError(`resolves to a ${verdict.rule}`);
      return { address, family: address.includes(":") ? 6 : 4 };
    });
  }
}
