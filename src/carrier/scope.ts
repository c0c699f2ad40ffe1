/**
 * One eval's life inside the carrier: its logs, its timers, its capability calls, its deadline.
 * Capabilities get the scope, never the carrier: when the eval ends the scope dies, and whatever
 * the realm left behind (timers, pending promises) can no longer reach the host or another eval.
 */
import type { FailureKind, Failure, EvalLimits, CallError, CallStreamOp } from "../protocol/messages.js";
import type { LogEntry } from "../capabilities/console/messages.js";

/** Thrown (and recorded) when an eval breaks one of its limits. Frozen: user code may catch it. */
export class LimitBreach extends Error {
  constructor(readonly kind: FailureKind, readonly errorName: string, message: string) {
    super(message);
    Object.freeze(this);
  }
}

/**
 * Failure records the carrier itself made. User code can build objects of the same shape (even
 * with the carrier realm's prototypes, through structuredClone), so only these are trusted.
 */
const carrierFailures = new WeakSet<Failure>();

export function carrierFailure(failure: Failure): Failure {
  carrierFailures.add(Object.freeze(failure));
  return failure;
}

export function isCarrierFailure(value: unknown): value is Failure {
  return typeof value === "object" && value !== null && carrierFailures.has(value as Failure);
}

export interface CallResult {
  value: unknown;
  /** Bytes that came with the reply (copied: user code may keep them). */
  body: Uint8Array | undefined;
}

/** A capability call in progress: its reply, and the streams that may go on after it. */
export interface CallHandle {
  /** Settles with the host's reply: its value and bytes, or its CallError. */
  readonly reply: Promise<CallResult>;
  /** False once the call is over for the carrier (its stream ended, or its eval did). */
  readonly isOpen: boolean;
  /** Streams more of the call up: payload "data" and "end", read "credit", or "cancel". */
  send(op: CallStreamOp, data?: Uint8Array, bytes?: number): void;
  /** Receives the call's result streaming down, after an ok reply (events that came first, too). */
  listen(listener: (event: CallStreamEvent) => void): void;
  /**
   * Takes up to `wanted` bytes of the credit the host gives for the call's payload, waiting for
   * some if there is none; 0 once the call is over.
   */
  takeCredit(wanted: number): Promise<number>;
  /**
   * Ends the call for the carrier once its reply is all the capability wants (a call that can
   * stream on after its reply stays open until its stream ends): it leaves its scope, which for an
   * app's lasts long.
   */
  close(): void;
}

export type CallStreamEvent = { op: "data"; data: Uint8Array } | { op: "end" } | { op: "error"; error: CallError };

export interface HostCaller {
  call(scope: EvalScope, cap: string, args: unknown, body?: Uint8Array): CallHandle;
  flushLogs(scope: EvalScope): void;
}

export class EvalScope {
  readonly startedAt = performance.now();
  logs: LogEntry[] = [];
  logBytes = 0;
  private alive = true;
  private failure: Failure | undefined;
  private rejectAbort!: (reason: Failure) => void;
  /** Rejects with the first failure recorded by a capability; raced against the eval itself. */
  readonly aborted = new Promise<never>((_, reject) => {
    this.rejectAbort = reject;
  });
  private readonly cleanups = new Set<() => void>();
  private flushTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly id: number,
    readonly limits: EvalLimits,
    private readonly host: HostCaller,
    /** The eval's file name, as its stacks show it. */
    readonly filename = "",
    /**
     * An app's scope, which lasts as long as the app: a limit broken does not end it (the call that
     * broke it fails), and its console output is limited per flush rather than in all.
     */
    private readonly lasting = false,
  ) {
    this.aborted.catch(() => {});
  }

  /** Work the eval started and left running (timers, capability calls): ended with it. */
  get hasPendingWork(): boolean {
    return this.cleanups.size > 0;
  }

  get isAlive(): boolean {
    return this.alive;
  }

  get recordedFailure(): Failure | undefined {
    return this.failure;
  }

  elapsedMs(): number {
    return performance.now() - this.startedAt;
  }

  /** Ends the eval with `failure` (the first one wins). */
  fail(failure: Failure): void {
    if (!this.alive || this.failure || this.lasting) return;
    this.failure = carrierFailure(failure);
    this.rejectAbort(this.failure);
  }

  breach(kind: FailureKind, errorName: string, message: string): LimitBreach {
    this.fail({ kind, name: errorName, message });
    return new LimitBreach(kind, errorName, message);
  }

  addLog(entry: LogEntry): void {
    this.logs.push(entry);
    if (this.flushTimer === undefined) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        if (this.alive && this.logs.length > 0) this.host.flushLogs(this);
      }, 50);
    }
  }

  takeLogs(): LogEntry[] {
    const logs = this.logs;
    this.logs = [];
    if (this.lasting) this.logBytes = 0;
    return logs;
  }

  /** Asks the host; only a live eval may (check `isAlive` first). */
  call(cap: string, args: unknown, body?: Uint8Array): CallHandle {
    if (!this.alive) throw new Error("this eval has ended");
    return this.host.call(this, cap, args, body);
  }

  /** Registers work to undo when the eval ends (a pending timer, say). Returns the unregister. */
  onEnd(cleanup: () => void): () => void {
    this.cleanups.add(cleanup);
    return () => this.cleanups.delete(cleanup);
  }

  /**
   * Ends the eval and undoes its work. Calling it again finishes what an interrupted call left (a
   * batch's item scope may be ended under a vm timeout, see batch.ts).
   */
  end(): void {
    if (this.alive) {
      this.alive = false;
      if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    }
    for (const cleanup of this.cleanups) {
      this.cleanups.delete(cleanup);
      cleanup();
    }
  }
}
