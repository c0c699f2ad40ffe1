/**
 * Kept functions and their batches. A kept function is the default export of code evaluated once
 * in a realm of its own, which lives as long as the function: every item of every batch calls it
 * there, so module-level state persists from item to item. Items are isolated from each other's
 * failures: what one throws, returns or takes too long over is that item's error alone.
 *
 * An item's time limit is enforced with node:vm's timeout around a chunk of items: the chunk stops
 * starting items after half the limit, and the timeout is one and a half limits, so an item
 * stopped by it has run for at least the whole limit. Progress goes to the host after a few ms of
 * work (and, "careful", after every item): if the carrier dies, the host knows what was done.
 */
import vm from "node:vm";
import { types } from "node:util";
import { setImmediate } from "node:timers";
import type { Failure, HostMessage } from "../protocol/messages.js";
import { BATCH_DURATION_BUCKETS, durationBucket } from "../protocol/batch.js";
import type { LogLevel } from "../capabilities/console/messages.js";
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
}

interface Kept {
  fn: (item: unknown) => unknown;
  realm: Realm;
  filename: string;
  parse: (text: string) => unknown;
}

/** What a realm that will keep a function needs, taken before any user code runs in it. */
export interface KeepPreparation {
  parse: (text: string) => unknown;
}

/** Report progress after this much work, or this much text to report (×6 for JSON escapes: see the host's frame limit). */
const FLUSH_MS = 4;
const FLUSH_CHARS = 256 * 1024;
const ENTRY = "$paddock$batch";
const enter = new vm.Script(`${ENTRY}()`, { filename: "paddock:batch" });
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Batches {
  private readonly kept = new Map<number, Kept>();
  private readonly queue: Array<{ request: BatchRequest; body: Uint8Array | undefined }> = [];
  private active: BatchRun | undefined;

  constructor(private readonly host: BatchHost) {}

  /**
   * Readies a fresh realm for keeping its code's default export: the entry point chunks run through
   * (fixed, so code cannot replace it) and the realm's own JSON.parse (items become the realm's
   * objects), both before the code runs.
   */
  prepare(realm: Realm): KeepPreparation {
    const step = () => this.active?.loop();
    const entry = vm.runInContext("(step) => () => { step(); }", realm.context) as (step: () => void) => () => void;
    Object.defineProperty(realm.global, ENTRY, { value: entry(step), writable: false, configurable: false, enumerable: false });
    return { parse: vm.runInContext("JSON.parse", realm.context) as (text: string) => unknown };
  }

  keep(version: number, realm: Realm, value: unknown, filename: string, preparation: KeepPreparation): void {
    if (typeof value !== "function") {
      const got = value === null ? "null" : typeof value;
      throw carrierFailure({ kind: "script", name: "TypeError", message: `the code must \`export default\` a function of one message (its default export is ${got})` });
    }
    this.kept.set(version, { fn: value as Kept["fn"], realm, filename, parse: preparation.parse });
  }

  drop(version: number): void {
    this.kept.delete(version);
  }

  run(request: BatchRequest, body: Uint8Array | undefined): void {
    this.queue.push({ request, body });
    if (!this.active) this.next();
  }

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
    this.active = new BatchRun(request, lines, kept, this.host, () => {
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
  /** When the running item started; NaN while none runs. */
  private started = Number.NaN;
  private awaiting: Promise<unknown> | undefined;
  private resumed: { value: unknown } | undefined;
  private inLoop = false;
  private scope: EvalScope;
  private readonly durations = new Uint32Array(BATCH_DURATION_BUCKETS);
  private readonly cpuStart: number;
  private readonly limitMs: number;

  constructor(
    private readonly request: BatchRequest,
    private readonly lines: string[],
    private readonly kept: Kept,
    private readonly host: BatchHost,
    private readonly done: () => void,
  ) {
    this.cpuStart = host.cpuMs();
    this.limitMs = request.limits.timeoutMs;
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
      this.runChunk();
      let pause: Promise<unknown> | undefined;
      if (this.flushDue) {
        this.flush(false);
        if (!this.awaiting && this.i < this.lines.length) pause = new Promise((resolve) => setImmediate(resolve));
      }
      if (this.awaiting) pause = this.awaitItem();
      if (pause) {
        this.host.busy(1);
        void pause.then(() => {
          this.host.busy(-1);
          this.drive();
        });
        return;
      }
      if (this.i >= this.lines.length) return this.finish();
    }
  }

  /** The body of a chunk, called from inside the realm (so that the chunk's timeout covers it). */
  loop(): void {
    if (this.inLoop) return;
    this.inLoop = true;
    const { fn, parse } = this.kept;
    const careful = this.request.careful;
    try {
      // One clock reading per item: the end of one is the start of the next.
      this.now = performance.now();
      const chunkStart = this.now;
      if (this.resumed) {
        const { value } = this.resumed;
        this.resumed = undefined;
        this.settle(value);
      }
      const cut = this.limitMs / 2;
      while (this.i < this.lines.length) {
        const start = this.now;
        if (start - chunkStart > cut) return;
        if (start - this.lastFlush >= FLUSH_MS || this.pendingChars >= FLUSH_CHARS || (careful && this.i > this.from)) {
          this.flushDue = true;
          return;
        }
        let item: unknown;
        try {
          item = parse(this.lines[this.i]!);
        } catch (error) {
          this.commitFailure({ kind: "script", name: "TypeError", message: `the message is not JSON (${String((error as Error).message)})` });
          continue;
        }
        this.started = start;
        let value: unknown;
        try {
          value = fn(item);
        } catch (error) {
          this.fail(error);
          continue;
        }
        if (types.isPromise(value)) {
          this.awaiting = value;
          return;
        }
        this.settle(value);
      }
    } finally {
      this.inLoop = false;
    }
  }

  /** One chunk of items under the vm timeout; an item it stops is that item's TimeoutError. */
  private runChunk(): void {
    try {
      this.host.inRealm(this.kept.realm, () => enter.runInContext(this.kept.realm.context, { timeout: Math.ceil(this.limitMs * 1.5) }));
    } catch (error) {
      // Terminated: no `finally` ran inside, and the item may have been stopped halfway through
      // its own bookkeeping (which commits its text last, see commit()).
      this.inLoop = false;
      this.awaiting = undefined;
      this.resumed = undefined;
      if (this.from + this.parts.length > this.i) {
        this.i = this.from + this.parts.length;
      } else if (!Number.isNaN(this.started)) {
        while (this.errors.at(-1)?.i === this.i) this.errors.pop();
        while (this.empty.at(-1) === this.i) this.empty.pop();
        this.commitFailure(isVmTimeout(error) ? this.timeoutFailure() : this.host.describe(error, this.scope, this.kept.realm, this.kept.filename), true);
      }
    }
  }

  /** Waits for an item's promise, up to the rest of its time limit, pumping its realm meanwhile. */
  private async awaitItem(): Promise<void> {
    const promise = this.awaiting!;
    this.awaiting = undefined;
    const left = Math.max(0, this.limitMs - (performance.now() - this.started));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), left)));
    const stopPumping = pumpWhileRunning(this.kept.realm.context);
    try {
      const outcome = await Promise.race([promise.then((value) => ({ value })), this.scope.aborted, late]);
      if (outcome === "late") this.commitFailure(this.timeoutFailure(), true);
      else this.resumed = outcome;
    } catch (error) {
      this.fail(error);
    } finally {
      clearTimeout(timer);
      stopPumping();
    }
  }

  /** An item's value, encoded; or its failure if it took too long or cannot be encoded. */
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
      if (text.length * 3 > max && (text.length > max || encoder.encode(text).byteLength > max)) {
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
   * A failed item. A limit it broke that left the scope spoiled (its console output, a timeout with
   * calls or timers still pending) gives the rest of the batch a new scope.
   */
  private commitFailure(failure: Failure, renewScope = false): void {
    const recorded = this.scope.recordedFailure;
    const shown = recorded ?? failure;
    this.errors.push({ ...shown, i: this.i });
    this.pendingChars += shown.message.length + (shown.stack?.length ?? 0);
    if (recorded || renewScope) this.renewScope();
    this.commit("", false);
  }

  /** Records the item's outcome; its text goes last, as the mark that the item is done. */
  private commit(text: string, empty: boolean): void {
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
      this.renewScope();
      failed = true;
    } else if (!failed && now - this.started > this.limitMs) {
      // It finished, but late: as if the limit had stopped it (which it does within half a limit more).
      this.errors.push({ ...this.timeoutFailure(), i: this.i });
      failed = true;
    }
    if (failed) {
      text = "";
      empty = false;
    }
    if (!Number.isNaN(this.started)) {
      const us = (now - this.started) * 1000;
      this.durations[durationBucket(us)]!++;
      if (this.request.careful) this.times.push(Math.round(us));
      this.started = Number.NaN;
    } else if (this.request.careful) {
      this.times.push(0);
    }
    if (empty) this.empty.push(this.i);
    this.pendingChars += text.length;
    this.parts.push(text);
    this.i++;
  }

  private renewScope(): void {
    this.scope.end();
    this.scope = this.newScope();
  }

  private newScope(): EvalScope {
    const scope = new EvalScope(this.request.id, this.request.limits, this.host.caller, this.kept.filename);
    this.kept.realm.slot.scope = scope;
    return scope;
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
