/**
 * Apps in the carrier. An app is a realm that lives as long as the app: its code runs once, and its
 * default export answers every HTTP request after that (the Workers/Deno/Hono convention,
 * `export default { fetch(request, env, ctx) }`, or a function of a Request). Requests arrive as
 * messages, become standard Requests of the realm, and the Responses the app returns stream back;
 * bodies flow both ways within credit the other side gives, so neither side buffers more than a
 * window of bytes for a peer that does not read.
 *
 * The app's scope is the serving eval's, and lives on after it answered: the app's timers, fetches
 * and console output belong to the app, not to one request. A request that never ends, or that
 * loops, is the host's to give up on (it answers 504, and kills the carrier if it stopped reading).
 */
import vm from "node:vm";
import { types } from "node:util";
import { setImmediate } from "node:timers";
import type { Failure, HostMessage } from "../protocol/messages.js";
import { EXCHANGE_CHUNK_BYTES, EXCHANGE_CREDIT_BYTES, EXCHANGE_WINDOW_BYTES, RESPONSE_HEAD_LIMITS as LIMITS } from "../protocol/serve.js";
import { headerListProblem } from "../protocol/limits.js";
import type { Realm } from "./realm.js";
import { carrierFailure, type EvalScope } from "./scope.js";
import { pumpWhileRunning, wake } from "./pump.js";
import { servedStream } from "../shared/served-stream.js";

type RequestMessage = Extract<HostMessage, { t: "request" }>;
type BodyMessage = Extract<HostMessage, { t: "body" }>;

/** What serving needs of the carrier. */
export interface ServeHost {
  send(header: unknown, body?: Uint8Array): void;
  /** A thrown value as the failure the host is told of. */
  describe(error: unknown, scope: EvalScope, realm: Realm, filename: string): Failure;
  /** Runs `work` as code of `realm` (what import() and async context go by). */
  inRealm<T>(realm: Realm, work: () => T): T;
}

interface ResponseHead {
  status: number;
  statusText: string;
  headers: Array<[string, string]>;
}

const LATER = Symbol("later");
/** Resolves after the event loop's next turn: whatever only needed microtasks has happened by then. */
function nextTurn(): Promise<typeof LATER> {
  return new Promise((resolve) => setImmediate(() => resolve(LATER)));
}

function concat(parts: readonly Uint8Array[], bytes: number): Uint8Array {
  const joined = new Uint8Array(bytes);
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.byteLength;
  }
  return joined;
}

type Handler = (request: unknown, onValue: (value: unknown) => void, onError: (error: unknown) => void) => void;
/** Made in a fresh realm before any user code runs there: it holds the realm's own Promise and Reflect.apply. */
export type ServePreparation = (exported: unknown) => Handler | undefined;

const ADAPTER = new vm.Script(
  `(() => {
  "use strict";
  const apply = Reflect.apply, freeze = Object.freeze, RealmPromise = Promise, then = Promise.prototype.then;
  return (exported) => {
    let fetch = exported, self;
    if (typeof exported !== "function") {
      if (exported === null || typeof exported !== "object") return undefined;
      fetch = exported.fetch;
      self = exported;
    }
    if (typeof fetch !== "function") return undefined;
    const env = globalThis.env;
    const ctx = freeze({ waitUntil(promise) {}, passThroughOnException() {} });
    return (request, onValue, onError) => {
      apply(then, new RealmPromise((resolve) => resolve(apply(fetch, self, [request, env, ctx]))), [onValue, onError]);
    };
  };
})()`,
  { filename: "paddock:serve" },
);

interface Served {
  realm: Realm;
  scope: EvalScope;
  filename: string;
  handle: Handler;
  exchanges: Map<number, Exchange>;
  stopPumping: (() => void) | undefined;
}

/** One request on its way through the app, and its response on its way back. */
class Exchange {
  readonly aborter = new AbortController();
  /** Request-body chunks the host sent that the app has not read yet. */
  private readonly chunks: Uint8Array[] = [];
  private bodyEnded = false;
  private bodyWaiter: (() => void) | undefined;
  private unreported = 0;
  /** Response-body bytes the host will take before it grants more. */
  private credit = EXCHANGE_WINDOW_BYTES;
  private creditWaiter: (() => void) | undefined;
  private reader: ReadableStreamDefaultReader<unknown> | undefined;
  over = false;

  constructor(
    readonly id: number,
    readonly req: number,
    private readonly send: (header: unknown, body?: Uint8Array) => void,
    private readonly finished: (exchange: Exchange) => void,
  ) {}

  /** The request's body: the host's chunks, handed out as the app reads, with credit returned. */
  requestBody(): ReadableStream<Uint8Array> {
    const serve = (controller: ReadableStreamDefaultController<Uint8Array>): boolean => {
      const chunk = this.chunks.shift();
      if (chunk) {
        controller.enqueue(chunk);
        this.unreported += chunk.byteLength;
        if (this.unreported >= EXCHANGE_CREDIT_BYTES && !this.over) {
          this.send({ t: "body", id: this.id, req: this.req, op: "credit", bytes: this.unreported });
          this.unreported = 0;
        }
      } else if (this.over) {
        controller.error(new TypeError("the request was aborted"));
      } else if (this.bodyEnded) {
        controller.close();
      } else {
        return false;
      }
      return true;
    };
    return servedStream(serve, (retry) => (this.bodyWaiter = retry));
  }

  /** A message from the host about this exchange. */
  deliver(message: BodyMessage, data: Uint8Array | undefined): void {
    switch (message.op) {
      case "data":
        if (data) this.chunks.push(data.slice());
        break;
      case "end":
        this.bodyEnded = true;
        break;
      case "credit":
        this.credit += message.bytes;
        break;
      case "abort":
        return this.abort();
    }
    this.wakeAll();
  }

  respond(head: ResponseHead, body: ReadableStream<unknown> | null): void {
    if (this.over) return;
    if (body === null) {
      this.send({ t: "response", id: this.id, req: this.req, ok: true, ...head, body: false });
      return this.finish();
    }
    void this.stream(head, body);
  }

  fail(failure: Failure): void {
    if (this.over) return;
    this.send({ t: "response", id: this.id, req: this.req, ok: false, error: failure });
    this.finish();
  }

  /**
   * Streams the response body up, no faster than the host grants credit. What the body gives
   * within one turn of the event loop goes in one frame (up to a chunk's size): a body that is all
   * there at once (most are: a text, a JSON) in the head's own frame, many small writes together;
   * a body still being made sends its head at once, and its chunks as they come.
   */
  private async stream(head: ResponseHead, body: ReadableStream<unknown>): Promise<void> {
    let ending: "end" | "error" = "error";
    let headSent = false;
    const sendHead = (whole?: Uint8Array) => {
      headSent = true;
      this.send({ t: "response", id: this.id, req: this.req, ok: true, ...head, body: true, ...(whole ? { whole: true } : {}) }, whole && whole.byteLength > 0 ? whole : undefined);
    };
    let held: Uint8Array[] = [];
    let heldBytes = 0;
    const take = () => {
      const joined = held.length === 1 ? held[0]! : concat(held, heldBytes);
      held = [];
      heldBytes = 0;
      return joined;
    };
    const sendHeld = async () => {
      if (!headSent) sendHead();
      return heldBytes === 0 || (await this.sendData(take()));
    };
    try {
      const reader = (this.reader = body.getReader());
      let turn: Promise<typeof LATER> | undefined;
      let pending: Promise<ReadableStreamReadResult<unknown>> | undefined;
      for (;;) {
        turn ??= nextTurn();
        const read = pending ?? reader.read();
        pending = undefined;
        const result = await Promise.race([read, turn]);
        if (this.over) return;
        if (result === LATER) {
          // A turn passed and the body has more to come: what it gave so far goes now.
          turn = undefined;
          pending = read;
          if (!(await sendHeld())) return;
          continue;
        }
        if (result.done) {
          if (!headSent) {
            sendHead(take());
            return this.finish();
          }
          if (!(await sendHeld())) return;
          ending = "end";
          break;
        }
        // Chunks must be Uint8Arrays, as for Deno.serve; copied with the carrier's constructor,
        // which never calls back into the realm.
        if (!types.isUint8Array(result.value)) break;
        const bytes = new Uint8Array(result.value);
        held.push(bytes);
        heldBytes += bytes.byteLength;
        if (heldBytes >= EXCHANGE_CHUNK_BYTES) {
          if (!(await sendHeld())) return;
          turn = undefined;
        }
      }
    } catch {
      // The body's stream failed (an error of the app's): the response breaks off.
    }
    if (this.over) return;
    if (!headSent) {
      // It failed before anything was sent: the whole response is the app's failure.
      return this.fail(carrierFailure({ kind: "script", name: "TypeError", message: "the response body failed before its first byte (its chunks must be Uint8Arrays)" }));
    }
    this.send({ t: "body", id: this.id, req: this.req, op: ending });
    this.finish();
  }

  /** Sends `bytes` as body chunks within the host's credit; false if the exchange ended first. */
  private async sendData(bytes: Uint8Array): Promise<boolean> {
    for (let offset = 0; offset < bytes.byteLength; ) {
      const granted = await this.takeCredit(Math.min(EXCHANGE_CHUNK_BYTES, bytes.byteLength - offset));
      if (granted === 0) return false;
      this.send({ t: "body", id: this.id, req: this.req, op: "data" }, bytes.subarray(offset, offset + granted));
      offset += granted;
    }
    return true;
  }

  private async takeCredit(wanted: number): Promise<number> {
    while (!this.over && this.credit === 0) await new Promise<void>((resolve) => (this.creditWaiter = resolve));
    if (this.over) return 0;
    const taken = Math.min(wanted, this.credit);
    this.credit -= taken;
    return taken;
  }

  /** The host gave up: the request's signal aborts, its body fails, the response is no longer read. */
  private abort(): void {
    if (this.over) return;
    this.finish();
    this.aborter.abort(new DOMException("the request was aborted", "AbortError"));
    this.reader?.cancel().catch(() => {});
  }

  private finish(): void {
    if (this.over) return;
    this.over = true;
    this.wakeAll();
    this.finished(this);
  }

  private wakeAll(): void {
    const body = this.bodyWaiter;
    const credit = this.creditWaiter;
    this.bodyWaiter = this.creditWaiter = undefined;
    body?.();
    credit?.();
  }
}

export class Apps {
  private readonly served = new Map<number, Served>();

  constructor(private readonly host: ServeHost) {}

  /** Readies a fresh realm for serving, before any user code runs in it. */
  prepare(realm: Realm): ServePreparation {
    return ADAPTER.runInContext(realm.context) as ServePreparation;
  }

  /** Serves the code's default export under eval `id`; throws (a failure) if it cannot answer requests. */
  serve(id: number, realm: Realm, scope: EvalScope, exported: unknown, filename: string, preparation: ServePreparation): void {
    const handle = preparation(exported);
    if (!handle) {
      const got = exported === null ? "null" : typeof exported;
      throw carrierFailure({
        kind: "script",
        name: "TypeError",
        message: `an app must \`export default\` an object with a fetch(request, env, ctx) method (a Hono app is one), or a function of a Request; its default export is ${got === "object" ? "an object without a fetch method" : got}`,
      });
    }
    this.served.set(id, { realm, scope, filename, handle, exchanges: new Map(), stopPumping: undefined });
  }

  /**
   * Whether an app has work under way: a request in progress, or timers and calls of its own. Then
   * the carrier must not block on its input; an app with none may wait for its next request there.
   */
  isBusy(): boolean {
    // Console output waiting for its flush timer counts too: it must not wait for the next request.
    for (const app of this.served.values()) if (app.exchanges.size > 0 || app.scope.hasPendingWork || app.scope.logs.length > 0) return true;
    return false;
  }

  request(message: RequestMessage): void {
    const app = this.served.get(message.id);
    const exchange = new Exchange(message.id, message.req, this.host.send, (done) => this.finished(app, done));
    if (!app) return exchange.fail(carrierFailure({ kind: "script", name: "Error", message: "no app is served here" }));
    app.exchanges.set(message.req, exchange);
    if (app.stopPumping === undefined) app.stopPumping = pumpWhileRunning(app.realm.context, true);
    let request: Request;
    try {
      request = new Request(message.url, {
        method: message.method,
        headers: message.headers,
        body: message.body ? exchange.requestBody() : null,
        signal: exchange.aborter.signal,
        duplex: "half",
      } as RequestInit);
    } catch (error) {
      return exchange.fail(carrierFailure({ kind: "script", name: "TypeError", message: `the request cannot be represented: ${messageOf(error)}` }));
    }
    const { realm } = app;
    const onValue = (value: unknown) => this.answer(app, exchange, value);
    const onError = (error: unknown) => exchange.fail(this.host.describe(error, app.scope, realm, app.filename));
    try {
      this.host.inRealm(realm, () => app.handle(realm.helpers.membrane.toRealm(request), onValue, onError));
    } catch (error) {
      onError(error);
    }
    wake();
  }

  body(message: BodyMessage, data: Uint8Array | undefined): void {
    this.served.get(message.id)?.exchanges.get(message.req)?.deliver(message, data);
    // Bytes or credit may let the app's code go on (a read of the request body, say): pump soon.
    wake();
  }

  /** What the app's handler resolved to: a Response of the realm's, or the exchange's failure. */
  private answer(app: Served, exchange: Exchange, value: unknown): void {
    const response = app.realm.helpers.outerOf(value);
    const fail = (message: string) => exchange.fail(carrierFailure({ kind: "script", name: "TypeError", message }));
    if (!(response instanceof Response)) return fail(`the fetch handler must return a Response (or a promise of one); it returned ${describe(value)}`);
    if (response.type === "error" || response.status < 200 || response.status > 599) return fail("the fetch handler returned Response.error()");
    const headers = [...response.headers];
    const problem = oversized(headers, response.statusText);
    if (problem) return fail(`the response cannot be sent: ${problem}`);
    exchange.respond({ status: response.status, statusText: response.statusText, headers }, response.body);
  }

  private finished(app: Served | undefined, exchange: Exchange): void {
    if (!app || app.exchanges.get(exchange.req) !== exchange) return;
    app.exchanges.delete(exchange.req);
    if (app.exchanges.size === 0) {
      app.stopPumping?.();
      app.stopPumping = undefined;
    }
  }
}

function oversized(headers: Array<[string, string]>, statusText: string): string | undefined {
  if (statusText.length > LIMITS.statusTextChars) return `its status text is longer than ${LIMITS.statusTextChars} characters`;
  return headerListProblem(headers, LIMITS, "response");
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value !== "object") return typeof value === "function" ? "a function" : typeof value === "string" ? "a string" : String(typeof value);
  return "an object that is not a Response";
}

function messageOf(error: unknown): string {
  try {
    return String((error as Error).message);
  } catch {
    return "invalid request";
  }
}
