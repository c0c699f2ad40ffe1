/**
 * Kept functions and their batches. A kept function is the default export of code evaluated once
 * in a realm of its own, which lives as long as the function: every item of every batch calls it
 * there, so module-level state persists from item to item. Items are isolated from each other's
 * failures: what one throws, returns or takes too long over is that item's error alone, and work
 * it leaves running (timers, calls it did not await) ends with it.
 *
 * An item's time limit is enforced with node:vm's timeout around a chunk of items: the chunk stops
 * starting items after half the limit, and the timeout is one and a half limits, so an item
 * stopped by it has run for at least the whole limit. Everything that can run user code (the
 * function, its result's toJSON and getters, a promise's species, a thrown error's getters) runs
 * inside a chunk. Progress goes to the host after a few ms of work (and, "careful", after every
 * item): if the carrier dies, the host knows what was done.
 */
import vm from "node:vm";
import { types } from "node:util";
import { setImmediate } from "node:timers";
import type { Failure, HostMessage } from "../protocol/messages.js";
import { BATCH_DURATION_BUCKETS, BATCH_REPORT_CHARS, BATCH_REPORT_MS, chunkTimeoutMs, durationBucket } from "../protocol/batch.js";
import type { LogLevel } from "../capabilities/console/messages.js";
import { isOverUtf8Bytes } from "../protocol/limits.js";
import type { Realm } from "./realm.js";
import { EvalScope, carrierFailure, type HostCaller } from "./scope.js";
import { pumpWhileRunning } from "./pump.js";

type BatchRequest = Extract<HostMessage, { t: "batch" }>;
type ItemFailure = Failure & { i: number };

/** What batches need of the carrier. */
export interface BatchHost {
  send(header: unknown, body?: Uint8Array): void;
  caller: HostCaller;
  /** A thrown value (or a timeout) as the failure the host is told of. */
  describe(error: unknown, scope: EvalScope, realm: Realm, filename: string): Failure;
  cpuMs(): number;
  /** Runs `work` as code of `realm` (what import() and async context go by). */
  inRealm<T>(realm: Realm, work: () => T): T;
  /** A batch went asynchronous (+1) or came back (-1): the carrier must not block on its input meanwhile. */
  busy(delta: 1 | -1): void;
  /** Evals running on the carrier (compiling a function, say): batches wait for them (see Batches.evalsDone). */
  evalsRunning(): number;
}

/** What a realm that will keep a function gives it, taken before any user code runs in the realm. */
export interface KeepPreparation {
  parse: (text: string) => unknown;
  /** The realm's own Promise.prototype.then: an item's promise is subscribed to with it, not with its own `then`. */
  then: (this: unknown, onFulfilled: (value: unknown) => void, onRejected: (error: unknown) => void) => unknown;
}

interface Kept extends KeepPreparation {
  fn: (item: unknown) => unknown;
  realm: Realm;
  filename: string;
}

/** How an item's promise settled, as the carrier recorded it (never an object user code made). */
type Settled = { value: unknown } | { error: unknown };

const ENTRY = "$paddock$batch";
const enter = new vm.Script(`${ENTRY}()`, { filename: "paddock:batch" });
const encoder = new TextEncoder();
const utf8Length = (text: string) => encoder.encode(text).byteLength;
const decoder = new TextDecoder();

export class Batches {
  private readonly kept = new Map<number, Kept>();
  private readonly queue: Array<{ request: BatchRequest; body: Uint8Array | undefined }> = [];
  private active: BatchRun | undefined;

  constructor(private readonly host: BatchHost) {}

  /**
   * Readies a fresh realm for keeping its code's default export: the entry point chunks run through
   * (fixed, so code cannot replace it, and doing nothing unless the carrier itself just entered it),
   * the realm's own JSON.parse (items become the realm's objects) and Promise.prototype.then.
   */
  prepare(realm: Realm): KeepPreparation {
    const step = () => this.active?.enteredByCarrier();
    const entry = vm.runInContext("(step) => () => { step(); }", realm.context) as (step: () => void) => () => void;
    Object.defineProperty(realm.global, ENTRY, { value: entry(step), writable: false, configurable: false, enumerable: false });
    return {
      parse: vm.runInContext("JSON.parse", realm.context) as KeepPreparation["parse"],
      then: vm.runInContext("Promise.prototype.then", realm.context) as KeepPreparation["then"],
    };
  }

  keep(version: number, realm: Realm, value: unknown, filename: string, preparation: KeepPreparation): void {
    if (typeof value !== "function") {
      const got = value === null ? "null" : typeof value;
      throw carrierFailure({ kind: "script", name: "TypeError", message: `the code must \`export default\` a function of one message (its default export is ${got})` });
    }
    this.kept.set(version, { ...preparation, fn: value as Kept["fn"], realm, filename });
  }

  drop(version: number): void {
    this.kept.delete(version);
  }

  run(request: BatchRequest, body: Uint8Array | undefined): void {
    this.queue.push({ request, body });
    if (!this.active) this.next();
  }

  /**
   * The carrier's evals are over: a batch that waited for them goes on. (Batches and evals share
   * the carrier's one thread; the host counts an eval's time as the batch's silence, see Carrier.)
   */
  evalsDone(): void {
    const waiting = this.resumeAfterEvals;
    this.resumeAfterEvals = undefined;
    waiting?.();
  }

  /** Set while the active batch waits for the carrier's evals to end. */
  resumeAfterEvals: (() => void) | undefined;

  private next(): void {
    const job = this.queue.shift();
    if (!job) return;
    const { request, body } = job;
    const kept = this.kept.get(request.version);
    if (!kept) {
      this.host.send({ t: "progress", id: request.id, from: 0, n: 0, missing: true, end: { cpuMs: 0, durations: [] } });
      return this.next();
    }
    const lines = request.count === 0 ? [] : body ? decoder.decode(body).split("\n") : [""];
    this.active = new BatchRun(request, lines, kept, this.host, (resume) => (this.resumeAfterEvals = resume), () => {
      this.active = undefined;
      this.next();
    });
    this.active.drive();
  }
}

/** One batch on its way through its items. */
class BatchRun {
  private i = 0;
  /** The first item not yet reported. */
  private from = 0;
  private parts: string[] = [];
  private empty: number[] = [];
  private errors: ItemFailure[] = [];
  private logs: Array<{ i: number; level: LogLevel; message: string }> = [];
  /** Careful batches report each item's time. */
  private times: number[] = [];
  private pendingChars = 0;
  private lastFlush = performance.now();
  private flushDue = false;
  /** The clock at the last item's end (see loop). */
  private now = 0;
  /** When the last item to start started, and which it was (-1: none yet). */
  private started = 0;
  private startedIndex = -1;
  /** The running item returned a promise: its settlement, once it comes. */
  private awaiting: Promise<Settled> | undefined;
  private resumed: Settled | undefined;
  /** Set just before the carrier enters the realm for a chunk, and taken by that entry. */
  private armed = false;
  /** The running item made a capability call. */
  private reachedOut = false;
  private inLoop = false;
  private scope: EvalScope;
  /** Scopes of items that left work behind: ended at once, and again after the chunk (in case its timeout cut the first end short). */
  private retired: EvalScope[] = [];
  private readonly caller: HostCaller;
  private readonly durations = new Uint32Array(BATCH_DURATION_BUCKETS);
  private readonly cpuStart: number;
  private readonly limitMs: number;

  constructor(
    private readonly request: BatchRequest,
    private readonly lines: string[],
    private readonly kept: Kept,
    private readonly host: BatchHost,
    private readonly waitForEvals: (resume: () => void) => void,
    private readonly done: () => void,
  ) {
    this.cpuStart = host.cpuMs();
    this.limitMs = request.limits.timeoutMs;
    this.caller = {
      call: (scope, cap, args, body) => {
        // What the items before it did is reported before an item reaches the world, and the
        // item itself once it is done: an item with effects is never run again after a death
        // unless it was the one running.
        if (this.parts.length > 0) this.flush(false);
        this.reachedOut = true;
        return host.caller.call(scope, cap, args, body);
      },
      // Items' console output travels in the reports, never on its own.
      flushLogs: () => {},
    };
    this.scope = this.newScope();
    if (lines.length !== request.count) throw new Error(`batch ${request.id} holds ${lines.length} items, not ${request.count}`);
  }

  /**
   * Runs chunks until the batch ends or waits for an item's promise. After each report the rest
   * goes on in a later task: what else the carrier has to do (an eval compiling the next version,
   * its timers, reading the next frames) is not held up by a long batch.
   */
  drive(): void {
    for (;;) {
      if (this.host.evalsRunning() > 0) {
        this.host.busy(1);
        return this.waitForEvals(() => {
          this.host.busy(-1);
          this.drive();
        });
      }
      this.runChunk();
      this.endRetired();
      let pause: Promise<unknown> | undefined;
      if (this.flushDue) {
        this.flush(false);
        if (!this.awaiting && this.i < this.lines.length) pause = new Promise((resolve) => setImmediate(resolve));
      }
      if (this.awaiting) pause = this.awaitItem(this.awaiting);
      if (pause) {
        this.host.busy(1);
        void pause.then(() => {
          this.host.busy(-1);
          this.endRetired();
          this.drive();
        });
        return;
      }
      if (this.i >= this.lines.length) return this.finish();
    }
  }

  /** The realm's entry point: runs the chunk only when the carrier itself entered it. */
  enteredByCarrier(): void {
    if (!this.armed) return;
    this.armed = false;
    this.loop();
  }

  /** The body of a chunk, run inside the realm's entry (so that the chunk's timeout covers it). */
  private loop(): void {
    if (this.inLoop) return;
    this.inLoop = true;
    const { fn, parse, then } = this.kept;
    const careful = this.request.careful;
    try {
      // One clock reading per item: the end of one is the start of the next.
      this.now = performance.now();
      const chunkStart = this.now;
      const resumed = this.resumed;
      if (resumed) {
        this.resumed = undefined;
        if ("error" in resumed) this.fail(resumed.error);
        else this.settle(resumed.value);
      }
      const cut = this.limitMs / 2;
      while (this.i < this.lines.length) {
        const start = this.now;
        if (start - chunkStart > cut) return;
        if (this.flushDue || start - this.lastFlush >= BATCH_REPORT_MS || this.pendingChars >= BATCH_REPORT_CHARS || (careful && this.i > this.from)) {
          this.flushDue = true;
          return;
        }
        this.started = start;
        this.startedIndex = this.i;
        let item: unknown;
        try {
          item = parse(this.lines[this.i]!);
        } catch (error) {
          this.commitFailure({ kind: "script", name: "TypeError", message: `the message is not JSON (${String((error as Error).message)})` });
          continue;
        }
        // The item's scope is live only while the item runs (or is awaited): work an earlier
        // item queued and left behind cannot log or fail in a later item's name.
        this.kept.realm.slot.scope = this.scope;
        try {
          const value = fn(item);
          if (!types.isPromise(value)) {
            this.settle(value);
            continue;
          }
          // Subscribed here, inside the chunk: the promise's species (user code) runs under the timeout.
          let record!: (settled: Settled) => void;
          const settled = new Promise<Settled>((resolve) => (record = resolve));
          Reflect.apply(then, value, [(value: unknown) => record({ value }), (error: unknown) => record({ error })]);
          this.awaiting = settled;
          return;
        } catch (error) {
          this.fail(error);
        }
      }
    } finally {
      this.inLoop = false;
    }
  }

  /** One chunk of items under the vm timeout; an item it stops is that item's TimeoutError. */
  private runChunk(): void {
    try {
      this.armed = true;
      this.host.inRealm(this.kept.realm, () => enter.runInContext(this.kept.realm.context, { timeout: chunkTimeoutMs(this.limitMs) }));
    } catch (error) {
      // Terminated: no `finally` ran inside, and the item may have been stopped halfway through
      // its own bookkeeping (which records its text, then counts it: see commit()).
      this.inLoop = false;
      this.awaiting = undefined;
      this.resumed = undefined;
      if (this.request.careful) this.times.length = Math.min(this.times.length, this.parts.length);
      while (this.errors.at(-1)?.i === this.from + this.parts.length) this.errors.pop();
      while (this.empty.at(-1) === this.from + this.parts.length) this.empty.pop();
      if (this.from + this.parts.length > this.i) {
        this.i = this.from + this.parts.length;
      } else if (this.startedIndex === this.i) {
        this.commitFailure(isVmTimeout(error) ? this.timeoutFailure() : this.host.describe(error, this.scope, this.kept.realm, this.kept.filename), true);
      }
    } finally {
      this.armed = false;
    }
  }

  /** Waits for an item's promise, up to the rest of its time limit, pumping its realm meanwhile. */
  private async awaitItem(settled: Promise<Settled>): Promise<void> {
    this.awaiting = undefined;
    const left = Math.max(0, this.limitMs - (performance.now() - this.started));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), left)));
    this.kept.realm.slot.scope = this.scope;
    const stopPumping = pumpWhileRunning(this.kept.realm.context);
    try {
      const outcome = await Promise.race([settled, this.scope.aborted, late]);
      // The settlement is handled in the next chunk (its value's encoding, its error's description
      // may run user code).
      if (outcome === "late") this.commitFailure(this.timeoutFailure(), true);
      else this.resumed = outcome;
    } catch (failure) {
      // A limit a capability recorded (scope.aborted): the carrier's own failure, no user code.
      this.commitFailure(failure as Failure, true);
    } finally {
      clearTimeout(timer);
      stopPumping();
    }
  }

  /** An item's value, encoded; or its failure if it cannot be encoded. */
  private settle(value: unknown): void {
    let text = "";
    let failure: Failure | undefined;
    if (value === undefined) {
      // dropped
    } else if (typeof value === "function" || typeof value === "symbol") {
      failure = { kind: "script", name: "TypeError", message: `the result is a ${typeof value}, which cannot leave the sandbox (results must be JSON values)` };
    } else {
      try {
        text = JSON.stringify(value) ?? "";
      } catch (error) {
        failure = this.host.describe(error, this.scope, this.kept.realm, this.kept.filename);
        failure = { kind: "script", name: failure.name, message: `the result cannot be encoded as JSON: ${failure.message}` };
      }
      const max = this.request.limits.maxResultBytes;
      if (isOverUtf8Bytes(text, max, utf8Length)) {
        failure = { kind: "output", name: "OutputLimitError", message: `the result is over ${max} bytes as JSON (the maxResultBytes limit)` };
      }
    }
    if (failure) return this.commitFailure(failure);
    this.commit(text, text === "");
  }

  private fail(error: unknown): void {
    this.commitFailure(this.host.describe(error, this.scope, this.kept.realm, this.kept.filename));
  }

  private timeoutFailure(): Failure {
    return { kind: "timeout", name: "TimeoutError", message: `the message did not finish within ${this.limitMs} ms (timeoutMsPerMessage)` };
  }

  /**
   * A failed item. A limit it broke that spoiled the scope (its console output), or a timeout that
   * left its calls or timers pending, gives the rest of the batch a new scope.
   */
  private commitFailure(failure: Failure, renewScope = false): void {
    const shown = this.scope.recordedFailure ?? failure;
    this.errors.push({ ...shown, i: this.i });
    this.pendingChars += shown.message.length + (shown.stack?.length ?? 0);
    this.commit("", false, renewScope);
  }

  /** Records the item's outcome; its text, then its count, go last: the marks that it is done (see runChunk). */
  private commit(text: string, empty: boolean, renewScope = false): void {
    const scope = this.scope;
    const now = (this.now = performance.now());
    let failed = text === "" && !empty;
    if (scope.logs.length > 0) {
      for (const entry of scope.takeLogs()) {
        this.logs.push({ i: this.i, level: entry.level, message: entry.message });
        this.pendingChars += entry.message.length;
      }
      scope.logBytes = 0;
    }
    if (scope.recordedFailure && !failed) {
      // The item broke a limit (its console output) yet returned: it fails with that limit.
      this.errors.push({ ...scope.recordedFailure, i: this.i });
      failed = true;
    } else if (!failed && this.startedIndex === this.i && now - this.started > this.limitMs) {
      // It finished, but late: as if the limit had stopped it (which it does within half a limit more).
      this.errors.push({ ...this.timeoutFailure(), i: this.i });
      failed = true;
    }
    // Work the item left running (a timer, a call it did not await) ends with it.
    if (renewScope || scope.recordedFailure || scope.hasPendingWork) this.renewScope();
    if (failed) {
      text = "";
      empty = false;
    }
    if (empty) this.empty.push(this.i);
    const ran = this.startedIndex === this.i;
    const us = ran ? (now - this.started) * 1000 : 0;
    if (ran) this.durations[durationBucket(us)]!++;
    if (this.request.careful) this.times.push(Math.round(us));
    if (this.reachedOut) {
      this.reachedOut = false;
      this.flushDue = true;
    }
    this.kept.realm.slot.scope = undefined;
    this.pendingChars += text.length;
    this.parts.push(text);
    this.i++;
  }

  /**
   * The rest of the batch gets a new scope, and the old one ends now (its timers must not count
   * against the next items); if the chunk's timeout interrupts that, endRetired() finishes it.
   */
  private renewScope(): void {
    const old = this.scope;
    this.retired.push(old);
    this.scope = this.newScope();
    old.end();
  }

  private endRetired(): void {
    if (this.retired.length === 0) return;
    const retired = this.retired;
    this.retired = [];
    for (const scope of retired) scope.end();
  }

  private newScope(): EvalScope {
    return new EvalScope(this.request.id, this.request.limits, this.caller, this.kept.filename);
  }

  private flush(end: boolean): void {
    this.flushDue = false;
    this.lastFlush = performance.now();
    const n = this.parts.length;
    if (n === 0 && !end) return;
    const header: Record<string, unknown> = { t: "progress", id: this.request.id, from: this.from, n };
    if (this.empty.length > 0) header.empty = this.empty;
    if (this.errors.length > 0) header.errors = this.errors;
    if (this.logs.length > 0) header.logs = this.logs;
    if (this.request.careful) header.us = this.times;
    if (end) {
      const durations: Array<[number, number]> = [];
      this.durations.forEach((count, bucket) => count > 0 && durations.push([bucket, count]));
      header.end = { cpuMs: Math.max(0, this.host.cpuMs() - this.cpuStart), durations };
    }
    const body = n > 0 ? encoder.encode(this.parts.join("\n")) : undefined;
    this.host.send(header, body);
    this.from += n;
    this.parts = [];
    this.empty = [];
    this.errors = [];
    this.logs = [];
    this.times = [];
    this.pendingChars = 0;
  }

  private finish(): void {
    this.flush(true);
    this.endRetired();
    this.scope.end();
    this.done();
  }
}

function isVmTimeout(error: unknown): boolean {
  try {
    return types.isNativeError(error) && (error as { code?: unknown }).code === "ERR_SCRIPT_EXECUTION_TIMEOUT";
  } catch {
    return false;
  }
}
