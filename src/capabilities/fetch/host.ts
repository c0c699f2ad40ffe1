/**
 * The host half of fetch: every request a sandbox makes is decided and performed here. Each hop
 * (redirects are followed by hand) is checked against the sandbox's policy, connects only to
 * addresses the policy checked, gets secrets only where they may go, and is recorded.
 */
import { Readable } from "node:stream";
import { rootCertificates } from "node:tls";
import type { Agent, Dispatcher } from "undici";
import { undici } from "./undici.js";
import type { CallError } from "../../protocol/messages.js";
import type { CallPort } from "../../host/call-port.js";
import type { CallReply } from "../../host/carrier.js";
import type { FetchRequest } from "./messages.js";
import type { ResolvedNetOptions } from "./options.js";
import { NetworkPolicy } from "./policy.js";
import { Secrets, stripFragment, type HeaderList } from "./secrets.js";
import { relay } from "./relay.js";
import { Hop, type HopHead } from "./hop.js";
import { Upload } from "./upload.js";
import { Slots } from "../../shared/slots.js";
import { describeFailure, limitError, policyError, typeError } from "./failures.js";

/** One request (one hop of a fetch) as the audit log sees it. Secrets never appear here. */
export interface FetchRecord {
  method: string;
  url: string;
  /** The response status; null when no response came (refused, or the connection failed). */
  status: number | null;
  /** Response body bytes received (as they came over the wire, before decompression). */
  bytesIn: number;
  /** Request body bytes sent. */
  bytesOut: number;
  ms: number;
  /** "allowed": the policy let the request go out; "refused": it never left the host. */
  verdict: "allowed" | "refused";
  /** The allow rule that admitted it, or why it was refused. */
  rule: string;
  /** What went wrong after it was allowed: a network error, a timeout, a limit, a cancel. */
  error?: string;
}

/** Calls an eval of a sandbox without network may make (each refused) before they count as a limit. */
const NO_NETWORK_MAX_CALLS = 50;
/** URLs in records and messages are cut to this (a URL may be 64 K characters long). */
const MAX_SHOWN_URL = 2048;

/** Headers the sandbox may not set: they belong to the connection, or would re-aim the request. */
const CONNECTION_HEADERS = new Set([
  "host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
  "content-length", "expect", "http2-settings", "proxy-authorization",
]);
const FORBIDDEN_METHODS = new Set(["CONNECT", "TRACE", "TRACK"]);
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Dropped when a redirect leaves the origin (fetch and undici do the same). */
const ORIGIN_CREDENTIALS = new Set(["authorization", "cookie"]);
/** Dropped when a redirect turns the request into a GET without a body. */
const BODY_HEADERS = new Set(["content-type", "content-encoding", "content-language", "content-location"]);
const DEFAULT_HEADERS: HeaderList = [["accept", "*/*"], ["user-agent", "Paddock (sandboxed fetch)"]];
/**
 * Set by the host whatever the sandbox asks: the host must be able to undo every coding a response
 * uses, to count its bytes and to scrub secrets from it.
 */
const ACCEPT_ENCODING = "gzip, deflate, br";

/** A sandbox's network: its policy, its own connections (never shared with another sandbox), its secrets. */
export class Network {
  readonly policy: NetworkPolicy;
  readonly secrets: Secrets;
  readonly agent: Agent;
  private readonly slots: Slots;

  constructor(readonly options: ResolvedNetOptions) {
    this.policy = new NetworkPolicy(options);
    this.secrets = new Secrets(options.secrets);
    this.slots = new Slots(options.maxConcurrent);
    // Connections are pooled per origin, for this sandbox only, and made through the policy's
    // lookup: a connection exists only to an address that was checked for this sandbox.
    const ca = options.ca.length > 0 ? { ca: [...rootCertificates, ...options.ca] } : {};
    const connectTimeout = Math.min(10_000, options.timeoutMs);
    this.agent = new (undici().Agent)({ connect: { lookup: this.policy.lookup, timeout: connectTimeout, ...ca }, keepAliveTimeout: 4_000 });
  }

  /** Takes one of the `maxConcurrent` slots, waiting for one if need be; false if `stops` first. */
  acquire(stops: Stoppable): boolean | Promise<boolean> {
    return this.slots.acquire((listener) => stops.onStop(listener));
  }

  release(): void {
    this.slots.release();
  }

  close(): Promise<void> {
    return this.agent.destroy();
  }
}

/** One eval's fetches: its request count and its audit records. */
export class EvalFetches {
  readonly records: FetchRecord[] = [];
  private readonly unfinished = new Set<FetchRecord>();
  private requests = 0;

  constructor(
    private readonly network: Network | undefined,
    private readonly onRecord: ((record: FetchRecord) => void) | undefined,
  ) {}

  /**
   * Every call counts, refused or not, before any work is done for it: past the limit a call costs
   * the host nothing but its refusal, and only the first refusal is recorded.
   */
  handle(request: FetchRequest, port: CallPort): Promise<CallReply> {
    if (!this.countRequest()) {
      if (this.requests === this.maxRequests + 1) this.refused(request.method, this.network?.secrets.redactText(request.url) ?? request.url, "net.maxRequests");
      return Promise.resolve(limitError(`fetch: more than ${this.maxRequests} requests in this eval (net.maxRequests)`));
    }
    return new Exchange(this, this.network, request, port).run();
  }

  /** Counts one more request (a call, or a redirect hop) against the eval's limit; false when over it. */
  countRequest(): boolean {
    return ++this.requests <= this.maxRequests;
  }

  private get maxRequests(): number {
    return this.network?.options.maxRequests ?? NO_NETWORK_MAX_CALLS;
  }

  open(method: string, url: string, rule: string, verdict: FetchRecord["verdict"]): FetchRecord {
    const record: FetchRecord = { method: clip(method, 32), url: clip(url, MAX_SHOWN_URL), status: null, bytesIn: 0, bytesOut: 0, ms: 0, verdict, rule };
    this.records.push(record);
    this.unfinished.add(record);
    return record;
  }

  /** Records a request that never left the host. */
  refused(method: string, url: string, rule: string): void {
    this.close(this.open(method, url, rule, "refused"), performance.now());
  }

  isOpen(record: FetchRecord): boolean {
    return this.unfinished.has(record);
  }

  /** Completes a record (once: later calls are ignored) and hands it to the listeners. */
  close(record: FetchRecord, started: number, error?: string): void {
    if (!this.unfinished.delete(record)) return;
    record.ms = Math.round((performance.now() - started) * 1000) / 1000;
    if (error !== undefined) record.error = error;
    try {
      this.onRecord?.(record);
    } catch {
      // A listener's failure is the listener's: the fetch and the eval go on.
    }
  }
}

interface Stoppable {
  onStop(listener: () => void): void;
}

type HopRequest = { url: URL; method: string; headers: HeaderList; body: Uint8Array | Upload | undefined; redirected: boolean };

/** One fetch: its hops, its body both ways, its timeout, its cancellation. */
class Exchange implements Stoppable {
  private timedOut = false;
  /** Why the fetch was stopped before it finished; undefined while it runs. */
  private stopReason: string | undefined;
  private finished = false;
  private readonly stopListeners: Array<() => void> = [];
  private hop: Hop | undefined;
  /** The hop in progress, whose record a stop completes at once (the eval's result lists it). */
  private current: { record: FetchRecord; started: number; url: URL } | undefined;
  private readonly upload: Upload | undefined;
  private credit: ((bytes: number) => void) | undefined;

  constructor(
    private readonly log: EvalFetches,
    private readonly network: Network | undefined,
    private readonly request: FetchRequest,
    private readonly port: CallPort,
  ) {
    this.upload = request.body === "stream" ? new Upload(network?.options.maxRequestBytes ?? 0, (bytes) => port.grant(bytes), (what) => port.violation(what)) : undefined;
    // Before any await: the carrier streams the request body right after the call.
    port.listen((op, data, bytes) => {
      if (op === "data" && data) this.upload?.push(data);
      else if (op === "end") this.upload?.end();
      else if (op === "credit" && bytes) this.credit?.(bytes);
      else if (op === "cancel") this.stop("cancelled by the sandbox");
    });
    port.onClose(() => this.stop("the eval ended"));
  }

  async run(): Promise<CallReply> {
    const { request, network } = this;
    // The method as the carrier's Request normalized it (standard methods upper-cased, others kept).
    const { method } = request;
    let url: URL;
    try {
      url = new URL(request.url);
    } catch {
      this.log.refused(method, "(an invalid URL)", "invalid URL");
      return typeError("fetch: the URL is not valid");
    }
    if (!network) return this.refuse(method, url, "no network policy grants this sandbox network access");
    if (FORBIDDEN_METHODS.has(method.toUpperCase())) {
      this.log.refused(method, network.secrets.redactUrl(url), "forbidden method");
      return typeError(`fetch: the method ${method.toUpperCase()} is not allowed`);
    }
    const inline = request.body === "inline" ? this.port.body ?? new Uint8Array(0) : undefined;
    if (inline && inline.byteLength > network.options.maxRequestBytes) {
      this.log.refused(method, network.secrets.redactUrl(url), "net.maxRequestBytes");
      return limitError(`fetch: the request body is ${inline.byteLength} bytes, over net.maxRequestBytes (${network.options.maxRequestBytes})`);
    }
    if (!(await network.acquire(this))) return typeError("fetch: cancelled");
    if (this.stopReason !== undefined) {
      // Stopped while the slot was being handed over.
      network.release();
      return { ok: false, error: this.stopError(this.shownHost(url)) };
    }
    const timer = setTimeout(() => {
      this.timedOut = true;
      this.stop("timed out");
    }, network.options.timeoutMs);
    const done = () => {
      if (this.finished) return;
      this.finished = true;
      clearTimeout(timer);
      network.release();
    };
    try {
      const reply = await this.follow(network, { url, method, headers: requestHeaders(request.headers), body: inline ?? this.upload, redirected: false }, done);
      if (!reply.ok) done();
      return reply;
    } catch (error) {
      done();
      throw error;
    }
  }

  /** Sends each hop in turn, following redirects by hand, and answers with the final response's head. */
  private async follow(network: Network, first: HopRequest, done: () => void): Promise<CallReply> {
    const { policy, secrets, options } = network;
    let hop = first;
    for (let count = 0; ; count++) {
      const shown = secrets.redactUrl(hop.url);
      // The first hop was counted when the call came in.
      if (count > 0 && !this.log.countRequest()) {
        this.log.refused(hop.method, shown, "net.maxRequests");
        return limitError(`fetch: more than ${options.maxRequests} requests in this eval (net.maxRequests)`);
      }
      if (this.stopReason !== undefined) return { ok: false, error: this.stopError(this.shownHost(hop.url)) };
      const verdict = policy.checkUrl(hop.url);
      if (!verdict.ok) return this.refuse(hop.method, hop.url, verdict.rule);
      const started = performance.now();
      const record = this.log.open(hop.method, shown, verdict.rule, "allowed");
      this.current = { record, started, url: hop.url };
      record.bytesOut = hop.body instanceof Upload ? 0 : hop.body?.byteLength ?? 0;
      const response = new Hop();
      this.hop = response;
      network.agent.dispatch({
        origin: hop.url.origin,
        path: hop.url.pathname + hop.url.search,
        method: hop.method as Dispatcher.HttpMethod,
        headers: flatten(secrets.headersFor(hop.headers, hop.url, hop.redirected)),
        body: hop.body instanceof Upload ? Readable.from(hop.body.stream(), { objectMode: false }) : hop.body ?? null,
      }, response);
      let head: HopHead;
      try {
        head = await response.head;
      } catch (error) {
        return this.failed(record, started, hop.url, error);
      } finally {
        if (hop.body instanceof Upload) record.bytesOut = hop.body.bytes;
      }
      record.status = head.status;
      const location = head.headers.location;
      if (!REDIRECT_STATUSES.has(head.status) || typeof location !== "string" || this.request.redirect === "manual") {
        const reply = relay({
          hop: response, head, url: hop.url, method: hop.method, redirected: hop.redirected, port: this.port,
          secrets, maxResponseBytes: options.maxResponseBytes, stops: this,
          stopError: () => this.stopError(this.shownHost(hop.url)),
          onCredit: (credit) => (this.credit = credit),
          finish: (error) => {
            if (this.log.isOpen(record)) record.bytesIn = response.bytesIn;
            done();
            this.log.close(record, started, error);
          },
        });
        if (!reply.ok) this.log.close(record, started, reply.error.message);
        return reply;
      }
      response.discard();
      this.log.close(record, started);
      if (this.request.redirect === "error") return typeError(`fetch: the response redirects, and the request said redirect: "error"`);
      if (count >= options.maxRedirects) return typeError(`fetch: more than ${options.maxRedirects} redirects`);
      const next = nextHop(hop, head.status, location);
      if (typeof next === "string") return typeError(next);
      // An open redirect that reflects a header into its Location would carry the secret onwards.
      if (secrets.foundIn(next.url)) return this.refuse(next.method, next.url, "the redirect URL carries a secret");
      hop = next;
    }
  }

  private refuse(method: string, url: URL, rule: string): CallReply {
    this.log.refused(method, this.shownUrl(url), rule);
    return policyError(`fetch to ${this.shownHost(url)} refused: ${rule}`);
  }

  /** A URL or host for records and messages: never one that carries a secret. */
  private shownUrl(url: URL): string {
    return this.network?.secrets.redactUrl(url) ?? stripFragment(url);
  }

  private shownHost(url: URL): string {
    const host = clip(displayHost(url), 256);
    return this.network?.secrets.redactText(host) ?? host;
  }

  private failed(record: FetchRecord, started: number, url: URL, error: unknown): CallReply {
    const failure = this.stopReason !== undefined ? { error: this.stopError(this.shownHost(url)) } : describeFailure(error, this.shownHost(url));
    if ("refused" in failure && failure.refused !== undefined) {
      record.verdict = "refused";
      record.rule = failure.refused;
    }
    this.log.close(record, started, record.verdict === "refused" ? undefined : failure.error.message);
    return { ok: false, error: failure.error };
  }

  onStop(listener: () => void): void {
    if (this.stopReason === undefined) this.stopListeners.push(listener);
    else listener();
  }

  private stop(reason: string): void {
    if (this.finished || this.stopReason !== undefined) return;
    this.stopReason = reason;
    if (this.current && this.log.isOpen(this.current.record)) {
      this.current.record.bytesIn = this.hop?.bytesIn ?? 0;
      this.log.close(this.current.record, this.current.started, this.stopError(this.shownHost(this.current.url)).message);
    }
    // Listeners first: a body being relayed ends with the stop's error, not the connection's.
    for (const listener of this.stopListeners) listener();
    this.hop?.abort(new Error(reason));
    this.upload?.fail();
  }

  /** What the sandbox is told when the fetch was stopped while its body was streaming. */
  private stopError(host: string): CallError {
    if (this.timedOut) return { name: "TimeoutError", message: `fetch to ${host} timed out after ${this.network?.options.timeoutMs} ms (net.timeoutMs)`, kind: "timeout" };
    return { name: "AbortError", message: `fetch: ${this.stopReason}` };
  }
}

/** The sandbox's headers without the ones it may not set, plus fetch's defaults it did not set. */
function requestHeaders(headers: FetchRequest["headers"]): HeaderList {
  const kept: HeaderList = headers
    .map(([name, value]): [string, string] => [name.toLowerCase(), value])
    .filter(([name]) => !CONNECTION_HEADERS.has(name) && name !== "accept-encoding");
  for (const [name, value] of DEFAULT_HEADERS) if (!kept.some(([present]) => present === name)) kept.push([name, value]);
  kept.push(["accept-encoding", ACCEPT_ENCODING]);
  return kept;
}

function flatten(headers: HeaderList): string[] {
  return headers.flat();
}

/** The next hop of a redirect, as the fetch standard says; a string is why it cannot be followed. */
function nextHop(hop: HopRequest, status: number, location: string): HopRequest | string {
  let url: URL;
  try {
    url = new URL(location, hop.url);
  } catch {
    return "fetch: the response redirects to an invalid URL";
  }
  let { method, body, headers } = hop;
  if (((status === 301 || status === 302) && method === "POST") || (status === 303 && method !== "GET" && method !== "HEAD")) {
    method = "GET";
    body = undefined;
    headers = headers.filter(([name]) => !BODY_HEADERS.has(name));
  } else if (body instanceof Upload) {
    return "fetch: cannot follow a redirect that must resend a streamed request body";
  }
  if (url.origin !== hop.url.origin) headers = headers.filter(([name]) => !ORIGIN_CREDENTIALS.has(name));
  return { url, method, headers, body, redirected: true };
}

/** The host as the sandbox wrote it (with a port when it is not the default), for messages. */
function displayHost(url: URL): string {
  if (url.protocol !== "http:" && url.protocol !== "https:") return clip(stripFragment(url), 120);
  return url.host;
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
