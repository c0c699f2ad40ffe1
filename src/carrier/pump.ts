/**
 * Realms have microtask queues of their own (node:vm's "afterEvaluate" mode): the carrier decides
 * when a realm's queued work runs. While an eval is running, its realm is pumped often — right away
 * after anything that may have settled one of its promises, and on a short cadence otherwise
 * (an outer promise, from crypto or a body read, settling on its own). Once the eval has ended, its
 * realm is never pumped again: work it left behind never runs, so it cannot reach a later eval.
 */
import vm from "node:vm";
import { setImmediate } from "node:timers";

/** Running an empty script in a realm runs everything in that realm's microtask queue. */
const drain = new vm.Script("");
const live = new Set<vm.Context>();
/** Realms pumped for an app's requests, which may wait long (a long poll): they back off further. */
const patient = new Set<vm.Context>();
/** Pump on every event-loop turn for this long after the last sign of activity, then back off. */
const EAGER_MS = 1;
const BACKOFF_MS = 1;
/**
 * When only patient realms are live and nothing happened for PATIENT_AFTER_MS, the pump backs off
 * to this: an app waiting on a timer or a client for seconds costs its carrier ~1% of a core
 * instead of ~5%. What settles a realm's promise through the host (a reply, a request's bytes, a
 * timer) wakes the pump at once anyway.
 */
const PATIENT_BACKOFF_MS = 16;
const PATIENT_AFTER_MS = 50;

/** The pending tick: on the next turn of the loop, or a backed-off timer. */
let scheduled: "immediate" | ReturnType<typeof setTimeout> | undefined;
let eagerUntil = 0;

/** Runs what is queued on a realm's microtask queue now (after a task, as HTML's event loop does). */
export function runMicrotasks(context: vm.Context): void {
  drain.runInContext(context);
}

export function pumpWhileRunning(context: vm.Context, isPatient = false): () => void {
  live.add(context);
  if (isPatient) patient.add(context);
  wake();
  return () => {
    live.delete(context);
    patient.delete(context);
  };
}

/** Something may have settled a realm's promise (a timer fired, the host replied): pump soon. */
export function wake(): void {
  eagerUntil = performance.now() + EAGER_MS;
  // A backed-off tick is too late now (Deno's shortest timer is about 2 ms): pump on the next turn.
  if (scheduled !== undefined && scheduled !== "immediate") {
    clearTimeout(scheduled);
    scheduled = undefined;
  }
  schedule();
}

function schedule(): void {
  if (scheduled !== undefined || live.size === 0) return;
  const now = performance.now();
  if (now < eagerUntil) {
    scheduled = "immediate";
    setImmediate(tick);
  } else {
    const allPatient = patient.size === live.size;
    scheduled = setTimeout(tick, allPatient && now - eagerUntil > PATIENT_AFTER_MS ? PATIENT_BACKOFF_MS : BACKOFF_MS);
  }
}

function tick(): void {
  scheduled = undefined;
  for (const context of live) drain.runInContext(context);
  schedule();
}
