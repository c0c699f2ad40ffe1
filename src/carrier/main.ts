/**
 * The carrier: a zero-permission Deno process serving one sandbox. It reads eval requests from
 * stdin, runs each in a fresh realm, and writes results to stdout. It never trusts user code and
 * never does I/O of its own: capabilities ask the host.
 */
import vm from "node:vm";
import { deserialize } from "node:v8";
import { types } from "node:util";
import { AsyncLocalStorage } from "node:async_hooks";
import { setImmediate } from "node:timers";
import type { HostMessage, Failure, CarrierPhases, CallError } from "../protocol/messages.js";
import type { RawFrame } from "../protocol/frame.js";
import { captureIO } from "./io.js";
import { hardenOuterRealm, deepFreeze, hiddenIntrinsics } from "./harden.js";
import { RealmFactory, SHARED_WEB_APIS, type Realm } from "./realm.js";
import { prepareWebBindings } from "./web/bindings.js";
import { EvalScope, carrierFailure, isCarrierFailure, type CallHandle, type CallResult, type CallStreamEvent, type HostCaller } from "./scope.js";
import { encodeValue, describeThrown, setDescriber, capabilityError, type EncodedValue } from "./values.js";
import { CARRIER_CAPABILITIES } from "./capabilities.js";
import { receiveToolCatalog } from "../capabilities/tools/carrier.js";
import { defineGlobal } from "./capability.js";
import { BoundedCache } from "../shared/bounded-cache.js";
import { pumpWhileRunning, runMicrotasks, wake } from "./pump.js";
import { Batches, type KeepPreparation } from "./batch.js";
import { Apps, type ServePreparation } from "./serve.js";
import { bindImports, guardedImport, importInRealm, receiveModules, staticImporter, trackRealm } from "../capabilities/modules/carrier.js";

type EvalRequest = Extract<HostMessage, { t: "eval" }>;
type Reply = Extract<HostMessage, { t: "reply" }>;
type CallStream = Extract<HostMessage, { t: "stream" }>;

const HOST_FRAME_LIMIT = 512 * 1024 * 1024;
/** Compiled scripts kept, by count and total source size; large ones are not kept at all. */
const SCRIPT_CACHE_ENTRIES = 256;
const SCRIPT_CACHE_CHARS = 8 * 1024 * 1024;
const SCRIPT_CACHE_LARGEST = 256 * 1024;
/** Realms made ahead while idle (~0.3 ms and ~230 KB each): enough for a burst of a few evals. */
const SPARE_REALMS = 4;

const io = captureIO(HOST_FRAME_LIMIT);
const hooks = hardenOuterRealm();
setDescriber(hooks.inspect);

const outer = globalThis as unknown as Record<string, unknown>;
const realPerformance = performance;
const performanceApi = Object.freeze({ now: () => realPerformance.now(), timeOrigin: realPerformance.timeOrigin });
const webBindings = prepareWebBindings(SHARED_WEB_APIS);
// Realms reach outer objects only through the membrane; frozen, they are no shared state even so.
deepFreeze([...Object.getOwnPropertyNames(outer).map((name) => outer[name]), performanceApi, ...hiddenIntrinsics()]);

const realms = new RealmFactory(
  webBindings,
  performanceApi,
  (global, slot, helpers) => {
    for (const capability of CARRIER_CAPABILITIES) capability.install(global, slot, { hooks, realm: helpers });
  },
  SPARE_REALMS,
);
// Deno reports a realm's unhandled rejections and uncaught listener errors on the outer global:
// each goes to the realm that made the promise or the error.
// A realm's handlers run on its own queue, later than Deno looks: a rejection Deno reports is first
// given the realm's pending microtasks, then time for Deno to say it was handled after all (Deno
// tells "rejectionhandled" on a later turn of its event loop; the grace only needs to come after).
const REJECTION_GRACE_MS = 20;
const suspectRejections = new Map<Promise<unknown>, { realm: Realm; reason: unknown }>();
globalThis.addEventListener("unhandledrejection", (event) => {
  const realm = realms.owner(event.promise);
  if (!realm?.slot.scope?.isAlive) return;
  suspectRejections.set(event.promise, { realm, reason: event.reason });
  runMicrotasks(realm.context);
  setTimeout(() => {
    const suspect = suspectRejections.get(event.promise);
    suspectRejections.delete(event.promise);
    suspect?.realm.helpers.rejectionUnhandled(event.promise, suspect.reason);
  }, REJECTION_GRACE_MS);
});
globalThis.addEventListener("rejectionhandled", (event) => suspectRejections.delete(event.promise));
globalThis.addEventListener("error", (event) => realms.owner(event.error)?.helpers.reportError(event.error));
const scripts = new BoundedCache<vm.Script>(SCRIPT_CACHE_ENTRIES, SCRIPT_CACHE_CHARS);
interface PendingCall extends CallHandle {
  scope: EvalScope;
  /** The capability called: a tool call is over with its reply; a fetch streams on after it. */
  cap: string;
  isOpen: boolean;
  resolve: (result: CallResult) => void;
  reject: (error: unknown) => void;
  /** Stream events that arrived before the capability listened (they may share a read with the reply). */
  early: CallStreamEvent[] | undefined;
  listener: ((event: CallStreamEvent) => void) | undefined;
  credit: number;
  /** Wakes whoever waits for credit (or for the call to end). */
  creditChanged: (() => void) | undefined;
  /** Unregisters the call from its scope's end (an app's scope lasts: calls over must not pile up there). */
  forget: () => void;
}
const pendingCalls = new Map<number, PendingCall>();
let nextCall = 1;
let sandboxGlobals: Record<string, unknown> = {};
let persistentRealm: Realm | undefined;

const host: HostCaller = {
  call(scope, cap, args, body) {
    const call = nextCall++;
    let resolve!: (result: CallResult) => void;
    let reject!: (error: unknown) => void;
    const reply = new Promise<CallResult>((onValue, onError) => {
      resolve = onValue;
      reject = onError;
    });
    reply.catch(() => {});
    const pending: PendingCall = {
      scope, cap, reply, resolve, reject, isOpen: true, early: [], listener: undefined, credit: 0, creditChanged: undefined, forget: () => {},
      send(op, data, bytes) {
        if (pending.isOpen && scope.isAlive) io.send({ t: "stream", id: scope.id, call, op, ...(bytes ? { bytes } : {}) }, data);
      },
      listen(listener) {
        pending.listener = listener;
        const early = pending.early ?? [];
        pending.early = undefined;
        for (const event of early) listener(event);
      },
      async takeCredit(wanted) {
        while (pending.isOpen && scope.isAlive && pending.credit === 0) await new Promise<void>((resolve) => (pending.creditChanged = resolve));
        if (!pending.isOpen || !scope.isAlive) return 0;
        const taken = Math.min(wanted, pending.credit);
        pending.credit -= taken;
        return taken;
      },
      close() {
        if (pending.isOpen) closeCall(call, pending);
      },
    };
    pendingCalls.set(call, pending);
    pending.forget = scope.onEnd(() => {
      closeCall(call, pending);
      // A call still waiting for its reply never gets one: code of a later eval (a persistent
      // realm) that awaits it sees it fail, instead of waiting forever.
      pending.reject({ name: "AbortError", message: "the eval that made this call has ended before its reply came" } satisfies CallError);
    });
    io.send({ t: "call", id: scope.id, call, cap, args }, body);
    return pending;
  },
  flushLogs(scope) {
    io.send({ t: "logs", id: scope.id, logs: scope.takeLogs() });
  },
};

/** The realm whose code is running, also across its awaits: compiled scripts are shared by realms. */
const runningRealm = new AsyncLocalStorage<Realm>();

const batches = new Batches({
  send: (header, body) => io.send(header, body),
  caller: host,
  describe: (error, scope, realm, filename) => failureOf(realm.helpers.outerOf(error) ?? error, scope, filename),
  cpuMs: () => hooks.cpuMs(),
  inRealm: (realm, work) => runningRealm.run(realm, work),
  busy: (delta) => void (running += delta),
  evalsRunning: () => evalsRunning,
});
let evalsRunning = 0;

const apps = new Apps({
  send: (header, body) => io.sendSoon(header, body),
  // Not failureOf: an app's requests have no vm timeout, so nothing thrown there is the carrier's
  // timeout (an app that has lived past its start's limit could otherwise pass an error for one).
  describe: (error, scope, realm, filename) => {
    const thrown = realm.helpers.outerOf(error) ?? error;
    return isCarrierFailure(thrown) ? thrown : describeThrown(thrown, scope, filename);
  },
  inRealm: (realm, work) => runningRealm.run(realm, work),
});

trackRealm(() => runningRealm.getStore(), (value) => realms.owner(value));

/** import() in the eval's code: what the host resolved for it, or a refusal. */
function importModule(specifier: string): unknown {
  return guardedImport(specifier, (realm) => importInRealm(realm, realm.slot.scope, specifier));
}

/** Async-wrapped code has its prologue on a line of its own, above the user's first line. */
function compile(code: string, filename: string, kind: EvalRequest["kind"]): vm.Script {
  const key = kind + filename + "\0" + code;
  const cached = scripts.get(key);
  if (cached) return cached;
  const script = new vm.Script(code, { filename, lineOffset: kind === "script" ? 0 : -1, importModuleDynamically: importModule as unknown as vm.ScriptOptions["importModuleDynamically"] });
  if (code.length <= SCRIPT_CACHE_LARGEST) scripts.set(key, script);
  return script;
}

function bindRealm(realm: Realm, scope: EvalScope, overrides: Record<string, unknown> | undefined): void {
  realm.slot.scope = scope;
  for (const source of overrides ? [sandboxGlobals, overrides] : [sandboxGlobals]) {
    for (const name of Object.keys(source)) defineGlobal(realm.global, name, realm.helpers.adopt(source[name]));
  }
}

/** Per-eval globals are for that eval only, also in a persistent realm. */
function forgetOverrides(realm: Realm, overrides: Record<string, unknown>): void {
  for (const name of Object.keys(overrides)) {
    if (name in sandboxGlobals) defineGlobal(realm.global, name, realm.helpers.adopt(sandboxGlobals[name]));
    else delete realm.global[name];
  }
}

function deadline(scope: EvalScope): { promise: Promise<never>; cancel: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timedOut(scope)), Math.max(0, scope.limits.timeoutMs - scope.elapsedMs()));
  });
  promise.catch(() => {});
  return { promise, cancel: () => clearTimeout(timer) };
}

let running = 0;

/**
 * Where a traced eval's time goes, phase by phase, from the moment its frame was read: each mark
 * closes the phase named, which ran since the previous mark.
 */
class PhaseClock {
  readonly phases: CarrierPhases = { decode: 0, realm: 0, compile: 0, run: 0, encode: 0, settle: 0 };
  constructor(private last: number) {}

  mark(phase: keyof CarrierPhases): void {
    const now = performance.now();
    this.phases[phase] = Math.round((now - this.last) * 1000);
    this.last = now;
  }
}

/** Runs one eval and always answers it, whatever the code did. */
async function runEval(request: EvalRequest, body: Uint8Array | undefined, readAt: number): Promise<void> {
  running++;
  evalsRunning++;
  evalsSinceCollection++;
  const clock = request.trace ? new PhaseClock(readAt) : undefined;
  clock?.mark("decode");
  // An app's scope outlives the eval that started it: it is the app's (see serve.ts).
  const scope = new EvalScope(request.id, request.limits, host, request.filename, request.serve === true);
  bindImports(scope, request.imports);
  const cpuStart = hooks.cpuMs();
  let realm: Realm | undefined;
  let overrides: Record<string, unknown> | undefined;
  let outcome: EncodedValue | Failure;
  let served = false;
  try {
    realm = request.persistent ? (persistentRealm ??= realms.take()) : realms.take();
    const keeping: KeepPreparation | undefined = request.keep !== undefined ? batches.prepare(realm) : undefined;
    const serving: ServePreparation | undefined = request.serve ? apps.prepare(realm) : undefined;
    overrides = request.hasGlobals && body ? (deserialize(body) as Record<string, unknown>) : undefined;
    bindRealm(realm, scope, overrides);
    if (request.imports && Object.keys(request.imports).length > 0) defineGlobal(realm.global, "$paddock$import", staticImporter(realm));
    clock?.mark("realm");
    const { value } = await evaluate(request, realm, scope, clock);
    if (keeping) {
      batches.keep(request.keep!, realm, value, request.filename, keeping);
      outcome = { as: "undefined" };
    } else if (serving) {
      apps.serve(request.id, realm, scope, value, request.filename, serving);
      served = true;
      outcome = { as: "undefined" };
    } else {
      outcome = encodeValue(value, request.limits.maxResultBytes, scope);
    }
  } catch (error) {
    // A DOMException (or other platform object) thrown by user code is described as Deno's own.
    outcome = failureOf(realm?.helpers.outerOf(error) ?? error, scope, request.filename);
  }
  try {
    clock?.mark("encode");
    // Work the eval queued outside its realm (a stream's pull, an event listener) runs now, on
    // this eval's time, rather than during a later eval.
    if (!served) {
      await drainMicrotasks(32);
      scope.end();
    }
    if (request.persistent && realm && overrides) forgetOverrides(realm, overrides);
    const stats = { wallMs: round(scope.elapsedMs()), cpuMs: round(Math.max(0, hooks.cpuMs() - cpuStart)) };
    const logs = scope.takeLogs();
    clock?.mark("settle");
    const phases = clock ? { phases: clock.phases } : {};
    if ("kind" in outcome) {
      io.send({ t: "done", id: request.id, ok: false, error: outcome, logs, stats, ...phases });
      // An eval stopped at its time limit has often been allocating all along (a runaway chain):
      // its garbage is collected now, once the answer is out and before the next eval is taken,
      // rather than left to fill the heap under the next eval.
      if (outcome.kind === "timeout" && running === 1) {
        evalsSinceCollection = 0;
        hooks.collectGarbage();
      }
    } else {
      const header = outcome.as === "inline" ? { v: outcome.v } : {};
      io.send({ t: "done", id: request.id, ok: true, as: outcome.as, ...header, logs, stats, ...phases }, outcome.body);
    }
  } catch (error) {
    die(error);
  } finally {
    running--;
    if (--evalsRunning === 0) batches.evalsDone();
    // The read loop may be waiting on an asynchronous read begun while this eval ran, so it will
    // not reach its idle work until the next frame: refill the spare realms now, while idle.
    if (running === 0) realms.refillSoon(() => running === 0);
  }
}

/**
 * Runs the code in its realm; a promise result is awaited, with the eval's deadline. The value
 * comes back boxed: an async function returning a thenable would call its `then`.
 */
async function evaluate(request: EvalRequest, realm: Realm, scope: EvalScope, clock: PhaseClock | undefined): Promise<{ value: unknown }> {
  const script = compile(request.code, request.filename, request.kind);
  clock?.mark("compile");
  const context = realm.context;
  let value = runningRealm.run(realm, () => script.runInContext(context, { timeout: request.limits.timeoutMs, displayErrors: false }));
  if (types.isPromise(value)) {
    const limit = deadline(scope);
    const stopPumping = pumpWhileRunning(context);
    try {
      value = await Promise.race([value, scope.aborted, limit.promise]);
    } finally {
      stopPumping();
      limit.cancel();
    }
  }
  clock?.mark("run");
  if (scope.recordedFailure) throw scope.recordedFailure;
  return { value };
}

/**
 * Lets queued microtasks of the carrier's own queue run, up to `ticks` deep. (A full event-loop
 * turn would also do, but costs Deno ~0.1 ms; promise chains this work consists of are short.)
 */
async function drainMicrotasks(ticks: number): Promise<void> {
  for (let i = 0; i < ticks; i++) await null;
}

/**
 * Enough for a finished eval's own drain (above) to complete first: see readFrames. An eval still
 * running then gets one turn of the event loop too (its realm is pumped on the next turn), so a
 * short async eval also finishes before the carrier decides how to read: an idle carrier reads
 * synchronously, one with an eval in flight must read asynchronously, which is slower.
 */
async function afterBatch(): Promise<void> {
  await drainMicrotasks(64);
  if (running === 0 && !apps.isBusy()) {
    // Reads that never leave the loop (a synchronous read, frames, microtasks, the next read) never
    // end a task either, and V8 keeps what a task touched through a WeakRef (Deno's streams and
    // signals use them) until one ends: a carrier serving request after request that way kept
    // ~2.5 KB a request until its heap ran out. A turn of the event loop now and then lets it go.
    if (++quietBatches % TURN_EVERY_QUIET_BATCHES === 0) await new Promise((resolve) => setImmediate(resolve));
    return;
  }
  await new Promise((resolve) => setImmediate(resolve));
  await drainMicrotasks(64);
}

/** Reads handled without a turn of the event loop, at most (see afterBatch). */
const TURN_EVERY_QUIET_BATCHES = 256;
let quietBatches = 0;

function failureOf(error: unknown, scope: EvalScope, filename: string): Failure {
  if (isCarrierFailure(error)) return error;
  return timeoutFailure(error, scope) ?? describeThrown(error, scope, filename);
}

/** node:vm's own timeout error, told apart from look-alikes user code could throw. */
function timeoutFailure(error: unknown, scope: EvalScope): Failure | undefined {
  if (scope.elapsedMs() < scope.limits.timeoutMs - 1) return undefined;
  if (typeof error !== "object" || error === null || types.isProxy(error) || !types.isNativeError(error)) return undefined;
  let code: unknown;
  try {
    code = (error as { code?: unknown }).code;
  } catch {
    return undefined;
  }
  if (code !== "ERR_SCRIPT_EXECUTION_TIMEOUT") return undefined;
  return timedOut(scope);
}

/** The eval ran out of time while the carrier could still answer (so the carrier is kept). */
function timedOut(scope: EvalScope): Failure {
  return carrierFailure({ kind: "timeout", name: "TimeoutError", message: `the eval did not finish within ${scope.limits.timeoutMs} ms` });
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

function closeCall(id: number, pending: PendingCall): void {
  pending.isOpen = false;
  pendingCalls.delete(id);
  pending.forget();
  notifyCredit(pending);
}

function notifyCredit(pending: PendingCall): void {
  const wake = pending.creditChanged;
  pending.creditChanged = undefined;
  wake?.();
}

function handleReply(reply: Reply, body: Uint8Array | undefined): void {
  const pending = pendingCalls.get(reply.call);
  if (!pending || !pending.scope.isAlive) return;
  if (reply.ok) {
    pending.resolve({ value: reply.value, body: body?.slice() });
    if (pending.cap === "tool") closeCall(reply.call, pending);
  } else {
    closeCall(reply.call, pending);
    pending.reject(reply.error);
  }
  wake();
}

/** A call's result streaming down. The frame's body is copied: user code may keep the chunk. */
function handleStream(message: CallStream, body: Uint8Array | undefined): void {
  const pending = pendingCalls.get(message.call);
  if (!pending || !pending.scope.isAlive) return;
  if (message.op === "credit") {
    pending.credit += message.bytes;
    return notifyCredit(pending);
  }
  let event: CallStreamEvent;
  if (message.op === "data") {
    event = { op: "data", data: body ? body.slice() : new Uint8Array(0) };
  } else {
    closeCall(message.call, pending);
    event = message.op === "error" ? { op: "error", error: message.error } : { op: "end" };
  }
  if (pending.early) pending.early.push(event);
  else pending.listener?.(event);
  wake();
}

function onFrame(frame: RawFrame, readAt: number): void {
  const message = frame.header as HostMessage;
  switch (message.t) {
    case "eval":
      void runEval(message, frame.body, readAt);
      break;
    case "modules":
      receiveModules(message);
      break;
    case "tools":
      receiveToolCatalog(message);
      realms.discardSpares();
      break;
    case "batch":
      batches.run(message, frame.body);
      break;
    case "drop":
      batches.drop(message.version);
      break;
    case "request":
      apps.request(message);
      break;
    case "body":
      apps.body(message, frame.body);
      break;
    case "globals":
      sandboxGlobals = frame.body ? (deserialize(frame.body) as Record<string, unknown>) : {};
      break;
    case "reply":
      handleReply(message, frame.body);
      break;
    case "stream":
      handleStream(message, frame.body);
      break;
  }
}

/** A failure of the carrier itself (not of user code) must end the process loudly, never silently. */
function die(error: unknown): never {
  console.error("paddock carrier failed:", error);
  return io.exit(70);
}

/**
 * Every eval leaves a whole V8 context behind, which only a full mark-compact frees. Collected in
 * the carrier's idle time every so many evals, they do not grow the heap toward the memory limit
 * (110 MB RSS after 2,000 evals, against 158 MB with V8's own collections alone). The pause (8–12
 * ms) is no shorter than V8's own; it lands on the path only when the next eval arrives during it,
 * and rarely enough to fall on under 1% of evals.
 */
const COLLECT_EVERY_EVALS = 128;
let evalsSinceCollection = 0;

const nap = new Int32Array(new SharedArrayBuffer(4));
try {
  io.send({ t: "ready" });
  await io.readFrames(onFrame, (inputWasWaiting) => {
    // An app waiting for requests, with nothing of its own pending, may wait in a blocking read too.
    if (running > 0 || apps.isBusy()) return false;
    // Let the host run first: it is reading the reply just sent, and its wake-up likely put it on
    // this very core, behind the spare realm made next. Unless the host sends back to back (the
    // last request was waiting when the carrier came to read): then the host's next request would
    // wait through the nap too, and the realm it needs must be made anyway.
    if (!inputWasWaiting) Atomics.wait(nap, 0, 0, 0.1);
    if (evalsSinceCollection >= COLLECT_EVERY_EVALS) {
      evalsSinceCollection = 0;
      hooks.collectGarbage();
    }
    realms.fillNow();
    return true;
  }, afterBatch);
} catch (error) {
  die(error);
}
io.exit(0);
