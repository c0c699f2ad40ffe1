/**
 * Shared tools of the hostile suites: what "contained" means, measured from the outside.
 *
 * - the eval ends in one of the expected typed errors (or a value) within a bound that follows
 *   from the sandbox's own limits;
 * - the same sandbox answers `1 + 1` afterwards (with a fresh carrier after a kill);
 * - a second, unrelated sandbox (the bystander) keeps answering while the attack runs;
 * - the host process keeps its memory and leaks no carrier processes;
 * - nothing the sandbox produced names a host path.
 */
import assert from "node:assert/strict";
import { homedir, tmpdir } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Sandbox, SandboxError, type EvalOptions, type RunResult, type SandboxOptions } from "../../src/index.js";
import { hostRssMb } from "../helpers.js";
import { LONG_TIMEOUT_MS } from "../timing.js";

export type ErrorClass = abstract new (...args: never[]) => SandboxError;

/** The repository root (dist/test/hostile/ → three levels up, or test/hostile/ → two). */
const here = fileURLToPath(new URL(".", import.meta.url));
export const REPO_ROOT = here.replace(/\/dist\/test\/hostile\/?$/, "").replace(/\/test\/hostile\/?$/, "");

/** Substrings that reveal the host: its paths, its working directory, its user. */
export function hostMarkers(): string[] {
  const markers = new Set<string>([REPO_ROOT, process.cwd(), "/work/", "/tmp/", "node_modules", `${tmpdir()}/paddock-`]);
  const home = homedir();
  if (home.length > 1) markers.add(home);
  for (const marker of [...markers]) if (marker.length < 4 || marker === "/") markers.delete(marker);
  return [...markers];
}

/** Every `data:…;base64,` payload in `text`, decoded (stacks can carry a module's whole source). */
function decodedDataUrls(text: string): string[] {
  const out: string[] = [];
  for (const match of text.matchAll(/data:[^,\s"')]*;base64,([A-Za-z0-9+/=]+)/g)) {
    const payload = match[1];
    if (payload) out.push(Buffer.from(payload, "base64").toString("latin1"));
  }
  return out;
}

/** Asserts that `text` (and any base64 data: URL inside it) names no host path. */
export function assertNoHostDetail(text: unknown, what: string): void {
  const haystack = typeof text === "string" ? text : JSON.stringify(text) ?? "";
  for (const piece of [haystack, ...decodedDataUrls(haystack)]) {
    for (const marker of hostMarkers()) {
      assert.ok(!piece.includes(marker), `${what} reveals the host (${JSON.stringify(marker)}): ${clip(piece)}`);
    }
  }
}

/** Asserts that nothing in a run result (value, error message, sandbox stack, logs) names a host path. */
export function assertResultHasNoHostDetail(result: RunResult, what: string): void {
  if (result.ok) {
    assertNoHostDetail(safeJson(result.value), `${what}: the value`);
  } else {
    assertNoHostDetail(result.error.message, `${what}: the error message`);
    // Only a ScriptError's stack comes from the sandbox; the other classes carry the host's own stack.
    if (result.error.name === "ScriptError") assertNoHostDetail(result.error.stack ?? "", `${what}: the sandbox stack`);
  }
  for (const entry of result.logs) assertNoHostDetail(entry.message, `${what}: a log entry`);
}

/** A bounded JSON-ish rendering: huge or sparse arrays, deep nesting and cycles cannot stall the test. */
export function safeJson(value: unknown, budget = 200_000): string {
  const seen = new Set<object>();
  let out = "";
  const write = (text: string): boolean => {
    out += text;
    return out.length < budget;
  };
  const walk = (v: unknown, depth: number): boolean => {
    switch (typeof v) {
      case "string":
        return write(JSON.stringify(v.length > 10_000 ? `${v.slice(0, 10_000)}… (${v.length} chars)` : v));
      case "number":
      case "boolean":
        return write(String(v));
      case "bigint":
        return write(`${v}n`);
      case "undefined":
        return write("undefined");
      case "symbol":
        return write(v.toString());
      case "function":
        return write("[function]");
    }
    if (v === null) return write("null");
    const object = v as object;
    if (seen.has(object)) return write("[cycle]");
    if (depth > 8) return write("[deep]");
    seen.add(object);
    try {
      if (ArrayBuffer.isView(object)) return write(`[${object.constructor.name} of ${object.byteLength} bytes]`);
      if (object instanceof ArrayBuffer) return write(`[ArrayBuffer of ${object.byteLength} bytes]`);
      if (Array.isArray(object)) {
        if (!write("[")) return false;
        const keys = Object.keys(object).slice(0, 1_000);
        for (const key of keys) if (!write(`${key}:`) || !walk((object as unknown[])[Number(key)], depth + 1) || !write(",")) return false;
        return write(object.length > keys.length ? `… length ${object.length}]` : "]");
      }
      if (object instanceof Map) {
        if (!write("Map{")) return false;
        let count = 0;
        for (const [key, entry] of object) {
          if (count++ > 200) break;
          if (!walk(key, depth + 1) || !write("=>") || !walk(entry, depth + 1) || !write(",")) return false;
        }
        return write("}");
      }
      if (!write("{")) return false;
      for (const key of Object.keys(object).slice(0, 200)) {
        if (!write(`${JSON.stringify(key)}:`) || !walk((object as Record<string, unknown>)[key], depth + 1) || !write(",")) return false;
      }
      return write("}");
    } finally {
      seen.delete(object);
    }
  };
  try {
    walk(value, 0);
  } catch (error) {
    out += ` [unrenderable: ${String(error)}]`;
  }
  return out.length > budget ? `${out.slice(0, budget)}…` : out;
}

export function clip(text: string, max = 600): string {
  return text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text;
}

export function describeResult(result: RunResult): string {
  return result.ok ? `value ${clip(safeJson(result.value), 300)}` : `${result.error.name}: ${clip(result.error.message, 300)}`;
}

/** Asserts that `result` failed with one of `classes`; returns the error. */
export function assertFailedWith(result: RunResult, classes: readonly ErrorClass[], what: string): SandboxError {
  assert.equal(result.ok, false, `${what}: expected ${classes.map((c) => c.name).join(" or ")}, got ${describeResult(result)}`);
  if (result.ok) throw new Error("unreachable");
  assert.ok(
    classes.some((errorClass) => result.error instanceof errorClass),
    `${what}: expected ${classes.map((c) => c.name).join(" or ")}, got ${describeResult(result)}`,
  );
  return result.error;
}

/** Runs `code` and returns its value, failing the test with the error otherwise. */
export async function evalOk<T = unknown>(sandbox: Sandbox, code: string, options?: EvalOptions): Promise<T> {
  const result = await sandbox.run<T>(code, options);
  if (!result.ok) assert.fail(`expected a value, got ${describeResult(result)}\n  code: ${clip(code, 300)}`);
  return result.value;
}

/**
 * Asserts that `sandbox` still answers `1 + 1`. After a kill that takes a fresh carrier, whose cold
 * start counts against the eval's time limit and can take seconds on a busy machine: the check gets
 * a time limit far above that, since what it proves is that the sandbox answers, not how fast.
 */
export async function assertAnswers(sandbox: Sandbox, what: string): Promise<void> {
  const result = await sandbox.run("1 + 1", { timeoutMs: LONG_TIMEOUT_MS });
  assert.ok(result.ok && result.value === 2, `${what}: the sandbox no longer answers 1 + 1 (${describeResult(result)})`);
}

/**
 * A second sandbox that keeps evaluating `1 + 1` while an attack runs elsewhere. It records the
 * worst latency and any failure: an attack is not contained if it slows or breaks a bystander.
 */
export class Bystander {
  private constructor(readonly sandbox: Sandbox) {}

  static async create(): Promise<Bystander> {
    return new Bystander(await Sandbox.create({ timeoutMs: 5_000, memoryMb: 64 }));
  }

  /** Runs `attack` while pinging; returns its result and the bystander's worst latency. */
  async during<T>(attack: () => Promise<T>): Promise<{ value: T; worstMs: number; pings: number; failures: string[] }> {
    let running = true;
    let worstMs = 0;
    let pings = 0;
    const failures: string[] = [];
    const pinger = (async () => {
      while (running) {
        const started = performance.now();
        const result = await this.sandbox.run("1 + 1");
        const took = performance.now() - started;
        pings++;
        worstMs = Math.max(worstMs, took);
        if (!result.ok || result.value !== 2) failures.push(describeResult(result));
        await sleep(20);
      }
    })();
    try {
      const value = await attack();
      return { value, worstMs, pings, failures };
    } finally {
      running = false;
      await pinger;
    }
  }

  close(): Promise<void> {
    return this.sandbox.close();
  }
}

export interface ContainmentExpectation {
  /** Typed errors the attack may end in. */
  errors: readonly ErrorClass[];
  /** Whether a value (instead of an error) is an acceptable end. */
  valueOk?: boolean | ((value: unknown) => boolean);
  /** Upper bound on the attack's wall time (ms): the eval's time limit plus generous slack. */
  maxMs: number;
  /**
   * Upper bound on the bystander's worst latency (ms). It also counts the time the bystander's own
   * carrier waits for a core, which a machine whose every core is busy stretches.
   */
  bystanderMaxMs?: number;
  /**
   * Upper bound on the longest stall of the host's event loop during the attack (ms): the host
   * freezing every sandbox at once, told apart from the bystander's carrier waiting for a core.
   */
  hostStallMaxMs?: number;
  /** Upper bound on the host's RSS growth (MB). */
  hostRssGrowthMb?: number;
  evalOptions?: EvalOptions;
}

/** Runs one attack and asserts everything "contained" means. Returns the attack's result. */
export async function assertContained(
  sandbox: Sandbox,
  bystander: Bystander,
  code: string,
  expectation: ContainmentExpectation,
): Promise<RunResult> {
  const rssBefore = hostRssMb();
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  const started = performance.now();
  const { value: result, worstMs, pings, failures } = await bystander.during(async () => {
    const result = await sandbox.run(code, expectation.evalOptions);
    return result;
  }).finally(() => loopDelay.disable());
  const elapsed = performance.now() - started;
  const hostStallMs = loopDelay.max / 1e6;
  const what = `attack ${clip(JSON.stringify(code), 160)}`;
  if (result.ok) {
    const accepts = typeof expectation.valueOk === "function" ? expectation.valueOk(result.value) : expectation.valueOk === true;
    assert.ok(accepts, `${what}: expected ${expectation.errors.map((c) => c.name).join(" or ")}, got ${describeResult(result)}`);
  } else {
    assertFailedWith(result, expectation.errors, what);
  }
  assert.ok(elapsed <= expectation.maxMs, `${what}: took ${Math.round(elapsed)} ms, more than the bound of ${expectation.maxMs} ms (${describeResult(result)})`);
  assertResultHasNoHostDetail(result, what);
  assert.deepEqual(failures, [], `${what}: the bystander sandbox failed meanwhile`);
  const bystanderMax = expectation.bystanderMaxMs ?? 1_500;
  assert.ok(worstMs <= bystanderMax, `${what}: the bystander's worst latency was ${Math.round(worstMs)} ms (bound ${bystanderMax} ms, ${pings} pings; the host's event loop stalled ${Math.round(hostStallMs)} ms at most)`);
  if (expectation.hostStallMaxMs !== undefined) {
    assert.ok(hostStallMs <= expectation.hostStallMaxMs, `${what}: the host's event loop stalled for ${Math.round(hostStallMs)} ms (bound ${expectation.hostStallMaxMs} ms)`);
  }
  await assertAnswers(sandbox, what);
  const growth = hostRssMb() - rssBefore;
  const rssBound = expectation.hostRssGrowthMb ?? 200;
  assert.ok(growth <= rssBound, `${what}: the host's RSS grew by ${Math.round(growth)} MB (bound ${rssBound} MB)`);
  return result;
}

let gcFunction: (() => void) | undefined;

/** Runs a full GC in the host (exposing gc at run time), so that memory numbers mean retention. */
export function forceGc(): void {
  if (!gcFunction) {
    setFlagsFromString("--expose-gc");
    gcFunction = runInNewContext("gc") as () => void;
  }
  gcFunction();
  gcFunction();
}

/** What the host's heap and off-heap buffers retain after a full GC, in MB. */
export function hostRetainedMb(): number {
  forceGc();
  const usage = process.memoryUsage();
  return (usage.heapUsed + usage.external) / 1024 / 1024;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export { childPids, childrenRssMb } from "../processes.js";
export { withSandbox } from "../helpers.js";
