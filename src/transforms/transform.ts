/**
 * Transforms: a user's function, compiled once per carrier, called on every message of a stream.
 * A transform is one trust domain (a sandbox of its own); messages and results cross in batches,
 * as JSON, one frame per few milliseconds of work; one bad message fails alone (see runner.ts).
 */
import { Sandbox } from "../host/sandbox.js";
import type { SandboxOptions } from "../host/options.js";
import { parseOptions } from "../host/options.js";
import { lazySchema } from "../shared/schema.js";
import { CarrierCrashedError, MemoryLimitError, OutputLimitError, SandboxClosedError, SandboxError, TimeoutError, scriptErrorOf } from "../host/errors.js";
import type { LogLevel } from "../capabilities/console/messages.js";
import { runBatch, type BatchOutcome, type TransformFailure } from "./runner.js";
import { StatsCollector, type TransformStats } from "./stats.js";

export type { TransformFailure } from "./runner.js";
export type { TransformStats } from "./stats.js";

const MiB = 1024 * 1024;

/** Sandbox options a transform takes as they are: its carriers, memory and capabilities. */
type SandboxPart = Pick<SandboxOptions, "memoryMb" | "carriers" | "net" | "env" | "globals" | "modules" | "tools" | "mcp" | "onFetch" | "onImport" | "maxTimers">;

const SANDBOX_KEYS = ["memoryMb", "carriers", "net", "env", "globals", "modules", "tools", "mcp", "onFetch", "onImport", "maxTimers"] as const;

const transformOptionsSchema = lazySchema((z) =>
  z.strictObject({
    /** Checked by Sandbox.create. */
    ...Object.fromEntries(SANDBOX_KEYS.map((key) => [key, z.unknown().optional()])),
    /** JavaScript or TypeScript whose `export default` is a function of one message. */
    code: z.string(),
    /** Shown in stacks; a .ts name makes the code TypeScript. */
    filename: z.string().min(1).max(256).regex(/^[^\n\r/\\]+$/, "must be a plain file name").default("transform.js"),
    language: z.enum(["auto", "js", "ts"]).default("auto"),
    /** One message's time limit; a message over it fails with a TimeoutError, the others go on. */
    timeoutMsPerMessage: z.number().int().min(1).max(600_000).default(1_000),
    /** The time limit of the code's top-level (module) code, run once per carrier. */
    initTimeoutMs: z.number().int().min(1).max(600_000).default(10_000),
    /** One message's result, as JSON; a larger one fails that message with an OutputLimitError. */
    maxResultBytes: z.number().int().min(1024).max(256 * MiB).default(1 * MiB),
    /** One message's console output; more fails that message with an OutputLimitError. */
    maxLogBytes: z.number().int().min(0).max(16 * MiB).default(64 * 1024),
    /** Messages per batch in callMany() and stream() (unless stream is told otherwise). */
    batchSize: z.number().int().min(1).max(100_000).default(1_000),
    /** Batches in flight (or done and not yet consumed) at once; default: 2 per carrier. */
    maxInFlight: z.number().int().min(1).max(1024).optional(),
    onLog: z.custom<(entry: TransformLog) => void>((value) => typeof value === "function", "expected a function").optional(),
  }),
);

const streamOptionsSchema = lazySchema((z) =>
  z.strictObject({
    batchSize: z.number().int().min(1).max(100_000).optional(),
    maxInFlight: z.number().int().min(1).max(1024).optional(),
    lingerMs: z.number().min(0).max(60_000).default(5),
  }),
);

export interface TransformOptions extends SandboxPart {
  /** JavaScript or TypeScript whose `export default` is a function of one message. */
  code: string;
  filename?: string;
  language?: "auto" | "js" | "ts";
  /** One message's time limit (default 1,000 ms); over it, that message fails with a TimeoutError. */
  timeoutMsPerMessage?: number;
  /** The time limit of the code's top-level code, run once per carrier (default 10,000 ms). */
  initTimeoutMs?: number;
  /** One message's result as JSON (default 1 MiB); over it, that message fails with an OutputLimitError. */
  maxResultBytes?: number;
  /** One message's console output (default 64 KiB); over it, that message fails with an OutputLimitError. */
  maxLogBytes?: number;
  /** Messages per batch in callMany() and stream() (default 1,000). */
  batchSize?: number;
  /** Batches in flight, or done and not yet consumed, at once (default 2 per carrier). */
  maxInFlight?: number;
  /** Each console entry of the function, with the message it was logging for. */
  onLog?: (entry: TransformLog) => void;
}

export interface TransformLog {
  /** The message's index in its callMany() or stream(). */
  index: number;
  version: number;
  level: LogLevel;
  message: string;
}

/** One message's outcome: its result, or its failure with its input (a dead letter). */
export type TransformResult<T = unknown> =
  | { ok: true; value: T; index: number; version: number }
  | { ok: false; error: TransformFailure; index: number; input: unknown; version: number };

/** A message's outcome as JSON text (callManyJson, streamJson): `json` is undefined when the function returned undefined. */
export type TransformJsonResult =
  | { ok: true; json: string | undefined; index: number; version: number }
  | { ok: false; error: TransformFailure; index: number; input: string | undefined; version: number };

export interface StreamOptions {
  /** Messages per batch (default: the transform's batchSize). */
  batchSize?: number;
  /** Batches in flight or not yet consumed (default: the transform's maxInFlight). */
  maxInFlight?: number;
  /** How long a partly filled batch waits for more messages from a slow source (default 5 ms). */
  lingerMs?: number;
}

export interface PreviewEntry {
  ok: boolean;
  value?: unknown;
  error?: TransformFailure;
  logs: Array<{ level: LogLevel; message: string }>;
  /** The function's time on this sample, in the carrier (ms). */
  ms: number;
}

type Resolved = ReturnType<ReturnType<typeof transformOptionsSchema>["parse"]>;

/** Messages, encoded: the items that go to the carrier, and the messages that cannot. */
interface Encoded {
  texts: string[];
  /** Where each text's message is, when some messages could not be encoded (else texts[i] is message i). */
  positions: number[] | undefined;
  refused: Map<number, TransformFailure>;
}

export class Transform implements AsyncDisposable {
  private version = 1;
  private nextVersion = 2;
  /** The code of each version still in use (a fresh carrier is given it again). */
  private readonly codes = new Map<number, string>();
  /** Batches running, by version: an old version is dropped once its last batch ends. */
  private readonly running = new Map<number, number>();
  private readonly load: number[];
  private readonly collector = new StatsCollector();
  private updating: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly sandbox: Sandbox,
    private readonly options: Resolved,
    code: string,
  ) {
    this.codes.set(1, code);
    this.load = Array.from({ length: sandbox.carrierCount }, () => 0);
  }

  /** Compiles `options.code` on every carrier; rejects with a ScriptError (or its limit's error) if it cannot. */
  static async create(options: TransformOptions): Promise<Transform> {
    const resolved = parseOptions(transformOptionsSchema(), options, "Transform.create");
    const sandboxPart: Record<string, unknown> = {};
    const given = resolved as Record<string, unknown>;
    for (const key of SANDBOX_KEYS) if (given[key] !== undefined) sandboxPart[key] = given[key];
    const { maxResultBytes, maxLogBytes, initTimeoutMs } = resolved;
    const sandbox = await Sandbox.create({ ...(sandboxPart as SandboxPart), maxResultBytes, maxLogBytes, timeoutMs: initTimeoutMs });
    const transform = new Transform(sandbox, resolved, resolved.code);
    try {
      await transform.keepEverywhere(1);
    } catch (error) {
      await sandbox.close();
      throw error;
    }
    return transform;
  }

  /** The function's result for one message; a failure rejects with its SandboxError. */
  async call<T = unknown>(message: unknown): Promise<T> {
    const [result] = await this.callMany<T>([message]);
    if (result!.ok) return result!.value;
    throw errorOf(result!.error);
  }

  /** Every message's outcome, in order; never rejects for a message's failure. */
  async callMany<T = unknown>(messages: readonly unknown[]): Promise<Array<TransformResult<T>>> {
    if (!Array.isArray(messages)) throw new TypeError("Transform.callMany: messages must be an array");
    const size = this.options.batchSize;
    if (messages.length <= size) return this.runMessages<T>(messages, 0);
    const results: Array<TransformResult<T>> = [];
    for await (const result of this.stream<T>(messages)) results.push(result);
    return results;
  }

  /**
   * The outcome of every message of `source`, in order, as they come. At most `maxInFlight`
   * batches are held at once (running, or done and not yet consumed): a slow consumer slows the
   * reading of `source`.
   */
  stream<T = unknown>(source: Iterable<unknown> | AsyncIterable<unknown>, options: StreamOptions = {}): AsyncGenerator<TransformResult<T>, void, undefined> {
    return this.pipeline(source, options, (batch, base) => this.runMessages<T>(batch, base));
  }

  /**
   * callMany() for messages that are JSON texts already (a line of NDJSON, a Kafka record's
   * value): they go to the carrier as they are, and results come back as JSON texts, never parsed
   * on the host. A text that is not one JSON value fails as its message's TypeError.
   */
  async callManyJson(texts: readonly string[]): Promise<TransformJsonResult[]> {
    if (!Array.isArray(texts)) throw new TypeError("Transform.callManyJson: texts must be an array of strings");
    if (texts.length <= this.options.batchSize) return this.runJson(texts, 0);
    const results: TransformJsonResult[] = [];
    for await (const result of this.streamJson(texts)) results.push(result);
    return results;
  }

  /** stream() for JSON texts (see callManyJson). */
  streamJson(source: Iterable<string> | AsyncIterable<string>, options: StreamOptions = {}): AsyncGenerator<TransformJsonResult, void, undefined> {
    return this.pipeline(source, options, (batch, base) => this.runJson(batch as string[], base));
  }

  private async *pipeline<R>(source: Iterable<unknown> | AsyncIterable<unknown>, options: StreamOptions, run: (batch: unknown[], base: number) => Promise<R[]>): AsyncGenerator<R, void, undefined> {
    const given = parseOptions(streamOptionsSchema(), options, "Transform.stream");
    const batchSize = given.batchSize ?? this.options.batchSize;
    const maxInFlight = given.maxInFlight ?? this.options.maxInFlight ?? 2 * this.load.length;
    const reader = new BatchReader(source, batchSize, given.lingerMs);
    const held: Array<Promise<R[]>> = [];
    /** The next batch from the source, or how reading it failed. */
    let reading: Promise<{ batch: unknown[] | undefined } | { error: unknown }> | undefined;
    let index = 0;
    let ended = false;
    let sourceError: { error: unknown } | undefined;
    const take = (read: { batch: unknown[] | undefined } | { error: unknown }) => {
      reading = undefined;
      if ("error" in read) {
        // Results already on their way are still given, then the source's error.
        sourceError = read;
        ended = true;
        return;
      }
      if (!read.batch) {
        ended = true;
        return;
      }
      const results = run(read.batch, index);
      results.catch(() => {});
      held.push(results);
      index += read.batch.length;
    };
    try {
      for (;;) {
        // The batch being read counts as held: it is in memory too.
        if (!ended && !reading && held.length + 1 <= maxInFlight) reading = reader.next().then((batch) => ({ batch }), (error: unknown) => ({ error }));
        const head = held[0];
        if (!head) {
          if (reading) {
            take(await reading);
            continue;
          }
          if (sourceError) throw sourceError.error;
          return;
        }
        if (reading && (await Promise.race([head.then(() => false, () => false), reading.then(() => true)]))) {
          take(await reading);
          continue;
        }
        yield* await head;
        held.shift();
      }
    } finally {
      reader.close();
    }
  }


  /**
   * Swaps in new code: compiled on every carrier first (a failure rejects and changes nothing),
   * then used by every batch that starts after; batches already running finish with the old.
   */
  update(code: string): Promise<void> {
    if (typeof code !== "string") throw new TypeError("Transform.update: code must be a string");
    const next = this.updating.then(async () => {
      const version = this.nextVersion++;
      this.codes.set(version, code);
      try {
        await this.keepEverywhere(version);
      } catch (error) {
        this.forget(version);
        throw error;
      }
      const old = this.version;
      this.version = version;
      if (!this.running.get(old)) this.forget(old);
    });
    this.updating = next.catch(() => {});
    return next;
  }

  /**
   * Runs the function (or `options.code`, compiled apart, in a fresh realm) on a few samples, each
   * reported with its logs and time: what an editor shows as its user types. Not counted in stats.
   */
  async preview(samples: readonly unknown[], options: { code?: string } = {}): Promise<PreviewEntry[]> {
    if (!Array.isArray(samples)) throw new TypeError("Transform.preview: samples must be an array");
    let version = this.version;
    if (options.code !== undefined) {
      version = this.nextVersion++;
      this.codes.set(version, options.code);
    }
    this.hold(version);
    try {
      if (options.code !== undefined) await this.keepOn(0, version);
      const encoded = encodeMessages(samples, jsonOf);
      const outcome = await this.runOn(0, version, encoded.texts, true);
      return samples.map((_, position) => {
        const refused = encoded.refused.get(position);
        const i = encoded.positions ? encoded.positions.indexOf(position) : position;
        if (refused || i < 0) return { ok: false, error: refused!, logs: [], ms: 0 };
        const logs = outcome.logs.filter((entry) => entry.i === i).map(({ level, message }) => ({ level, message }));
        const ms = (outcome.us[i] ?? 0) / 1000;
        const failure = outcome.failures.get(i);
        if (failure) return { ok: false, error: failure, logs, ms };
        const decoded = decodeResult(outcome.empty.has(i) ? undefined : outcome.texts[i]);
        return "failure" in decoded ? { ok: false, error: decoded.failure, logs, ms } : { ok: true, value: decoded.value, logs, ms };
      });
    } finally {
      this.release(version);
    }
  }

  stats(): TransformStats {
    return this.collector.snapshot(this.version);
  }

  private async runJson(texts: readonly string[], base: number): Promise<TransformJsonResult[]> {
    return this.runEncoded(texts, base, jsonLine, (text, index, version) => {
      // Handed on as it is, but only if it is JSON: the carrier is not trusted to have written it.
      const json = decodeResult(text);
      return "failure" in json ? { ok: false, error: json.failure, index, input: undefined, version } : { ok: true, json: text, index, version };
    });
  }

  private runMessages<T>(messages: readonly unknown[], base: number): Promise<Array<TransformResult<T>>> {
    return this.runEncoded(messages, base, jsonOf, (text, index, version) => {
      const decoded = decodeResult(text);
      return "failure" in decoded ? { ok: false, error: decoded.failure, index, input: undefined, version } : { ok: true, value: decoded.value as T, index, version };
    });
  }

  /**
   * Runs messages as one batch: each encoded by `encode` (one that cannot be is refused, and not
   * run), each result made by `result` from its JSON text (undefined: the function returned undefined).
   */
  private async runEncoded<M, R extends { ok: boolean }>(
    messages: readonly M[],
    base: number,
    encode: (message: M, i: number) => string | TransformFailure,
    result: (text: string | undefined, index: number, version: number) => R,
  ): Promise<Array<R | { ok: false; error: TransformFailure; index: number; input: M; version: number }>> {
    const version = this.version;
    const started = performance.now();
    const encoded = encodeMessages(messages, encode);
    let hostMs = performance.now() - started;
    const outcome = await this.runCounted(version, encoded.texts);
    const decodeStarted = performance.now();
    const results = new Array<R | { ok: false; error: TransformFailure; index: number; input: M; version: number }>(messages.length);
    const { positions, refused } = encoded;
    for (const [position, error] of refused) results[position] = { ok: false, error, index: base + position, input: messages[position]!, version };
    const { texts, failures, empty } = outcome;
    let nulls = 0;
    for (let i = 0; i < texts.length; i++) {
      const position = positions ? positions[i]! : i;
      const failure = failures.get(i);
      if (failure) {
        results[position] = { ok: false, error: failure, index: base + position, input: messages[position]!, version };
        continue;
      }
      const text = empty.has(i) ? undefined : texts[i]!;
      if (text === "null") nulls++;
      const made = result(text, base + position, version);
      results[position] = made.ok ? made : { ...made, input: messages[position]! };
    }
    this.reportLogs(outcome, base, positions, version);
    hostMs += performance.now() - decodeStarted;
    this.collector.addHostTime(hostMs * 1000);
    this.collector.add(outcome, messages.length, nulls, refused.values());
    return results;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.sandbox.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private reportLogs(outcome: BatchOutcome, base: number, positions: number[] | undefined, version: number): void {
    const onLog = this.options.onLog;
    if (!onLog) return;
    for (const entry of outcome.logs) {
      try {
        onLog({ index: base + (positions ? positions[entry.i]! : entry.i), version, level: entry.level, message: entry.message });
      } catch {
        // The listener's failure is the listener's.
      }
    }
  }

  /** Runs a batch on the least loaded carrier, holding its version until it ends. */
  private async runCounted(version: number, texts: string[]): Promise<BatchOutcome> {
    if (this.closed) throw new SandboxClosedError("the transform is closed");
    let slot = 0;
    for (let index = 1; index < this.load.length; index++) if (this.load[index]! < this.load[slot]!) slot = index;
    this.hold(version);
    try {
      return await this.runOn(slot, version, texts, false);
    } finally {
      this.release(version);
    }
  }

  /** A batch (or preview) of `version` begins: the version is kept until its last one ends. */
  private hold(version: number): void {
    this.running.set(version, (this.running.get(version) ?? 0) + 1);
  }

  private release(version: number): void {
    const left = this.running.get(version)! - 1;
    this.running.set(version, left);
    if (left === 0 && version !== this.version) this.forget(version);
  }

  private async runOn(slot: number, version: number, texts: string[], careful: boolean): Promise<BatchOutcome> {
    this.load[slot]!++;
    try {
      return await runBatch({ sandbox: this.sandbox, slot, version, timeoutMs: this.options.timeoutMsPerMessage, rekeep: (at) => this.keepOn(at, version) }, texts, careful);
    } finally {
      this.load[slot]!--;
    }
  }

  /** Compiles `version` on every carrier; rejects with the first failure once every carrier is done (a keep still running would hold the version after it is forgotten). */
  private async keepEverywhere(version: number): Promise<void> {
    const keeps = await Promise.allSettled(this.load.map((_, slot) => this.keepOn(slot, version)));
    const failed = keeps.find((keep): keep is PromiseRejectedResult => keep.status === "rejected");
    if (failed) throw failed.reason;
  }


  private async keepOn(slot: number, version: number): Promise<void> {
    const code = this.codes.get(version);
    if (code === undefined) throw new SandboxError(`the transform's version ${version} is gone`);
    const { filename, language, initTimeoutMs } = this.options;
    const result = await this.sandbox.keep(slot, version, code, { filename, language, timeoutMs: initTimeoutMs });
    if (!result.ok) throw result.error;
  }

  private forget(version: number): void {
    this.codes.delete(version);
    this.running.delete(version);
    this.sandbox.dropKept(version);
  }
}

/** Messages as items; one that `encode` refuses is left out, and `positions` says where the others were. */
function encodeMessages<M>(messages: readonly M[], encode: (message: M, i: number) => string | TransformFailure): Encoded {
  const texts = new Array<string>(messages.length);
  let refused: Map<number, TransformFailure> | undefined;
  for (let i = 0; i < messages.length; i++) {
    const text = encode(messages[i]!, i);
    if (typeof text === "string") texts[i] = text;
    else (refused ??= new Map()).set(i, text);
  }
  if (!refused) return { texts, positions: undefined, refused: new Map() };
  const positions: number[] = [];
  const kept: string[] = [];
  for (let i = 0; i < messages.length; i++) {
    if (refused.has(i)) continue;
    positions.push(i);
    kept.push(texts[i]!);
  }
  return { texts: kept, positions, refused };
}

/** A message as JSON; one that JSON cannot carry is refused with a message that says why. */
function jsonOf(message: unknown, i: number): string | TransformFailure {
  let problem: string | undefined;
  try {
    const text = JSON.stringify(message);
    if (text !== undefined) return text;
  } catch (error) {
    problem = (error as Error).message;
  }
  return { name: "TypeError", message: `message ${i} cannot be sent: ${problem ?? `it is ${typeof message}`}; messages must be JSON values` };
}

/** A JSON text as it is: one line (a line break would split it into two items, see protocol/batch.ts). */
function jsonLine(text: string, i: number): string | TransformFailure {
  return typeof text === "string" && !text.includes("\n") ? text : { name: "TypeError", message: `message ${i} is not a line of JSON text` };
}

/** A result's JSON text, parsed; a text that is not JSON is the carrier's lie, that message's failure. */
function decodeResult(text: string | undefined): { value: unknown } | { failure: TransformFailure } {
  if (text === undefined) return { value: undefined };
  try {
    return { value: JSON.parse(text) };
  } catch {
    return { failure: { name: "CarrierCrashedError", message: "the carrier sent a result that is not JSON" } };
  }
}

/** A message's failure as the SandboxError call() rejects with. */
function errorOf(failure: TransformFailure): SandboxError {
  switch (failure.name) {
    case "TimeoutError":
      return new TimeoutError(failure.message);
    case "MemoryLimitError":
      return new MemoryLimitError(failure.message);
    case "OutputLimitError":
      return new OutputLimitError(failure.message);
    case "CarrierCrashedError":
      return new CarrierCrashedError(failure.message);
    default:
      return scriptErrorOf(failure);
  }
}

/** Reads a source in batches: up to `size` messages, or fewer once the source pauses for `lingerMs`. */
class BatchReader {
  private readonly sync: Iterator<unknown> | undefined;
  private readonly async: AsyncIterator<unknown> | undefined;
  private waiting: Promise<IteratorResult<unknown>> | undefined;
  private done = false;

  constructor(
    source: Iterable<unknown> | AsyncIterable<unknown>,
    private readonly size: number,
    private readonly lingerMs: number,
  ) {
    if (typeof (source as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function") this.async = (source as AsyncIterable<unknown>)[Symbol.asyncIterator]();
    else if (typeof (source as Iterable<unknown>)[Symbol.iterator] === "function") this.sync = (source as Iterable<unknown>)[Symbol.iterator]();
    else throw new TypeError("Transform.stream: the source must be an iterable or an async iterable of messages");
  }

  /** The next batch; undefined once the source is done. */
  async next(): Promise<unknown[] | undefined> {
    if (this.done) return undefined;
    const batch: unknown[] = [];
    if (this.sync) {
      while (batch.length < this.size) {
        const step = this.sync.next();
        if (step.done) {
          this.done = true;
          break;
        }
        batch.push(step.value);
      }
      return batch.length > 0 ? batch : undefined;
    }
    while (batch.length < this.size) {
      const pending = this.waiting ?? this.async!.next();
      this.waiting = undefined;
      let step: IteratorResult<unknown>;
      if (batch.length === 0) {
        step = await pending;
      } else {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), this.lingerMs)));
        const first = await Promise.race([pending, late]);
        clearTimeout(timer);
        if (first === undefined) {
          this.waiting = pending;
          break;
        }
        step = first;
      }
      if (step.done) {
        this.done = true;
        break;
      }
      batch.push(step.value);
    }
    return batch.length > 0 ? batch : undefined;
  }

  /** Tells the source it is no longer read; not waited for (it may be waiting for its next message). */
  close(): void {
    if (this.done) return;
    this.done = true;
    try {
      this.sync?.return?.();
      void Promise.resolve(this.async?.return?.()).catch(() => {});
    } catch {
      // The source's own failure to close is the source's.
    }
  }
}
