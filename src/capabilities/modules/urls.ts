/**
 * URL modules (`import "https://esm.sh/…"`), fetched by the host with the same protections as a
 * sandbox's fetch: every URL, redirect hops included, must match a URL pattern of modules.allow;
 * connections go only to addresses the fetch policy checked (no private addresses unless
 * modules.allowPrivate names them; names are resolved once, and the connection is pinned to what
 * was checked, so DNS rebinding finds nothing).
 */
import type { Agent } from "undici";
import { undici } from "../fetch/undici.js";
import { NetworkPolicy } from "../fetch/policy.js";
import { ModuleError, PolicyError } from "../../host/errors.js";

export interface FetchedModule {
  /** Where the text came from, after redirects. */
  url: string;
  text: string;
  contentType: string;
}

const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export class UrlFetcher {
  private readonly network: NetworkPolicy;
  private readonly agent: Agent;

  constructor(
    /** Whether modules.allow admits a URL (and by which pattern). */
    private readonly admits: (url: URL) => string | undefined,
    prefixes: readonly string[],
    allowPrivate: readonly string[],
    private readonly limits: { maxBytes: number; timeoutMs: number },
  ) {
    // The fetch policy is by host; the module policy's URL prefixes are checked on every hop too.
    const hosts = [...new Set(prefixes.map((prefix) => new URL(prefix.replace(/\*$/, "")).origin))];
    this.network = new NetworkPolicy({ allow: hosts, allowPrivate: [...allowPrivate], lookup: undefined });
    this.agent = new (undici().Agent)({ connect: { lookup: this.network.lookup, timeout: Math.min(10_000, limits.timeoutMs) }, keepAliveTimeout: 4_000 });
  }

  async fetch(first: string, signal: AbortSignal): Promise<FetchedModule> {
    let url = new URL(first);
    for (let hop = 0; ; hop++) {
      if (!this.admits(url)) throw new PolicyError(`import of ${shown(url)} refused: not in modules.allow${hop > 0 ? ` (a redirect led there from ${shown(new URL(first))})` : ""}`);
      const verdict = this.network.checkUrl(url);
      if (!verdict.ok) throw new PolicyError(`import of ${shown(url)} refused: ${verdict.rule}`);
      let response: Awaited<ReturnType<Agent["request"]>>;
      try {
        response = await this.agent.request({ origin: url.origin, path: url.pathname + url.search, method: "GET", signal, headersTimeout: this.limits.timeoutMs, bodyTimeout: this.limits.timeoutMs, headers: { accept: "application/javascript, text/javascript, application/json, */*;q=0.5", "user-agent": "Paddock (module import)" } });
      } catch (error) {
        if ((error as Error).name === "AddressRefusedError") throw new PolicyError(`import of ${shown(url)} refused: the name ${(error as Error).message}`);
        throw new ModuleError(`${shown(url)} could not be fetched (${(error as NodeJS.ErrnoException).code ?? (error as Error).name})`, "unreachable");
      }
      if (REDIRECTS.has(response.statusCode)) {
        await response.body.dump();
        const location = response.headers.location;
        if (typeof location !== "string" || hop >= MAX_REDIRECTS) throw new ModuleError(`${shown(url)} redirects ${typeof location === "string" ? "too many times" : "without a location"}`, "unreachable");
        url = new URL(location, url);
        continue;
      }
      if (response.statusCode !== 200) {
        await response.body.dump();
        throw new ModuleError(`${shown(url)} answered HTTP ${response.statusCode}`, response.statusCode === 404 ? "not-found" : "unreachable");
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        size += chunk.byteLength;
        if (size > this.limits.maxBytes) {
          response.body.destroy();
          throw new ModuleError(`${shown(url)} is larger than modules.maxPackageBytes (${this.limits.maxBytes} bytes)`, "limit");
        }
        chunks.push(chunk);
      }
      const contentType = String(response.headers["content-type"] ?? "");
      return { url: url.href, text: Buffer.concat(chunks).toString("utf8"), contentType };
    }
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

/** A URL as errors show it: without credentials, query or fragment, and not too long. */
export function shown(url: URL): string {
  const text = url.origin + url.pathname;
  return text.length > 300 ? text.slice(0, 300) + "…" : text;
}
