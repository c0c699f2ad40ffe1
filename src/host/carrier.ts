/**
 * The host's handle on one carrier process: spawning it with no permissions, framing, validating
 * every message it sends, and killing it. A carrier that breaks the protocol is killed; only the
 * evals running on it fail.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { readFileSync } from "node:fs";
import { FrameReader, encodeFrame, FrameError } from "../protocol/frame.js";
import { acceptHotMessage } from "../protocol/hot-messages.js";
import { carrierMessage, type ProgressMessage, type CallError, type CallMessage, type CallStreamMessage, type CarrierMessage, type CarrierPhases, type DoneMessage, type Failure, type HostMessage, type EvalLimits, type SourceKind } from "../protocol/messages.js";
import type { LogEntry } from "../capabilities/console/messages.js";
import { logCost } from "../capabilities/console/log-cost.js";
import { engineLaunch, engineProblem, engineSource, type EngineLaunch } from "./deno-binary.js";
import { carrierStarts } from "./start-queue.js";
import { CarrierCrashedError, CarrierStartError, MemoryLimitError, SandboxError, TimeoutError } from "./errors.js";
import { watchMemory, readRssBytes } from "./memory-watch.js";
import { decodeResult } from "./decode.js";
import { isOverUtf8Bytes } from "../protocol/limits.js";
import { BATCH_REPORT_CHARS, BATCH_REPORT_MS, MAX_BATCH_ITEMS, chunkTimeoutMs } from "../protocol/batch.js";
import { CallPort, type PortPipe } from "./call-port.js";
import type { ModuleLink, ModuleUnit } from "../capabilities/modules/messages.js";
import type { ToolCatalogMessage } from "../capabilities/tools/messages.js";
import type { ServeLink } from "./serve.js";

export interface CarrierSpec {
  memoryMb: number;
}

/** What one finished eval returns to its sandbox. */
export type EvalOutcome = (
  | { ok: true; value: unknown; logs: LogEntry[]; cpuMs: number }
  | { ok: false; error: Extract<DoneMessage, { ok: false }>["error"]; logs: LogEntry[]; cpuMs: number }
) & { timeline?: EvalTimeline };

/** A traced eval's moments on the host (performance.now() ms) and its phases in the carrier. */
export interface EvalTimeline {
  /** The eval message is about to be encoded. */
  sentAt: number;
  /** Its frame is encoded; the write to the pipe begins. */
  encodedAt: number;
  /** The output holding the answer began to be read. */
  receivedAt: number;
  /** The answer is validated and decoded; the eval's promise is being resolved. */
  resolvedAt: number;
  carrier: CarrierPhases;
}

export interface EvalRequest {
  code: string;
  filename: string;
  kind: SourceKind;
  persistent: boolean;
  limits: EvalLimits;
  globals?: Uint8Array;
  onLog?: (entry: LogEntry) => void;
  /** The eval's capabilities: what its calls reach. Without one, every call is refused. */
  handleCall?: CallHandler;
  /** Record where the eval's time goes (EvalOutcome.timeline). */
  trace?: boolean;
  /** The eval's imports and the units they reach (see provideModules). */
  modules?: { imports: Record<string, ModuleLink>; units: Map<string, ModuleUnit>; servedByCarrier(): void };
  /** Keep the code's default export in the carrier as kept function `keep` (see Carrier.batch). */
  keep?: number;
  /**
   * Serve the code's default export as an app: once the eval answers, its requests go through
   * `serve`, until the carrier dies (see serve.ts).
   */
  serve?: ServeLink;
}

/** A call's answer; an ok one may carry bytes (a response body), sent as the frame's body. */
export type CallReply = { ok: true; value: unknown; body?: Uint8Array } | { ok: false; error: CallError };

/**
 * Serves one capability call. It must `port.listen()` before its first await if the call streams
 * input; after an ok reply it may go on pushing the call's result through the port.
 */
export type CallHandler = (call: CallMessage, port: CallPort) => Promise<CallReply>;

/** A batch of items for a kept function (see src/carrier/batch.ts). */
export interface BatchRequest {
  version: number;
  /** One JSON text per item, with no raw line breaks (as JSON.stringify writes them). */
  items: readonly string[];
  limits: EvalLimits;
  /** Report after every item: the host is looking for the item that kills the carrier. */
  careful: boolean;
  handleCall?: CallHandler;
  /** Each report of items done, in order; what it throws is the carrier breaking the protocol. */
  onProgress(progress: BatchProgress): void;
}

/** Items `from` … `from + texts.length - 1` are done: each text is a result's JSON, or "" for one in `empty` or `errors`. */
export interface BatchProgress {
  from: number;
  texts: string[];
  empty: readonly number[];
  errors: ReadonlyArray<Failure & { i: number }>;
  logs: ReadonlyArray<{ i: number; level: LogEntry["level"]; message: string }>;
  /** A careful batch's items' times in the carrier, in µs. */
  us: readonly number[] | undefined;
}

/**
 * How a batch ended: done (its carrier CPU time and its items' times, see protocol/batch.ts); the
 * carrier does not hold the version; or the carrier died, while running this batch or while the
 * batch waited behind another (then no item of it is to blame).
 */
export type BatchEnd =
  | { kind: "done"; cpuMs: number; durations: ReadonlyArray<readonly [number, number]> }
  | { kind: "missing" }
  | { kind: "died"; error: SandboxError; wasRunning: boolean };

/** A batch's liveness: the carrier reports at least this often while it runs (see src/carrier/batch.ts). */
function batchSilenceLimitMs(timeoutMs: number): number {
  return chunkTimeoutMs(timeoutMs) + BATCH_REPORT_MS + KILL_GRACE_MS;
}

interface PendingBatch {
  request: BatchRequest;
  received: number;
  resolve: (end: BatchEnd) => void;
  /** It is the first of the carrier's batches: the one running, whose reports the host waits for. */
  watched: boolean;
  /** Time to read its body, given once, when it is first watched. */
  bodyMs: number;
}

type PendingRequest = Pick<EvalRequest, "limits" | "onLog" | "handleCall" | "serve">;

interface PendingEval {
  request: PendingRequest;
  batch?: PendingBatch;
  logs: LogEntry[];
  logChars: number;
  resolve: (outcome: EvalOutcome) => void;
  reject: (error: SandboxError) => void;
  killTimer: ReturnType<typeof setTimeout> | undefined;
  /** Calls of this eval still in progress on the host. */
  ports: Map<number, CallPort>;
  /** For a traced eval: when its frame began to be encoded, and was ready to write. */
  sent?: { sentAt: number; encodedAt: number };
  /** A serving eval that answered: its app takes requests (and it stays pending while the carrier lives). */
  serving?: true;
}

const RESTARTED = { carrierRestarted: true } as const;
/**
 * Module code a carrier keeps (compiled, for every realm): at most this, and at most a quarter of
 * its heap limit; beyond it the oldest units are forgotten (and sent again if needed).
 */
const MODULE_SHELF_CHARS = 64 * 1024 * 1024;
const MODULE_SHELF_SHARE = 0.25;

/** How every carrier is run, before its V8 flags and program: no permissions, no remote code, no state on disk. */
export const CARRIER_RUN_FLAGS = ["run", "--quiet", "--no-prompt", "--no-remote", "--deny-import", "--no-npm", "--no-config", "--no-lock", "--no-code-cache"] as const;

/** How often the memory of a carrier serving an idle app is sampled (a busy one: every 5 ms). */
const IDLE_APP_SAMPLE_MS = 100;

/** Time after an eval's own limit before the host stops waiting for the carrier and kills it. */
export const KILL_GRACE_MS = 200;
const READY_TIMEOUT_MS = 15_000;
/** Room in a frame beyond the result itself: header, logs, error text. */
const FRAME_SLACK_BYTES = 1024 * 1024;
const STDERR_KEEP = 8 * 1024;
/**
 * Reading a batch's body (the pipe, then its decoding in the carrier) is given this rate at the
 * least, on top of its silence limit: 10 MB/s, which a loaded machine still manages.
 */
const BODY_BYTES_PER_MS = 10_000;
/**
 * A batch reports once BATCH_REPORT_CHARS of results, errors and logs wait: up to 6× as escaped
 * JSON, and as much again for the last item's error stack and logs.
 */
const BATCH_REPORT_BYTES = 2 * 6 * BATCH_REPORT_CHARS;
/**
 * A carrier writes to stderr only when it fails (a V8 OOM report, a panic: kilobytes). More than
 * this is a carrier out of control, killed before its noise costs the host more than reading it.
 */
const STDERR_LIMIT_BYTES = 1024 * 1024;
/**
 * A carrier that closes its output cannot answer. Its exit usually follows at once and says more
 * (an OOM, a crash); past this wait the host stops waiting for it.
 */
const OUTPUT_CLOSED_GRACE_MS = 1000;
/** How long an exited carrier's remaining output is waited for before its exit is handled. */
const EXIT_OUTPUT_WAIT_MS = 200;

let carrierUrl: string | undefined;
function carrierModuleUrl(): string {
  carrierUrl ??= "data:text/javascript;base64," + readFileSync(new URL("../../carrier.js", import.meta.url)).toString("base64");
  return carrierUrl;
}

const live = new Set<Carrier>();
process.once("exit", () => {
  for (const carrier of live) carrier.destroySync();
});

export class Carrier {
  /** Undefined while the start waits in the start queue (and for good if it never got a process). */
  private child: ChildProcessWithoutNullStreams | undefined;
  /** Frames sent before the process exists (a sandbox's globals). */
  private unsent: Uint8Array[] | undefined = [];
  private readonly reader = new FrameReader(FRAME_SLACK_BYTES);
  private readonly pending = new Map<number, PendingEval>();
  private stderrTail = "";
  private stderrBytes = 0;
  private nextEvalId = 1;
  private killCause: { evalId: number | undefined; error: SandboxError } | undefined;
  private stopWatching: (() => void) | undefined;
  /** Call ids only grow: a stream message for an id at or below this one may be late, not forged. */
  private lastCall = 0;
  private toolsSent: ToolCatalogMessage | undefined;
  /** Module units this carrier holds, by key, oldest first (see provideModules). */
  private readonly shelf = new Map<string, ModuleUnit>();
  private shelfChars = 0;
  private readonly pipe: PortPipe;
  /** Frames to write after this turn of the event loop (see PortPipe.sendSoon). */
  private soon: Uint8Array[] = [];
  private readonly flushSoon = () => {
    if (this.soon.length === 0) return;
    const frames = this.soon;
    this.soon = [];
    const joined = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
    if (this.alive) this.write(joined);
  };
  /** Resolves when stdin, backed up, drains: one promise per backed-up spell. */
  private drained: Promise<void> | undefined;
  readonly exited: Promise<void>;
  readonly ready: Promise<void>;
  private alive = true;
  private readyNow = false;
  private baselineRssBytes = 0;
  private readonly markReady: () => void;
  private readonly failReady: (error: Error) => void;
  private readonly markExited: () => void;
  /** Drops the start from the start queue while it waits there. */
  private cancelStart: () => void = () => {};

  private constructor(readonly spec: CarrierSpec) {
    this.pipe = {
      send: (message, body) => !this.alive || this.send(message, body),
      sendSoon: (message, body) => {
        if (!this.alive) return;
        if (this.soon.length === 0) setImmediate(this.flushSoon);
        this.soon.push(encodeFrame(message, body));
      },
      whenDrained: () => {
        const stdin = this.child?.stdin;
        if (!stdin?.writableNeedDrain || !this.alive) return Promise.resolve();
        this.drained ??= new Promise<void>((resolve) => {
          const done = () => {
            this.drained = undefined;
            stdin.off("drain", done);
            resolve();
          };
          stdin.once("drain", done);
          void this.exited.then(done);
        });
        return this.drained;
      },
      violation: (what) => this.protocolViolation(what),
    };
    let markReady!: () => void;
    let failReady!: (error: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      failReady = reject;
    });
    this.ready.catch(() => {});
    this.markReady = markReady;
    this.failReady = failReady;
    let markExited!: () => void;
    this.exited = new Promise((resolve) => (markExited = resolve));
    this.markExited = markExited;
    live.add(this);
    this.cancelStart = carrierStarts.enqueue((release) => this.launch(release));
  }

  /** A carrier of `spec`'s kind; its process starts now, or when the start queue lets it. */
  static start(spec: CarrierSpec): Carrier {
    return new Carrier(spec);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get isAlive(): boolean {
    return this.alive;
  }

  /** True once the carrier said it is ready (and `ready` has resolved). */
  get isReady(): boolean {
    return this.readyNow;
  }

  /**
   * Binds the carrier to its sandbox. A frame may hold a result and all of an eval's console
   * output, JSON-escaped (up to 6 bytes a character).
   */
  attach(limits: { maxResultBytes: number; maxLogBytes: number; maxCallBytes: number }, globals: Uint8Array | undefined): void {
    // A call frame may carry a whole request body.
    // A batch's report may hold its results, errors and logs so far (see src/carrier/batch.ts) too.
    this.reader.maxFrameBytes = Math.max(limits.maxResultBytes + 8 * limits.maxLogBytes, limits.maxCallBytes) + FRAME_SLACK_BYTES + BATCH_REPORT_BYTES;
    if (globals) this.send({ t: "globals" }, globals);
  }

  /** Sends the sandbox's tools, unless this carrier has them already. */
  provideTools(catalog: ToolCatalogMessage): void {
    if (this.toolsSent === catalog) return;
    this.toolsSent = catalog;
    this.send(catalog);
  }

  /**
   * Sends the units this carrier does not hold yet (each once per carrier), forgetting the oldest
   * beyond its budget. Returns how many were sent.
   */
  provideModules(units: Map<string, ModuleUnit>): number {
    // A key held with other code (the package changed under its version) is sent again, replacing it.
    const fresh = [...units.values()].filter((unit) => this.shelf.get(unit.key)?.code !== unit.code);
    if (fresh.length === 0) return 0;
    for (const unit of fresh) {
      this.shelfChars += unit.code.length - (this.shelf.get(unit.key)?.code.length ?? 0);
      this.shelf.delete(unit.key);
      this.shelf.set(unit.key, unit);
    }
    const forget: string[] = [];
    const budget = Math.min(MODULE_SHELF_CHARS, this.spec.memoryMb * 1024 * 1024 * MODULE_SHELF_SHARE);
    for (const [key, unit] of this.shelf) {
      if (this.shelfChars <= budget) break;
      if (units.has(key)) continue;
      this.shelf.delete(key);
      this.shelfChars -= unit.code.length;
      forget.push(key);
    }
    this.send({ t: "modules", units: fresh, forget });
    return fresh.length;
  }

  eval(request: EvalRequest): Promise<EvalOutcome> {
    if (!this.alive) return Promise.reject(this.killCause?.error ?? new CarrierCrashedError("the carrier has exited", RESTARTED));
    const id = this.nextEvalId++;
    return new Promise<EvalOutcome>((resolve, reject) => {
      // A batch running on the carrier finishes its chunk first (then waits for the eval): that
      // chunk's time is not the eval's.
      const running = this.runningBatch();
      const waitMs = running ? batchSilenceLimitMs(running.request.limits.timeoutMs) : 0;
      const killTimer = setTimeout(() => {
        this.kill(id, new TimeoutError(`the eval did not finish within ${request.limits.timeoutMs} ms and its carrier was killed; the sandbox gets a fresh carrier for its next eval`, RESTARTED));
      }, request.limits.timeoutMs + KILL_GRACE_MS + waitMs);
      const pending: PendingEval = { request, logs: [], logChars: 0, resolve, reject, killTimer, ports: new Map() };
      this.pending.set(id, pending);
      // The carrier's batches wait while it runs an eval: so does the host's wait for their reports.
      if (running) this.watchRunningBatch();
      if (this.pending.size === 1) this.busy();
      const trace = request.trace === true;
      const sentAt = trace ? performance.now() : 0;
      const frame = encodeFrame(
        {
          t: "eval", id, code: request.code, filename: request.filename, kind: request.kind, persistent: request.persistent, limits: request.limits,
          hasGlobals: request.globals !== undefined, trace, ...(request.modules ? { imports: request.modules.imports } : {}),
          ...(request.keep !== undefined ? { keep: request.keep } : {}),
          ...(request.serve ? { serve: true as const } : {}),
        },
        request.globals,
      );
      // The carrier may start on the frame before the write returns: the write is part of the transit.
      if (trace) pending.sent = { sentAt, encodedAt: performance.now() };
      this.write(frame);
    });
  }

  /**
   * Calls kept function `request.version` on each item, in order. The carrier runs its batches one
   * at a time, in the order sent. Resolves when the batch ends, or when the carrier dies (after the
   * items reported so far).
   */
  batch(request: BatchRequest): Promise<BatchEnd> {
    if (!this.alive) return Promise.resolve({ kind: "died", error: this.killCause?.error ?? new CarrierCrashedError("the carrier has exited", RESTARTED), wasRunning: false });
    if (request.items.length > MAX_BATCH_ITEMS) return Promise.reject(new TypeError(`a batch holds at most ${MAX_BATCH_ITEMS} items (got ${request.items.length})`));
    const id = this.nextEvalId++;
    const body = request.items.length > 0 ? Buffer.from(request.items.join("\n")) : undefined;
    return new Promise<BatchEnd>((resolve, reject) => {
      const pending: PendingEval = {
        request, logs: [], logChars: 0, reject, resolve: () => {}, killTimer: undefined, ports: new Map(),
        batch: { request, received: 0, resolve, watched: false, bodyMs: Math.ceil((body?.byteLength ?? 0) / BODY_BYTES_PER_MS) },
      };
      this.pending.set(id, pending);
      if (this.pending.size === 1) this.busy();
      const { version, limits, careful, items } = request;
      this.send({ t: "batch", id, version, count: items.length, limits, careful }, body);
      this.watchRunningBatch();
    });
  }

  /** The first of the carrier's batches: the one it runs (the others wait their turn). */
  private runningBatch(): PendingBatch | undefined {
    for (const pending of this.pending.values()) if (pending.batch) return pending.batch;
    return undefined;
  }

  /**
   * (Re)starts the wait for the running batch's next report. Only the batch the carrier runs is
   * expected to report, and not while the carrier runs an eval (its batches wait for evals).
   */
  private watchRunningBatch(): void {
    let evals = false;
    let running: [number, PendingEval] | undefined;
    for (const entry of this.pending) {
      if (entry[1].batch) running ??= entry;
      else evals = true;
    }
    if (!running) return;
    const [id, pending] = running;
    const batch = pending.batch!;
    clearTimeout(pending.killTimer);
    pending.killTimer = evals ? undefined : this.silenceTimer(id, batch.request.limits.timeoutMs, batch.bodyMs);
    batch.bodyMs = 0;
    batch.watched = true;
  }

  /** Forgets kept function `version` (its realm goes with it). */
  drop(version: number): void {
    if (this.alive) this.send({ t: "drop", version });
  }

  /** Kills the carrier if batch `id` reports nothing for longer than its items may run. */
  private silenceTimer(id: number, timeoutMs: number, extraMs = 0): ReturnType<typeof setTimeout> {
    const limitMs = batchSilenceLimitMs(timeoutMs) + extraMs;
    return setTimeout(() => {
      this.kill(id, new TimeoutError(`a message did not finish within ${timeoutMs} ms and its carrier was killed`, RESTARTED));
    }, limitMs);
  }

  /** Kills the carrier. Its pending evals fail: `evalId`'s with `error`, the others as collateral. */
  kill(evalId: number | undefined, error: SandboxError): void {
    if (!this.alive) return;
    this.killCause = { evalId, error };
    this.alive = false;
    this.failReady(error);
    this.failPending();
    const child = this.child;
    if (child?.pid === undefined) return this.gone();
    child.kill("SIGKILL");
    // Nothing it says any more is read: a process that shares its pipes (a wrapper's child) may go on
    // writing into them after it died.
    child.stdout.destroy();
    child.stderr.destroy();
    // Whoever awaits `exited` (close()) keeps the host alive until the exit, which comes promptly.
    child.ref();
  }

  /** Synchronous last-resort cleanup when the host process exits. */
  destroySync(): void {
    this.cancelStart();
    try {
      this.child?.kill("SIGKILL");
    } catch {
      // already gone
    }
  }

  /** Spawns the process, once the start queue lets it; `release` frees the start slot. */
  private launch(release: () => void): void {
    // The slot is free again once the carrier is ready or has failed, however it failed.
    void this.ready.then(release, release);
    let launch: EngineLaunch;
    try {
      launch = engineLaunch([
        ...CARRIER_RUN_FLAGS,
        `--v8-flags=--max-old-space-size=${this.spec.memoryMb},--disallow-code-generation-from-strings,--expose-gc`,
        carrierModuleUrl(),
      ]);
    } catch (error) {
      return this.kill(undefined, new CarrierStartError(`the carrier could not be started: ${(error as Error).message}`, RESTARTED));
    }
    let child: ChildProcessWithoutNullStreams;
    try {
      child = spawn(launch.file, launch.args, {
        cwd: launch.cwd,
        env: { DENO_DIR: launch.denoDir, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", DENO_NO_PACKAGE_JSON: "1" },
        stdio: ["pipe", "pipe", "pipe"],
        windowsHide: true,
      });
    } catch (error) {
      return this.kill(undefined, new CarrierStartError(`the carrier could not be started: ${spawnProblem(error)}`, RESTARTED));
    }
    const readyTimer = setTimeout(() => this.kill(undefined, new CarrierStartError(`the carrier did not start within ${READY_TIMEOUT_MS / 1000} s (${engineSource()} gave no sign of life, or the machine is overloaded)`, RESTARTED)), READY_TIMEOUT_MS);
    void this.ready.catch(() => {}).finally(() => clearTimeout(readyTimer));
    // A process that could not be spawned (no file descriptors, no processes left) reports only this.
    child.once("error", (error) => {
      this.kill(undefined, new CarrierStartError(`the carrier could not be started: ${spawnProblem(error)}`, RESTARTED));
    });
    // Without a pid there is no process and there may be no pipes: the error event says why.
    if (child.pid === undefined) return;
    this.child = child;
    child.once("exit", (code, signal) => {
      // What the carrier wrote before it exited is read first: a batch's last report says which
      // item was running. (Node may tell of the exit before the last output is read.)
      const stdout = child.stdout;
      if (!this.alive || stdout.readableEnded || stdout.destroyed) return this.onExit(code, signal);
      let handled = false;
      const exited = () => {
        clearTimeout(timer);
        if (!handled) this.onExit(code, signal);
        handled = true;
      };
      const timer = setTimeout(exited, EXIT_OUTPUT_WAIT_MS);
      stdout.once("close", exited);
    });
    child.stdin.on("error", () => {});
    for (const frame of this.unsent ?? []) child.stdin.write(frame);
    this.unsent = undefined;
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (text: string) => {
      this.stderrTail = (this.stderrTail + text).slice(-STDERR_KEEP);
      this.stderrBytes += text.length;
      if (this.stderrBytes > STDERR_LIMIT_BYTES) {
        this.kill(undefined, new CarrierCrashedError(`the carrier wrote more than ${STDERR_LIMIT_BYTES} bytes of diagnostics and was killed; the sandbox gets a fresh carrier for its next eval`, RESTARTED));
      }
    });
    child.stdout.once("end", () => {
      if (!this.alive) return;
      setTimeout(() => {
        this.kill(undefined, new CarrierCrashedError("the carrier closed its output and was killed; the sandbox gets a fresh carrier for its next eval", RESTARTED));
      }, OUTPUT_CLOSED_GRACE_MS).unref();
    });
    child.stdout.on("data", (chunk: Buffer) => this.onOutput(chunk));
  }

  private onOutput(chunk: Buffer): void {
    if (!this.alive) return;
    const receivedAt = performance.now();
    let frames;
    try {
      frames = this.reader.push(chunk);
    } catch (error) {
      this.protocolViolation(error instanceof FrameError ? error.message : "unreadable frame");
      return;
    }
    for (const frame of frames) {
      if (!this.alive) return;
      const message = acceptHotMessage(frame.header) ?? this.checked(frame.header);
      if (!message) return;
      if (message.t === "ready") {
        if (this.readyNow) return this.protocolViolation("a second ready message");
        this.readyNow = true;
        this.baselineRssBytes = readRssBytes(this.child?.pid) ?? 0;
        this.unref();
        this.markReady();
        continue;
      }
      if (!this.readyNow) return this.protocolViolation(`"${message.t}" before ready`);
      this.onMessage(message, frame.body, receivedAt);
    }
  }

  /** A message the hot-path check did not vouch for, checked against the protocol's schema. */
  private checked(header: unknown): CarrierMessage | undefined {
    const parsed = carrierMessage().safeParse(header);
    if (parsed.success) return parsed.data;
    this.protocolViolation(`malformed message (${parsed.error.issues[0]?.message ?? "invalid"})`);
    return undefined;
  }

  private send(message: HostMessage, body?: Uint8Array): boolean {
    return this.write(encodeFrame(message, body));
  }

  private write(frame: Uint8Array): boolean {
    if (this.soon.length > 0) this.flushSoon();
    if (this.unsent) {
      this.unsent.push(frame);
      return true;
    }
    return this.child?.stdin.write(frame) ?? false;
  }

  private onMessage(message: Exclude<CarrierMessage, { t: "ready" }>, body: Uint8Array | undefined, receivedAt: number): void {
    const pending = this.pending.get(message.id);
    if (!pending) return this.protocolViolation(`message for eval ${message.id}, which is not running`);
    if (message.t === "call") return this.onCall(message, body, pending);
    if (message.t === "stream") return this.onStream(message, body, pending);
    if (message.t === "progress") return this.onProgress(message, body, message.id, pending);
    if (message.t === "response" || message.t === "body") {
      if (!pending.serving) return this.protocolViolation(`a "${message.t}" message for an eval that serves no app`);
      return pending.request.serve!.deliver(message, body);
    }
    if (pending.batch) return this.protocolViolation(`a "${message.t}" message for a batch`);
    if (!this.acceptLogs(pending, message.logs)) return;
    switch (message.t) {
      case "logs":
        return;
      case "done": {
        if (pending.serving) return this.protocolViolation("a second answer to a serving eval");
        if (message.ok && pending.request.serve) return this.startServing(message.id, pending);
        this.settle(message.id, pending);
        const logs = pending.logs;
        const cpuMs = message.stats.cpuMs;
        const { sent } = pending;
        const phases = message.phases;
        const resolve = (outcome: EvalOutcome) =>
          pending.resolve(sent && phases ? { ...outcome, timeline: { ...sent, receivedAt, resolvedAt: performance.now(), carrier: phases } } : outcome);
        if (!message.ok) return resolve({ ok: false, error: message.error, logs, cpuMs });
        if (message.as !== "body") {
          if (body) return this.lied(pending, "an unexpected frame body");
          if (message.as === "inline" && message.v === undefined) return this.lied(pending, "an inline result without a value");
          return resolve({ ok: true, value: message.as === "inline" ? message.v : undefined, logs, cpuMs });
        }
        if (!body) return this.lied(pending, "a result without its body");
        void Promise.resolve(decodeResult(body, pending.request.limits.maxResultBytes, { noun: "result", limit: "maxResultBytes" })).then((decoded) => {
          if ("violation" in decoded) return this.lied(pending, decoded.violation);
          resolve("failure" in decoded ? { ok: false, error: decoded.failure, logs, cpuMs } : { ok: true, value: decoded.value, logs, cpuMs });
        });
        return;
      }
    }
  }

  /**
   * A serving eval answered: its app is up. The eval stays pending, for its app's calls, console
   * output and exchanges, as long as the carrier lives; its time limit was the start's.
   */
  private startServing(id: number, pending: PendingEval): void {
    clearTimeout(pending.killTimer);
    pending.killTimer = undefined;
    pending.serving = true;
    pending.logs = [];
    pending.request.serve!.started(this.pipe, id);
    pending.resolve({ ok: true, value: undefined, logs: [], cpuMs: 0 });
  }

  /** The carrier broke the protocol over an eval it had already answered: that eval fails too. */
  private lied(pending: PendingEval, what: string): void {
    this.protocolViolation(what);
    pending.reject(this.killCause?.error ?? new CarrierCrashedError(`the carrier broke the protocol (${what})`, RESTARTED));
  }

  private acceptLogs(pending: PendingEval, logs: LogEntry[]): boolean {
    // An app's console output is limited per message (the carrier sends it every 50 ms), and kept
    // nowhere: it goes to the listener.
    if (pending.serving) pending.logChars = 0;
    for (const entry of logs) {
      pending.logChars += logCost(entry);
      // The carrier enforces the log limit itself; one that sends more than allowed is lying.
      if (pending.logChars > pending.request.limits.maxLogBytes) {
        this.protocolViolation("more console output than the eval's limit allows");
        return false;
      }
      if (!pending.serving) pending.logs.push(entry);
      try {
        pending.request.onLog?.(entry);
      } catch {
        // A listener's failure is the listener's: the eval goes on.
      }
    }
    return true;
  }

  private onCall(message: CallMessage, body: Uint8Array | undefined, pending: PendingEval): void {
    if (message.call <= this.lastCall) return this.protocolViolation(`call ${message.call} reuses an id`);
    this.lastCall = message.call;
    const port = new CallPort(message.call, body, this.pipe, (finished) => pending.ports.delete(finished.id));
    pending.ports.set(message.call, port);
    const handler = pending.request.handleCall;
    const reply: Promise<CallReply> = handler
      // The handler's own failure is a host bug: its message (paths, names) is not the sandbox's.
      ? handler(message, port).catch((): CallReply => ({ ok: false, error: { name: "Error", message: "the host could not serve this call" } }))
      : Promise.resolve({ ok: false, error: { name: "PolicyError", message: "no capability is granted", kind: "policy" } });
    void reply.then((result) => {
      if (!this.alive || !this.pending.has(message.id)) return port.finish();
      if (result.ok) {
        this.send({ t: "reply", call: message.call, ok: true, value: result.value }, result.body);
        port.replied();
      } else {
        this.send({ t: "reply", call: message.call, ok: false, error: result.error });
        port.finish();
      }
    });
  }

  private onStream(message: CallStreamMessage, body: Uint8Array | undefined, pending: PendingEval): void {
    if (message.call > this.lastCall) return this.protocolViolation(`a stream message for call ${message.call}, which was never made`);
    if ((message.op === "data") !== (body !== undefined)) return this.protocolViolation(`a "${message.op}" stream message ${body ? "with" : "without"} a body`);
    // A call the host has finished may still get messages the carrier sent meanwhile.
    pending.ports.get(message.call)?.deliver(message.op, body, message.bytes);
  }

  /** A batch's report, checked whole before any of it is believed. */
  private onProgress(message: ProgressMessage, body: Uint8Array | undefined, id: number, pending: PendingEval): void {
    const batch = pending.batch;
    if (!batch) return this.protocolViolation("a progress report for an eval");
    if (!batch.watched) return this.protocolViolation("a report for a batch that is not the one running");
    if (message.missing) {
      if (batch.received !== 0 || message.n !== 0 || !message.end) return this.protocolViolation("a malformed missing-function report");
      this.settle(id, pending);
      return batch.resolve({ kind: "missing" });
    }
    const { from, n } = message;
    if (n === 0 && !message.end) return this.protocolViolation("an empty report");
    const count = batch.request.items.length;
    if (from !== batch.received || from + n > count) return this.protocolViolation(`a report of items ${from}..${from + n} where ${batch.received}..${count} were expected`);
    if ((n === 0) !== (body === undefined) && !(n === 1 && body === undefined)) return this.protocolViolation("a report whose body does not match its items");
    if (message.end && from + n !== count) return this.protocolViolation("a batch ended before all its items were reported");
    const texts = n === 0 ? [] : body ? Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8").split("\n") : [""];
    if (texts.length !== n) return this.protocolViolation(`a report of ${n} items with ${texts.length} results`);
    const empty = message.empty ?? [];
    const errors = message.errors ?? [];
    const logs = message.logs ?? [];
    const seen = new Set<number>();
    for (const i of [...empty, ...errors.map((error) => error.i)]) {
      if (i < from || i >= from + n || seen.has(i) || texts[i - from] !== "") return this.protocolViolation(`a report that marks item ${i} wrongly`);
      seen.add(i);
    }
    let blank = 0;
    const { maxResultBytes } = batch.request.limits;
    for (const text of texts) {
      if (text === "") blank++;
      else if (isOverUtf8Bytes(text, maxResultBytes, Buffer.byteLength)) return this.protocolViolation("a result over maxResultBytes");
    }
    if (blank !== seen.size) return this.protocolViolation("a report with a result missing");
    const logChars = new Map<number, number>();
    for (const entry of logs) {
      const chars = (logChars.get(entry.i) ?? 0) + logCost(entry);
      if (entry.i < from || entry.i >= from + n || chars > batch.request.limits.maxLogBytes) return this.protocolViolation("a report with console output it may not have");
      logChars.set(entry.i, chars);
    }
    if (message.us && message.us.length !== n) return this.protocolViolation("a report with item times missing");
    batch.received += n;
    try {
      batch.request.onProgress({ from, texts, empty, errors, logs, us: message.us });
    } catch (error) {
      return this.protocolViolation(`a report the host could not read (${(error as Error).message})`);
    }
    if (!message.end) return this.watchRunningBatch();
    this.settle(id, pending);
    batch.resolve({ kind: "done", cpuMs: message.end.cpuMs, durations: message.end.durations });
  }

  private settle(id: number, pending: PendingEval): void {
    clearTimeout(pending.killTimer);
    this.pending.delete(id);
    for (const port of pending.ports.values()) port.finish();
    if (this.pending.size === 0) this.idle();
    // The next batch runs now, or the running one goes on after the eval.
    else this.watchRunningBatch();
  }

  private protocolViolation(what: string): void {
    if (!this.readyNow) {
      return this.kill(undefined, new CarrierStartError(`the carrier's output before it was ready is not the carrier protocol (${what}); is ${engineSource()} a Deno 2.9 binary?`, RESTARTED));
    }
    this.kill(undefined, new CarrierCrashedError(`the carrier broke the protocol (${what}) and was killed; the sandbox gets a fresh carrier for its next eval`, RESTARTED));
  }

  private failPending(): void {
    const cause = this.killCause;
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.killTimer);
      for (const port of pending.ports.values()) port.finish();
      if (pending.batch) {
        const error = cause?.error ?? new CarrierCrashedError("the carrier has exited", RESTARTED);
        // Another eval's limit (an eval compiling the next version, say) is no item's doing.
        const elsewhere = cause?.evalId !== undefined && cause.evalId !== id;
        pending.batch.resolve({ kind: "died", error, wasRunning: pending.batch.watched && !elsewhere });
      } else if (pending.serving) {
        pending.request.serve!.end();
      } else if (cause && (cause.evalId === id || cause.evalId === undefined)) {
        pending.reject(cause.error);
      } else {
        pending.reject(new CarrierCrashedError(`the carrier was killed because another eval in this sandbox broke a limit (${cause?.error.name ?? "exit"}); the sandbox gets a fresh carrier for its next eval`, RESTARTED));
      }
    }
    this.pending.clear();
    this.idle();
  }

  private exitError(code: number | null, signal: NodeJS.Signals | null): SandboxError {
    if (/out of memory|heap limit|Allocation failed/i.test(this.stderrTail)) {
      return new MemoryLimitError(`the sandbox exceeded its memory limit of ${this.spec.memoryMb} MB (V8 heap); the sandbox gets a fresh carrier for its next eval`, RESTARTED);
    }
    if (!this.readyNow && signal) return new CarrierStartError(`the carrier was killed (${signal}) before it was ready`, RESTARTED);
    if (!this.readyNow) {
      return new CarrierStartError(`the carrier exited before it was ready (code ${code}); is ${engineSource()} a Deno 2.9 binary?${stderrExcerpt(this.stderrTail)}`, RESTARTED);
    }
    return new CarrierCrashedError(`the carrier exited unexpectedly (${signal ?? `code ${code}`}); the sandbox gets a fresh carrier for its next eval`, RESTARTED);
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.alive) {
      const error = this.exitError(code, signal);
      this.alive = false;
      this.killCause = { evalId: undefined, error };
      this.failReady(error);
      this.failPending();
    }
    this.gone();
  }

  /** The process has exited, or never existed: nothing of this carrier is left to watch. */
  private gone(): void {
    live.delete(this);
    this.cancelStart();
    this.stopWatching?.();
    this.stopWatching = undefined;
    this.markExited();
  }

  /** While evals run: keep the host process alive for them, and watch the carrier's memory. */
  private busy(): void {
    const child = this.child;
    if (!child) return;
    child.ref();
    (child.stdout as unknown as { ref?: () => void }).ref?.();
    const pid = child.pid;
    if (pid !== undefined && !this.stopWatching) {
      // memoryMb for the V8 heap (which V8 itself enforces, and may fill with garbage before it
      // collects) and memoryMb more for everything outside it, above the carrier's idle size.
      const limitBytes = this.baselineRssBytes + (2 * this.spec.memoryMb + 32) * 1024 * 1024;
      this.stopWatching = watchMemory(
        pid,
        limitBytes,
        (rss) => {
          this.kill(undefined, new MemoryLimitError(`the sandbox used ${Math.round(rss / 1048576)} MB, over its memory limit of ${this.spec.memoryMb} MB; the sandbox gets a fresh carrier for its next eval`, RESTARTED));
        },
        () => (this.servesIdleAppOnly() ? IDLE_APP_SAMPLE_MS : 0),
      );
    }
  }

  /** Nothing runs but an app with no request in progress (its own timers may still run, rarely). */
  private servesIdleAppOnly(): boolean {
    for (const pending of this.pending.values()) if (!pending.serving || pending.request.serve!.size > 0) return false;
    return true;
  }

  private idle(): void {
    this.stopWatching?.();
    this.stopWatching = undefined;
    this.unref();
  }

  private unref(): void {
    const child = this.child;
    if (!child) return;
    child.unref();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
  }
}

/** Why a spawn failed, in words: the host's own resources are the usual cause. */
function spawnProblem(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case "EMFILE":
    case "ENFILE":
      return `the host has no file descriptors left (${code}); close sandboxes or raise the limit (ulimit -n)`;
    case "EAGAIN":
      return "the host may not start more processes (EAGAIN); close sandboxes or raise the limit (ulimit -u)";
    case "ENOMEM":
      return "the host is out of memory (ENOMEM)";
    default:
      return engineProblem(code) ?? code ?? "unknown error";
  }
}

/** The first lines a failed engine printed, without paths: enough to tell a wrong binary from a crash. */
function stderrExcerpt(text: string): string {
  const lines = text.split("\n").map((line) => line.trim()).filter(Boolean).slice(0, 3).join(" | ");
  const clean = lines.replace(/(?:[A-Za-z]:)?[\\/][^\s'"`:,;)]+/g, "<path>").replace(/[^\x20-\x7e]/g, "?").slice(0, 300);
  return clean ? `; it printed: ${clean}` : "";
}
