/**
 * The host's side of an app served by a carrier (see src/carrier/serve.ts): HTTP exchanges sent
 * as messages, each answered by a response head and a body, with flow control both ways. Everything
 * the carrier says about an exchange is checked: a response for a request never made, a second
 * head, body bytes beyond the credit given or after the end are a broken protocol, and the carrier
 * is killed for it.
 */
import type { PortPipe } from "./call-port.js";
import type { ExchangeUpMessage, Failure, ResponseMessage } from "../protocol/messages.js";
import { EXCHANGE_CHUNK_BYTES, EXCHANGE_WINDOW_BYTES } from "../protocol/serve.js";

export interface ExchangeHead {
  method: string;
  url: string;
  headers: Array<[string, string]>;
  /** A body follows (see Exchange.writeBody). */
  body: boolean;
}

export interface ResponseHead {
  status: number;
  statusText: string;
  headers: Array<[string, string]>;
  /** A body follows (onData, then onEnd or onBroken). */
  body: boolean;
}

/** What an exchange tells its user, in this order: a head or a failure; then, with a body, its bytes and their end. */
export interface ExchangeEvents {
  onResponse(head: ResponseHead): void;
  /** The whole response at once (its body came in the head's frame); nothing follows. */
  onWhole(head: ResponseHead, body: Uint8Array | undefined): void;
  /** No response will come: the app failed (its error), or its carrier is gone (undefined). */
  onFailure(failure: Failure | undefined): void;
  /** Response-body bytes; Exchange.grant them once they are passed on. */
  onData(chunk: Uint8Array): void;
  onEnd(): void;
  /** The response body broke off: the app's stream failed, or its carrier is gone. */
  onBroken(): void;
}

/** Aborted exchanges remembered, so that what the carrier sent before it heard of the abort is not taken for a lie. */
const ABORTED_KEPT = 4096;

/** Exchanges with one served app, on one carrier. */
export class ServeLink {
  private pipe: PortPipe | undefined;
  private id = 0;
  private lastReq = 0;
  private readonly exchanges = new Map<number, Exchange>();
  /** Exchanges the host gave up lately (see deliver). */
  private readonly aborted = new Set<number>();
  private over = false;

  constructor(private readonly onEnded: () => void) {}

  /** The app answers from now on, as eval `id` of the carrier behind `pipe`. @internal (Carrier) */
  started(pipe: PortPipe, id: number): void {
    this.pipe = pipe;
    this.id = id;
  }

  get isOpen(): boolean {
    return this.pipe !== undefined && !this.over;
  }

  /** Exchanges in progress. */
  get size(): number {
    return this.exchanges.size;
  }

  /** Sends a request to the app; its answer comes as `events`. */
  open(head: ExchangeHead, events: ExchangeEvents): Exchange {
    const req = ++this.lastReq;
    const exchange = new Exchange(this, req, head.body, events);
    if (!this.isOpen) {
      queueMicrotask(() => events.onFailure(undefined));
      return exchange;
    }
    this.exchanges.set(req, exchange);
    this.send({ t: "request", id: this.id, req, method: head.method, url: head.url, headers: head.headers, body: head.body });
    return exchange;
  }

  /** A message of the carrier about one of this app's exchanges. @internal (Carrier) */
  deliver(message: ResponseMessage | ExchangeUpMessage, body: Uint8Array | undefined): void {
    if (message.req > this.lastReq) return this.violation(`a message about request ${message.req}, which was never sent`);
    const exchange = this.exchanges.get(message.req);
    if (!exchange) {
      // A message about an exchange the host gave up may cross the host's abort: it is late, not
      // forged. Anything else about an exchange that is over is.
      if (this.aborted.has(message.req)) return;
      return this.violation(`a message about request ${message.req}, which is over`);
    }
    const problem = message.t === "response" ? exchange.onResponse(message, body) : exchange.onUp(message, body);
    if (problem) this.violation(problem);
  }

  /** The carrier is gone (or the app stopped): every exchange in progress fails. @internal (Carrier) */
  end(): void {
    if (this.over) return;
    this.over = true;
    const open = [...this.exchanges.values()];
    this.exchanges.clear();
    for (const exchange of open) exchange.lost();
    this.onEnded();
  }

  /** @internal (Exchange) */
  send(message: Parameters<PortPipe["send"]>[0], body?: Uint8Array): void {
    if (this.isOpen) this.pipe!.sendSoon(message, body);
  }

  /** @internal (Exchange) */
  whenDrained(): Promise<void> {
    return this.pipe?.whenDrained() ?? Promise.resolve();
  }

  /** @internal (Exchange) */
  forget(req: number, aborted: boolean): void {
    this.exchanges.delete(req);
    if (!aborted) return;
    this.aborted.add(req);
    // The carrier's messages sent before it read the abort come soon after: the latest few are enough.
    if (this.aborted.size > ABORTED_KEPT) this.aborted.delete(this.aborted.values().next().value!);
  }

  /** @internal (Exchange) */
  get appId(): number {
    return this.id;
  }

  private violation(what: string): void {
    this.pipe?.violation(what);
  }
}

/** One request and its response. */
export class Exchange {
  /** Request-body bytes the carrier will take before it grants more. */
  private requestCredit = EXCHANGE_WINDOW_BYTES;
  private creditWaiter: (() => void) | undefined;
  /** Response-body bytes the carrier may still send. */
  private responseAllowance = EXCHANGE_WINDOW_BYTES;
  private state: "head" | "body" | "done" = "head";

  constructor(
    private readonly link: ServeLink,
    readonly req: number,
    private readonly hasBody: boolean,
    private readonly events: ExchangeEvents,
  ) {}

  /** False once the response is complete, failed, or given up. */
  get isOpen(): boolean {
    return this.state !== "done";
  }

  /**
   * Streams the request body to the app, no faster than it reads. Stops early (without an end)
   * if the exchange is over first; a source that fails aborts the exchange.
   */
  async writeBody(source: AsyncIterable<Uint8Array>): Promise<void> {
    if (!this.hasBody) throw new Error("paddock: a body for a request sent without one");
    try {
      for await (const chunk of source) {
        for (let offset = 0; offset < chunk.byteLength; ) {
          const granted = await this.takeCredit(Math.min(EXCHANGE_CHUNK_BYTES, chunk.byteLength - offset));
          if (granted === 0) return;
          this.link.send({ t: "body", id: this.link.appId, req: this.req, op: "data" }, chunk.subarray(offset, offset + granted));
          offset += granted;
        }
        // The pipe to the carrier is backed up: wait, rather than buffer a fast client's body.
        await this.link.whenDrained();
        if (!this.isOpen) return;
      }
    } catch {
      return this.abort();
    }
    if (this.isOpen) this.link.send({ t: "body", id: this.link.appId, req: this.req, op: "end" });
  }

  /** `bytes` of the response body were passed on: the carrier may send as many more. */
  grant(bytes: number): void {
    if (this.state !== "body" || bytes <= 0) return;
    this.responseAllowance += bytes;
    this.link.send({ t: "body", id: this.link.appId, req: this.req, op: "credit", bytes });
  }

  /** Gives the exchange up (a timeout, a client gone): the app's request is aborted. No event follows. */
  abort(): void {
    if (this.state === "done") return;
    this.close(true);
    this.link.send({ t: "body", id: this.link.appId, req: this.req, op: "abort" });
  }

  /** @internal (ServeLink) */
  onResponse(message: ResponseMessage, body: Uint8Array | undefined): string | undefined {
    if (this.state !== "head") return `a second response to request ${this.req}`;
    if (body && !(message.ok && message.whole)) return "a response head with a frame body";
    if (!message.ok) {
      this.close();
      this.events.onFailure(message.error);
      return undefined;
    }
    const { status, statusText, headers } = message;
    if (message.whole) {
      if (!message.body) return "a whole body for a response without one";
      if (body && body.byteLength > EXCHANGE_WINDOW_BYTES) return "a whole response body larger than the host's credit";
      this.close();
      this.events.onWhole({ status, statusText, headers, body: true }, body);
      return undefined;
    }
    if (message.body) this.state = "body";
    else this.close();
    this.events.onResponse({ status, statusText, headers, body: message.body });
    return undefined;
  }

  /** @internal (ServeLink) */
  onUp(message: ExchangeUpMessage, body: Uint8Array | undefined): string | undefined {
    if ((message.op === "data") !== (body !== undefined)) return `a "${message.op}" body message ${body ? "with" : "without"} a frame body`;
    if (message.op === "credit") {
      if (message.bytes === undefined) return "request-body credit without a size";
      this.requestCredit += message.bytes;
      this.wake();
      return undefined;
    }
    if (message.bytes !== undefined) return `a "${message.op}" body message with a size`;
    if (this.state !== "body") return `response-body bytes for request ${this.req}, whose response has no body (or has ended)`;
    if (message.op === "data") {
      this.responseAllowance -= body!.byteLength;
      if (this.responseAllowance < 0) return "more response-body bytes than the host gave credit for";
      this.events.onData(body!);
      return undefined;
    }
    this.close();
    if (message.op === "end") this.events.onEnd();
    else this.events.onBroken();
    return undefined;
  }

  /** @internal (ServeLink): the carrier is gone. */
  lost(): void {
    const state = this.state;
    if (state === "done") return;
    this.state = "done";
    this.wake();
    if (state === "head") this.events.onFailure(undefined);
    else this.events.onBroken();
  }

  private close(aborted = false): void {
    this.state = "done";
    this.link.forget(this.req, aborted);
    this.wake();
  }

  private async takeCredit(wanted: number): Promise<number> {
    while (this.isOpen && this.requestCredit === 0) await new Promise<void>((resolve) => (this.creditWaiter = resolve));
    if (!this.isOpen) return 0;
    const taken = Math.min(wanted, this.requestCredit);
    this.requestCredit -= taken;
    return taken;
  }

  private wake(): void {
    const waiter = this.creditWaiter;
    this.creditWaiter = undefined;
    waiter?.();
  }
}
