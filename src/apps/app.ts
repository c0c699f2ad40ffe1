/**
 * Apps: a long-lived sandbox whose module answers HTTP requests (`export default { fetch }`, a Hono
 * app as it is). The host owns every socket: requests reach the app as messages (see
 * src/host/serve.ts), through app.fetch() or a host-owned listener (listener.ts). Per request the
 * host enforces a time limit (504), a body limit (413) and the app's concurrency (503); what the
 * app throws is a 500 with no detail. A carrier that dies is replaced on the next request; an idle
 * app gives its carrier back and starts again from the warm pool when a request comes.
 */
import type { SandboxOptions } from "../host/options.js";
import { parseOptions } from "../host/options.js";
import { lazySchema } from "../shared/schema.js";
import { SandboxClosedError, SandboxError, TimeoutError } from "../host/errors.js";
import { Sandbox, toSandboxError } from "../host/sandbox.js";
import type { SandboxFiles } from "../capabilities/files/host.js";
import { ServeLink, type ExchangeHead, type ResponseHead } from "../host/serve.js";
import type { LogEntry } from "../capabilities/console/messages.js";
import { appCode, entryOf, readSources, type AppCode } from "./sources.js";
import { servedStream } from "../shared/served-stream.js";
import { createAppServer, listen, serveNodeRequest, type ListenOptions, type Listener } from "./listener.js";

const MiB = 1024 * 1024;

/** Sandbox options an app takes as they are: its memory and capabilities. */
type SandboxPart = Pick<SandboxOptions, "memoryMb" | "net" | "env" | "globals" | "modules" | "tools" | "mcp" | "onFetch" | "onImport" | "maxTimers" | "maxLogBytes" | "files" | "onFile">;
const SANDBOX_KEYS = ["memoryMb", "net", "env", "globals", "modules", "tools", "mcp", "onFetch", "onImport", "maxTimers", "maxLogBytes", "files", "onFile"] as const;

export const appOptionsSchema = lazySchema((z) =>
  z
    .strictObject({
      /** Checked by Sandbox.create. */
      ...Object.fromEntries(SANDBOX_KEYS.map((key) => [key, z.unknown().optional()])),
      /** The app's files by relative path ("main.ts", "lib/db.ts"). */
      sources: z.record(z.string().min(1).max(1024), z.string()).optional(),
      /** A directory holding the app's files, read once by the host. */
      dir: z.string().min(1).optional(),
      /** The file whose default export answers requests (default: main.ts, main.js, index.ts…). */
      entry: z.string().min(1).max(1024).optional(),
      /** Requests in progress at once; more are answered 503 with Retry-After. */
      maxConcurrentRequests: z.number().int().min(1).max(100_000).default(64),
      /** One request's time limit, until its response is complete; over it, 504. */
      requestTimeoutMs: z.number().int().min(1).max(3_600_000).default(30_000),
      /** One request's body; a larger one is answered 413. */
      maxRequestBodyBytes: z.number().int().min(0).max(4096 * MiB).default(16 * MiB),
      /** A request body that sends nothing for this long is given up (408): a slow client must not hold a slot. */
      requestBodyIdleTimeoutMs: z.number().int().min(1).max(3_600_000).default(10_000),
      /** The time limit of the app's top-level code, run at each start. */
      startTimeoutMs: z.number().int().min(1).max(600_000).default(10_000),
      /** Stop the app's carrier after this long without requests (it starts again on the next one). */
      idleTimeoutMs: z.number().int().min(1).max(86_400_000).optional(),
      /** Each console entry of the app. */
      onLog: z.custom<(entry: LogEntry) => void>((value) => typeof value === "function", "expected a function").optional(),
      /** Each failure the client saw only as a status: what the app threw (500), why it did not start, timeouts. */
      onError: z.custom<(error: SandboxError, request: { method: string; url: string }) => void>((value) => typeof value === "function", "expected a function").optional(),
    })
    .refine((options) => (options.sources === undefined) !== (options.dir === undefined), "give exactly one of sources and dir"),
);

export interface AppOptions extends SandboxPart {
  /** The app's files by relative path ("main.ts", "lib/db.ts"); or `dir`. */
  sources?: Record<string, string>;
  /** A directory holding the app's files, read once by the host; or `sources`. */
  dir?: string;
  /** The file whose default export answers requests (default: main.ts, main.js, index.ts…). */
  entry?: string;
  /** Requests in progress at once (default 64); more are answered 503 with Retry-After. */
  maxConcurrentRequests?: number;
  /** One request's time limit, until its response is complete (default 30,000 ms); over it, 504. */
  requestTimeoutMs?: number;
  /** One request's body (default 16 MiB); a larger one is answered 413. */
  maxRequestBodyBytes?: number;
  /** A request body that sends nothing for this long (default 10,000 ms) is given up with 408. */
  requestBodyIdleTimeoutMs?: number;
  /** The time limit of the app's top-level code, run at each start (default 10,000 ms). */
  startTimeoutMs?: number;
  /** Stop the app's carrier after this long without requests; it starts again on the next one. */
  idleTimeoutMs?: number;
  onLog?: (entry: LogEntry) => void;
  /** Each failure the client saw only as a status (the app's exception, a failed start, a timeout). */
  onError?: (error: SandboxError, request: { method: string; url: string }) => void;
}

type Resolved = ReturnType<ReturnType<typeof appOptionsSchema>["parse"]>;

export interface AppStats {
  requests: number;
  inFlight: number;
  /** Responses by status class ("2xx" … "5xx"), the host's own (413, 503, 504…) included. */
  responses: Record<string, number>;
  /** Requests the app failed (500), timed out (504), refused as too large (413) or too many (503), or lost with its carrier (502). */
  failed: { error: number; timeout: number; tooLarge: number; slowBody: number; badRequest: number; overloaded: number; lost: number };
  /** Starts of the app's code (the first, restarts after a carrier died, wake-ups after idling). */
  starts: number;
  /** The last start, from the request that needed it to the app being ready, in ms. */
  lastStartMs: number | undefined;
  /** Whether a carrier is serving the app now (false while idle or stopped). */
  running: boolean;
}

/** Where a response goes: a web Response (App.fetch) or a socket (listener.ts). */
export interface ResponseSink {
  head(head: ResponseHead): void;
  /** A whole response at once (a body that came in one piece, or none). */
  whole(head: ResponseHead, body: Uint8Array | undefined): void;
  /** A chunk of the body; `passed` once it is passed on (the app may then send more). */
  data(chunk: Uint8Array, passed: () => void): void;
  end(): void;
  /** The body broke off after its head was sent. */
  broken(): void;
}

/** Statuses the host answers with itself; their bodies say only what the client may know. */
const HOST_STATUS = {
  error: { status: 500, text: "Internal Server Error" },
  lost: { status: 502, text: "Bad Gateway" },
  overloaded: { status: 503, text: "Service Unavailable" },
  timeout: { status: 504, text: "Gateway Timeout" },
  tooLarge: { status: 413, text: "Content Too Large" },
  slowBody: { status: 408, text: "Request Timeout" },
  badRequest: { status: 400, text: "Bad Request" },
  notAllowed: { status: 405, text: "Method Not Allowed" },
} as const;
type HostStatus = keyof typeof HOST_STATUS;

/** Methods a Request cannot carry (the Fetch standard forbids them). */
const FORBIDDEN_METHODS = new Set(["CONNECT", "TRACE", "TRACK"]);
/** After a restart of the app's code fails, requests get 503 for this long before it is tried again. */
const START_RETRY_MS = 1_000;
/**
 * A carrier that does not answer a probe this long (or requestTimeoutMs, if longer) after a request
 * timed out is stuck, and is replaced.
 */
const STUCK_PROBE_MS = 1_000;

export class App implements AsyncDisposable {
  private link: ServeLink | undefined;
  private starting: Promise<ServeLink> | undefined;
  private inFlight = 0;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  private closing: Promise<void> | undefined;
  private whenDrained: (() => void) | undefined;
  private probing = false;
  /** When a restart of the app's code last failed (see START_RETRY_MS). */
  private startFailedAt: number | undefined;
  private readonly counts: Omit<AppStats, "inFlight" | "running"> = {
    requests: 0,
    responses: {},
    failed: { error: 0, timeout: 0, tooLarge: 0, slowBody: 0, badRequest: 0, overloaded: 0, lost: 0 },
    starts: 0,
    lastStartMs: undefined,
  };

  private constructor(
    private readonly sandbox: Sandbox,
    private readonly options: Resolved,
    private readonly code: AppCode,
  ) {}

  /** Starts the app; rejects with its ScriptError (or its limit's error) if its code does not start. */
  static async create(options: AppOptions): Promise<App> {
    const resolved = parseOptions(appOptionsSchema(), options, "App.create");
    const sources = resolved.sources ?? (await readSources(resolved.dir!));
    const code = await appCode(sources, entryOf(sources, resolved.entry));
    const given = resolved as Record<string, unknown>;
    const sandboxPart: Record<string, unknown> = {};
    for (const key of SANDBOX_KEYS) if (given[key] !== undefined) sandboxPart[key] = given[key];
    const onLog = resolved.onLog;
    const sandbox = await Sandbox.create({ ...(sandboxPart as SandboxPart), timeoutMs: resolved.startTimeoutMs, ...(onLog ? { onLog } : {}) });
    const app = new App(sandbox, resolved, code);
    try {
      await app.start();
    } catch (error) {
      await sandbox.close();
      throw error;
    }
    app.armIdle();
    return app;
  }

  /** Answers `request` as the app does (the host's statuses included); never rejects for the app's failures. */
  async fetch(input: Request | string | URL, init?: RequestInit): Promise<Response> {
    const request = input instanceof Request && init === undefined ? input : new Request(input, init);
    const head: ExchangeHead = { method: request.method, url: request.url, headers: [...request.headers], body: request.body !== null };
    const length = Number(request.headers.get("content-length") ?? NaN);
    return new Promise<Response>((resolve) => {
      const { signal } = request;
      const sink = webSink(resolve);
      // The caller gives up by aborting its request's signal, or by cancelling the response's body.
      const whenGone = (abort: () => void) => {
        sink.onCancel(abort);
        if (signal.aborted) abort();
        else signal.addEventListener("abort", abort, { once: true });
      };
      void this.handle(head, request.body ?? undefined, Number.isFinite(length) ? length : undefined, sink, whenGone);
    });
  }

  /** Serves the app on a host-owned HTTP listener (127.0.0.1 and a free port by default). */
  listen(options: ListenOptions = {}): Promise<Listener> {
    return listen(createAppServer((request, response) => serveNodeRequest(this, request, response), options), options);
  }

  stats(): AppStats {
    return { ...this.counts, responses: { ...this.counts.responses }, failed: { ...this.counts.failed }, inFlight: this.inFlight, running: this.link?.isOpen === true };
  }

  get isClosed(): boolean {
    return this.closing !== undefined;
  }

  /** The app's files (its `files` option: in memory, or a directory), as the host sees them. */
  get fs(): SandboxFiles {
    return this.sandbox.fs;
  }

  /**
   * Stops taking requests (new ones get 503), lets those in progress finish (up to `graceMs`), then
   * stops the app's carrier.
   */
  close(graceMs = this.options.requestTimeoutMs): Promise<void> {
    this.closing ??= (async () => {
      clearTimeout(this.idleTimer);
      if (this.inFlight > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([new Promise<void>((resolve) => (this.whenDrained = resolve)), new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
        clearTimeout(timer);
      }
      await this.sandbox.close();
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Serves one request into `sink`. Every path ends in exactly one response (or a broken body).
   * @internal (App.fetch, listener.ts)
   */
  async handle(head: ExchangeHead, body: AsyncIterable<Uint8Array> | undefined, declaredLength: number | undefined, sink: ResponseSink, whenGone?: (abort: () => void) => void): Promise<void> {
    this.counts.requests++;
    const where = { method: head.method, url: head.url };
    const answer = (status: HostStatus, retryAfter?: number) => {
      if (status !== "notAllowed") this.counts.failed[status]++;
      hostResponse(sink, status, retryAfter, this.count);
    };
    if (this.closing) return answer("overloaded", 5);
    if (FORBIDDEN_METHODS.has(head.method.toUpperCase())) return answer("notAllowed");
    if (this.inFlight >= this.options.maxConcurrentRequests) return answer("overloaded", 1);
    if (declaredLength !== undefined && declaredLength > this.options.maxRequestBodyBytes) return answer("tooLarge");
    this.inFlight++;
    clearTimeout(this.idleTimer);
    try {
      let link: ServeLink;
      // An app that failed to start again is not retried for every request: a crash on start
      // would otherwise cost a start per request.
      if (this.startFailedAt !== undefined && performance.now() - this.startFailedAt < START_RETRY_MS) return answer("overloaded", Math.ceil(START_RETRY_MS / 1000));
      try {
        link = await this.start();
      } catch (error) {
        this.startFailedAt = performance.now();
        this.report(error, where);
        return answer("error");
      }
      await new Promise<void>((done) => {
        let headSent = false;
        let settled = false;
        const finish = () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          done();
        };
        const giveUp = (status: "timeout" | "tooLarge" | "slowBody" | "badRequest") => {
          exchange.abort();
          if (headSent) {
            this.counts.failed[status]++;
            sink.broken();
          } else {
            answer(status);
          }
          finish();
        };
        const timer = setTimeout(() => {
          this.report(new TimeoutError(`the request did not complete within ${this.options.requestTimeoutMs} ms (requestTimeoutMs)`), where);
          giveUp("timeout");
          this.probe();
        }, this.options.requestTimeoutMs);
        const onAbort = () => {
          if (settled) return;
          exchange.abort();
          if (headSent) sink.broken();
          finish();
        };
        const exchange = link.open(head, {
          onResponse: (response) => {
            headSent = true;
            this.count(response.status);
            sink.head(response);
            if (!response.body) {
              sink.end();
              finish();
            }
          },
          onFailure: (failure) => {
            if (failure) this.report(toSandboxError(failure), where);
            answer(failure ? "error" : "lost");
            finish();
          },
          onWhole: (response, bytes) => {
            headSent = true;
            this.count(response.status);
            sink.whole(response, bytes);
            finish();
          },
          onData: (chunk) => sink.data(chunk, () => exchange.grant(chunk.byteLength)),
          onEnd: () => {
            sink.end();
            finish();
          },
          onBroken: () => {
            sink.broken();
            finish();
          },
        });
        // The client gone (a closed connection, an aborted fetch): the app's request is aborted too.
        whenGone?.(() => {
          if (!settled) onAbort();
        });
        if (body) {
          const checked = checkedBody(body, this.options.maxRequestBodyBytes, this.options.requestBodyIdleTimeoutMs, (why) => giveUp(why));
          void exchange.writeBody(checked).then((ok) => ok || settled || giveUp("badRequest"));
        }
      });
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) {
        this.whenDrained?.();
        this.armIdle();
      }
    }
  }

  /** The app's link, starting the app first if no carrier serves it (the first request, a restart, a wake-up). */
  private start(): Promise<ServeLink> {
    if (this.link?.isOpen) return Promise.resolve(this.link);
    if (this.starting) return this.starting;
    const started = performance.now();
    const link: ServeLink = new ServeLink(() => {
      if (this.link === link) this.link = undefined;
    });
    const starting = this.sandbox.serve(this.code.code, { filename: this.code.filename, timeoutMs: this.options.startTimeoutMs }, link).then((result) => {
      if (!result.ok) throw result.error;
      this.counts.starts++;
      this.startFailedAt = undefined;
      this.counts.lastStartMs = Math.round((performance.now() - started) * 1000) / 1000;
      this.link = link;
      return link;
    });
    this.starting = starting;
    const clear = () => {
      if (this.starting === starting) this.starting = undefined;
    };
    starting.then(clear, clear);
    return starting;
  }

  /**
   * After a request timed out: a carrier that no longer answers (user code stuck in a loop) is
   * found by a trivial eval, whose own time limit kills it; the next request starts the app again.
   */
  private probe(): void {
    if (this.probing || this.closing) return;
    this.probing = true;
    // A carrier busy with honest work for longer than a request may take is as good as stuck.
    void this.sandbox.run("0", { timeoutMs: Math.max(STUCK_PROBE_MS, this.options.requestTimeoutMs) }).finally(() => (this.probing = false));
  }

  private armIdle(): void {
    const idleMs = this.options.idleTimeoutMs;
    if (idleMs === undefined || this.closing) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.inFlight > 0 || this.closing || !this.link) return;
      this.link = undefined;
      void this.sandbox.retire(0, new SandboxClosedError("the app was stopped after idling"));
    }, idleMs);
    this.idleTimer.unref();
  }

  private readonly count = (status: number) => {
    const key = `${Math.floor(status / 100)}xx`;
    this.counts.responses[key] = (this.counts.responses[key] ?? 0) + 1;
  };

  private report(error: unknown, where: { method: string; url: string }): void {
    const listener = this.options.onError;
    if (!listener) return;
    try {
      listener(error instanceof SandboxError ? error : new SandboxError(String(error)), where);
    } catch {
      // The listener's failure is the listener's.
    }
  }
}

/** A response of the host's own: a status and its reason phrase as plain text, nothing of the app's. */
function hostResponse(sink: ResponseSink, status: HostStatus, retryAfter: number | undefined, count: (status: number) => void): void {
  const { status: code, text } = HOST_STATUS[status];
  const bytes = new TextEncoder().encode(text + "\n");
  const headers: Array<[string, string]> = [["content-type", "text/plain; charset=utf-8"], ["content-length", String(bytes.byteLength)]];
  if (retryAfter !== undefined) headers.push(["retry-after", String(retryAfter)]);
  count(code);
  sink.whole({ status: code, statusText: text, headers, body: true }, bytes);
}

/** The body, ended early (with `fail`'s reason) once it passes `maxBytes` or sends nothing for `idleMs`. */
async function* checkedBody(body: AsyncIterable<Uint8Array>, maxBytes: number, idleMs: number, fail: (why: "tooLarge" | "slowBody") => void): AsyncGenerator<Uint8Array> {
  const chunks = body[Symbol.asyncIterator]();
  let total = 0;
  try {
    for (;;) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const idle = new Promise<"idle">((resolve) => (timer = setTimeout(() => resolve("idle"), idleMs)));
      const next = await Promise.race([chunks.next(), idle]).finally(() => clearTimeout(timer));
      if (next === "idle") return fail("slowBody");
      if (next.done) return;
      total += next.value.byteLength;
      if (total > maxBytes) return fail("tooLarge");
      yield next.value;
    }
  } finally {
    void chunks.return?.()?.catch(() => {});
  }
}

/** Statuses whose responses have no body, whatever the app sent. */
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

/** A web Response for App.fetch, its body read as the caller reads it. */
function webSink(resolve: (response: Response) => void): ResponseSink & { onCancel(cancel: () => void): void } {
  const chunks: Array<{ chunk: Uint8Array; passed: () => void }> = [];
  let ended: "end" | "broken" | undefined;
  let cancelled: (() => void) | undefined;
  let waiting: (() => void) | undefined;
  const notify = () => {
    const resume = waiting;
    waiting = undefined;
    resume?.();
  };
  const serve = (controller: ReadableStreamDefaultController<Uint8Array>): boolean => {
    const next = chunks.shift();
    if (next) {
      controller.enqueue(next.chunk);
      next.passed();
    } else if (ended === "end") {
      controller.close();
    } else if (ended === "broken") {
      controller.error(new TypeError("the app's response body broke off"));
    } else {
      return false;
    }
    return true;
  };
  return {
    onCancel(cancel) {
      cancelled = cancel;
    },
    head({ status, statusText, headers, body }) {
      const stream =
        body && !NULL_BODY_STATUS.has(status)
          ? servedStream(
              serve,
              (retry) => (waiting = retry),
              () => {
                ended ??= "end";
                cancelled?.();
              },
            )
          : null;
      try {
        resolve(new Response(stream, { status, statusText, headers }));
      } catch {
        // A head a web Response cannot have (the host checked what it could): 502, as the listener does.
        resolve(new Response("Bad Gateway\n", { status: 502, statusText: "Bad Gateway" }));
      }
    },
    whole(head, body) {
      this.head(head);
      if (body) this.data(body, () => {});
      this.end();
    },
    data(chunk, passed) {
      chunks.push({ chunk, passed });
      notify();
    },
    end() {
      ended ??= "end";
      notify();
    },
    broken() {
      ended ??= "broken";
      notify();
    },
  };
}
