/**
 * The host end of one capability call. A call can outlive its reply (a response body streaming
 * down) and take input after it started (a request body streaming up); the port carries both,
 * in order, and is closed when the call's eval ends, whatever the capability was doing.
 */
import type { CallError, CallStreamOp, HostMessage } from "../protocol/messages.js";

export type StreamListener = (op: CallStreamOp, data: Uint8Array | undefined, bytes: number | undefined) => void;

/** What a port needs of its carrier's pipe. */
export interface PortPipe {
  /** Writes a frame; false when the pipe is backed up (the carrier is not reading). */
  send(message: HostMessage, body?: Uint8Array): boolean;
  /**
   * Writes a frame after the current turn of the event loop, in one write with the others sent so
   * that turn (an app's requests under load); `send` writes what waits first, so order is kept.
   */
  sendSoon(message: HostMessage, body?: Uint8Array): void;
  whenDrained(): Promise<void>;
  /** The carrier broke the call's protocol (sent more than it was allowed): it is killed. */
  violation(what: string): void;
}

export class CallPort {
  private open = true;
  private readonly closeListeners: Array<() => void> = [];
  private listener: StreamListener | undefined;
  /** Frames pushed before the reply went out: they must not overtake it. */
  private held: Array<[HostMessage, Uint8Array | undefined]> | undefined = [];

  constructor(
    readonly id: number,
    /** The payload that came with the call frame (an inline request body). */
    readonly body: Uint8Array | undefined,
    private readonly pipe: PortPipe,
    private readonly onFinish: (port: CallPort) => void,
  ) {}

  /** False once the call is over for the host: its eval ended, its carrier died, or it finished. */
  get isOpen(): boolean {
    return this.open;
  }

  /** Runs `listener` when the call is over (at once if it already is). */
  onClose(listener: () => void): void {
    if (this.open) this.closeListeners.push(listener);
    else listener();
  }

  /** Receives the carrier's stream messages for this call; must be set before the handler awaits. */
  listen(listener: StreamListener): void {
    this.listener = listener;
  }

  /** Called by the carrier link with each stream message about this call. */
  deliver(op: CallStreamOp, data: Uint8Array | undefined, bytes: number | undefined): void {
    if (this.isOpen) this.listener?.(op, data, bytes);
  }

  /** Called by the carrier link once the reply is written: held stream frames may follow it. */
  replied(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const [message, body] of held) this.pipe.send(message, body);
  }

  /** Sends a chunk of the call's result down. False: wait for `whenWritable()` before the next. */
  push(data: Uint8Array): boolean {
    return this.write({ t: "stream", call: this.id, op: "data" }, data);
  }

  whenWritable(): Promise<void> {
    return this.pipe.whenDrained();
  }

  /** Lets the carrier stream `bytes` more of the call's payload up (not held: it may precede the reply). */
  grant(bytes: number): void {
    if (this.open) this.pipe.send({ t: "stream", call: this.id, op: "credit", bytes });
  }

  /** The carrier sent what it had no right to send for this call. */
  violation(what: string): void {
    this.pipe.violation(what);
  }

  end(): void {
    this.write({ t: "stream", call: this.id, op: "end" });
    this.finish();
  }

  fail(error: CallError): void {
    this.write({ t: "stream", call: this.id, op: "error", error });
    this.finish();
  }

  /** Ends the call without a word to the carrier (its eval is over, or it has gone). */
  finish(): void {
    if (!this.open) return;
    this.open = false;
    this.onFinish(this);
    for (const listener of this.closeListeners) listener();
  }

  private write(message: HostMessage, body?: Uint8Array): boolean {
    if (!this.isOpen) return true;
    if (this.held) {
      this.held.push([message, body]);
      return true;
    }
    return this.pipe.send(message, body);
  }
}
