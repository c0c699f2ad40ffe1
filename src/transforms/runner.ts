/**
 * One batch of one transform on one carrier, through to an outcome for every item, whatever the
 * items do to the carrier. A carrier that dies while running the batch (an item blew the memory
 * limit, looped where the vm timeout cannot reach, crashed it) is replaced, and the batch goes on
 * from the first item not reported, carefully for a while (one item per batch): if an item kills
 * the new carrier too, that item is the culprit and fails with the carrier's error; then, or once
 * the careful stretch passes, full speed again.
 */
import type { Failure } from "../protocol/messages.js";
import type { LogLevel } from "../capabilities/console/messages.js";
import type { BatchEnd, BatchProgress } from "../host/carrier.js";
import type { Sandbox } from "../host/sandbox.js";
import { CarrierStartError, SandboxClosedError, SandboxError } from "../host/errors.js";

/** What a transform's item failed with: the error's own name, its message, its stack in the user's source. */
export interface TransformFailure {
  /** "TypeError", "TimeoutError", "MemoryLimitError", "OutputLimitError", "CarrierCrashedError"… */
  name: string;
  message: string;
  stack?: string;
  line?: number;
  column?: number;
}

/** Every item's outcome, by position: its result's JSON text ("" when it has none), or its failure. */
export interface BatchOutcome {
  texts: string[];
  failures: Map<number, TransformFailure>;
  /** Items whose result was `undefined`. */
  empty: Set<number>;
  logs: Array<{ i: number; level: LogLevel; message: string }>;
  /** Each item's time in the carrier, in µs (careful batches only: see runBatch's `careful`). */
  us: number[];
  cpuMs: number;
  durations: Array<readonly [number, number]>;
  /** Carriers that died during the batch. */
  restarts: number;
}

export interface BatchTarget {
  sandbox: Sandbox;
  slot: number;
  version: number;
  timeoutMs: number;
  /** Gives a fresh carrier the function again (its module state starts over). */
  rekeep(slot: number): Promise<void>;
}

/**
 * Items replayed carefully after a death: at least this many, or twice the batch's largest report,
 * and twice as many as the last time if the last careful stretch found no culprit.
 */
const CAREFUL_WINDOW = 1000;
/** Deaths while giving a fresh carrier the function, before the batch gives up. */
const MAX_REKEEP_DEATHS = 3;

/**
 * `alwaysCareful`: one item per batch, each with its time (slower: for a few items, as in a
 * preview). Rejects only if the sandbox closes.
 */
export async function runBatch(target: BatchTarget, items: readonly string[], alwaysCareful = false): Promise<BatchOutcome> {
  const outcome: BatchOutcome = { texts: new Array<string>(items.length), failures: new Map(), empty: new Set(), logs: [], us: [], cpuMs: 0, durations: [], restarts: 0 };
  let done = 0;
  /** Items still to run carefully (Infinity: all). */
  let carefulLeft = alwaysCareful ? Infinity : 0;
  let largestReport = 0;
  let window = 0;
  let rekeeps = 0;
  let rekeepDeaths = 0;
  while (done < items.length) {
    const offset = done;
    const careful = carefulLeft > 0;
    // Carefully, one message per batch: a death even while the carrier reads the batch (a huge
    // message) is then that message's.
    const end = careful ? offset + 1 : items.length;
    const part = offset === 0 && end === items.length ? items : items.slice(offset, end);
    const onProgress = (progress: BatchProgress) => {
      record(outcome, progress, offset);
      done = offset + progress.from + progress.texts.length;
      largestReport = Math.max(largestReport, progress.texts.length);
    };
    let result: BatchEnd;
    try {
      result = await target.sandbox.batch(target.slot, { version: target.version, items: part, careful, timeoutMs: target.timeoutMs, onProgress });
    } catch (error) {
      // The carrier could not start, the sandbox closed: no item's doing.
      if (error instanceof SandboxClosedError || !(error instanceof SandboxError)) throw error;
      return failRest(outcome, items.length, done, error);
    }
    switch (result.kind) {
      case "missing":
        // A carrier that replaced a dead one: it gets the function again, once per batch at most.
        if (rekeeps++ > 0) return failRest(outcome, items.length, done, new SandboxError("the transform's carrier lost its function twice in one batch"));
        try {
          await target.rekeep(target.slot);
        } catch (error) {
          if (error instanceof SandboxClosedError || !(error instanceof SandboxError)) throw error;
          // The carrier died while compiling (another batch's item killed it): a fresh one, again.
          if (!error.carrierRestarted || error instanceof CarrierStartError || ++rekeepDeaths > MAX_REKEEP_DEATHS) return failRest(outcome, items.length, done, error);
          rekeeps = 0;
        }
        break;
      case "done":
        outcome.cpuMs += result.cpuMs;
        outcome.durations.push(...result.durations);
        if (careful) carefulLeft--;
        break;
      case "died":
        if (result.error instanceof SandboxClosedError) throw result.error;
        rekeeps = 0;
        // It died while another batch ran (this one goes on from where it was), or after this one
        // reported its every item.
        if (!result.wasRunning || done >= items.length) break;
        outcome.restarts++;
        if (result.error instanceof CarrierStartError) return failRest(outcome, items.length, done, result.error);
        if (careful) {
          outcome.failures.set(done, failureOfDeath(result.error));
          outcome.texts[done] = "";
          done++;
          carefulLeft = alwaysCareful ? Infinity : 0;
          window = 0;
        } else {
          window = window > 0 ? 2 * window : Math.max(CAREFUL_WINDOW, 2 * largestReport);
          carefulLeft = window;
        }
        break;
    }
  }
  return outcome;
}

function record(outcome: BatchOutcome, progress: BatchProgress, offset: number): void {
  const at = offset + progress.from;
  const { texts } = progress;
  for (let k = 0; k < texts.length; k++) outcome.texts[at + k] = texts[k]!;
  for (const i of progress.empty) outcome.empty.add(offset + i);
  for (const error of progress.errors) outcome.failures.set(offset + error.i, failureOf(error));
  for (const entry of progress.logs) outcome.logs.push({ i: offset + entry.i, level: entry.level, message: entry.message });
  if (progress.us) for (let k = 0; k < progress.us.length; k++) outcome.us[at + k] = progress.us[k]!;
}

function failureOf(failure: Failure): TransformFailure {
  const { name, message, stack, line, column } = failure;
  return { name, message, ...(stack !== undefined ? { stack } : {}), ...(line !== undefined ? { line } : {}), ...(column !== undefined ? { column } : {}) };
}

/** The item that was running when its carrier died, twice: the carrier's error is its error. */
function failureOfDeath(error: SandboxError): TransformFailure {
  const message = error.message.replace(/; the sandbox gets a fresh carrier for its next eval$/, "").replace(/ and its carrier was killed$/, "");
  return { name: error.name, message: `${message} (the carrier was replaced; the other messages went on)` };
}

/** A failure that is no item's doing (the carrier could not start, say): every item left fails with it. */
function failRest(outcome: BatchOutcome, count: number, from: number, error: SandboxError): BatchOutcome {
  for (let i = from; i < count; i++) {
    outcome.failures.set(i, { name: error.name, message: error.message });
    outcome.texts[i] = "";
  }
  return outcome;
}
