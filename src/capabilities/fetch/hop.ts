/**
 * One hop of a fetch as undici delivers it: its head first, then its body, which is held here until
 * the exchange decides what becomes of it (relayed to the sandbox, or dropped for a redirect).
 * A small response usually arrives whole in one read, so by the time the head is looked at, its
 * body is complete, and it can go to the sandbox in the same frame as the head.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { Dispatcher } from "undici";

export interface HopHead {
  status: number;
  statusText: string;
  headers: IncomingHttpHeaders;
}

/** Where the body goes once the exchange takes it. */
export interface BodySink {
  /** False while the sink wants no more data (it will resume the hop itself). */
  readonly flowing: boolean;
  data(chunk: Buffer): void;
  end(): void;
  error(error: Error): void;
}

/** Body bytes held before anyone takes the body: beyond this, the connection is paused. */
const HOLD_BYTES = 256 * 1024;
const DISCARDED = new Error("the body was not wanted");

export class Hop implements Dispatcher.DispatchHandler {
  /** Resolves when the response's head arrives; rejects if the request fails before that. */
  readonly head: Promise<HopHead>;
  /** Body bytes as they came over the wire. */
  bytesIn = 0;
  private controller: Dispatcher.DispatchController | undefined;
  private held: Buffer[] = [];
  private heldBytes = 0;
  private ended = false;
  private failure: Error | undefined;
  private started = false;
  private sink: BodySink | undefined;
  private resolveHead!: (head: HopHead) => void;
  private rejectHead!: (error: Error) => void;

  private abortReason: Error | undefined;

  constructor() {
    this.head = new Promise((resolve, reject) => {
      this.resolveHead = resolve;
      this.rejectHead = reject;
    });
    this.head.catch(() => {});
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.abortReason) controller.abort(this.abortReason);
  }

  /** Stops the request (and its connection), whatever stage it is at. */
  abort(reason: Error): void {
    this.abortReason ??= reason;
    this.held = [];
    if (this.controller && !this.ended && !this.failure) this.controller.abort(reason);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders, statusText?: string): void {
    this.started = true;
    this.resolveHead({ status, statusText: statusText ?? "", headers });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.bytesIn += chunk.byteLength;
    if (this.sink) return this.sink.data(chunk);
    this.held.push(chunk);
    this.heldBytes += chunk.byteLength;
    if (this.heldBytes >= HOLD_BYTES) controller.pause();
  }

  onResponseEnd(): void {
    this.ended = true;
    this.sink?.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    if (!this.started) return this.rejectHead(error);
    this.failure = error;
    this.sink?.error(error);
  }

  /** True once the whole body has arrived (what has is in `heldChunks` until someone takes it). */
  get complete(): boolean {
    return this.ended;
  }

  get heldChunks(): readonly Buffer[] {
    return this.held;
  }

  /** Takes the body: what was held first, then the rest as it comes. */
  pipeTo(sink: BodySink): void {
    this.sink = sink;
    const held = this.held;
    this.held = [];
    for (const chunk of held) sink.data(chunk);
    if (this.failure) sink.error(this.failure);
    else if (this.ended) sink.end();
    else if (sink.flowing) this.controller?.resume();
  }

  pause(): void {
    this.controller?.pause();
  }

  resume(): void {
    this.controller?.resume();
  }

  /** Drops the body (a redirect, or a body nobody reads). */
  discard(): void {
    this.abort(DISCARDED);
  }
}
