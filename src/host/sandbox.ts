/**
 * A Sandbox is one trust domain: its carriers serve it alone and die with it.
 */
import { Serializer } from "node:v8";
import { findUncloneable } from "../protocol/clone-path.js";
import type { Failure, EvalLimits, CarrierPhases } from "../protocol/messages.js";
import type { LogEntry } from "../capabilities/console/messages.js";
import type { BatchEnd, BatchProgress, BatchRequest, Carrier, EvalOutcome, EvalRequest, EvalTimeline } from "./carrier.js";
import { callHandler } from "./capabilities.js";
import { EvalFetches, Network, type FetchRecord } from "../capabilities/fetch/host.js";
import type { ResolvedNetOptions } from "../capabilities/fetch/options.js";
import {
  SandboxError, ScriptError, TimeoutError, OutputLimitError, ResourceLimitError, PolicyError, SandboxClosedError, ModuleError, scriptErrorOf,
} from "./errors.js";
import { MEMORY_MB, parseEvalOptions, parseOptions, sandboxOptionsSchema, type EvalOptions, type ResolvedSandboxOptions, type SandboxOptions } from "./options.js";
import { pool } from "./pool.js";
import { DEFAULT_EXPORT, prepareSource, type Language, type PreparedSource, type SourceImport } from "./source.js";
import type { ModuleLock } from "../capabilities/modules/options.js";
import { SandboxModules, type EvalModules, type ImportRecord, type StackMapper } from "../capabilities/modules/host.js";
import { originalPositionFor } from "@jridgewell/trace-mapping";
import { EvalToolCalls, hostToolEntries, type ToolCallRecord } from "../capabilities/tools/host.js";
import { SandboxTools } from "../capabilities/tools/catalog.js";
import { flattenTools } from "../capabilities/tools/options.js";
import { McpHub } from "../capabilities/tools/mcp.js";
import { typecheck } from "./typecheck.js";
import { EvalFiles, SandboxFiles, type FileRecord } from "../capabilities/files/host.js";
import { FILE_CHUNK_BYTES } from "../capabilities/files/flow.js";
import { builtinImports } from "../capabilities/files/builtin.js";
import type { ServeLink } from "./serve.js";
import type { CallHandler } from "./carrier.js";

export interface EvalStats {
  /** Host-measured time from submitting the eval to its result. */
  wallMs: number;
  /** CPU time of the carrier process during the eval (includes concurrent evals on it). */
  cpuMs: number;
  /** With `trace: true`, where the time went. */
  phases?: EvalPhases;
}

/**
 * Where a traced eval's time went, in µs, in the order it passed: host, carrier (`decode` …
 * `settle`, see CarrierPhases), host again. The phases add up to `wallMs`.
 */
export interface EvalPhases extends CarrierPhases {
  /** Host: options, source preparation (a cache hit for repeated code), the request. */
  prepare: number;
  /** Host: encoding the request frame. */
  send: number;
  /** Both pipe writes and hops, and both wake-ups (the carrier's from its read, the host's in its event loop). */
  transit: number;
  /** Host: reading, validating and decoding the answer. */
  receive: number;
  /** Host: from the eval's promise resolving to run()'s result. */
  resume: number;
}

interface RunRecords {
  logs: LogEntry[];
  /** Every request the eval's fetches made or tried, redirect hops included, in order. */
  fetches: FetchRecord[];
  /** Every import the eval's code names with a string, resolved or refused. */
  imports: ImportRecord[];
  /** Every tool call the eval made, in the order they finished. */
  toolCalls: ToolCallRecord[];
  /** Every file operation the eval made, in the order they finished. */
  files: FileRecord[];
  stats: EvalStats;
}

export type RunResult<T = unknown> = ({ ok: true; value: T } | { ok: false; error: SandboxError }) & RunRecords;

export class Sandbox implements AsyncDisposable {
  private readonly slots: Array<Carrier | undefined>;
  /** Evals assigned to each slot and not finished: counted at assignment, before any await. */
  private readonly load: number[];
  private readonly globalsBytes: Uint8Array | undefined;
  private readonly network: Network | undefined;
  private readonly modules: SandboxModules | undefined;
  private readonly tools: SandboxTools | undefined;
  /** The sandbox's files (in memory, or `files.dir`), shared by all its carriers and evals. */
  readonly fs: SandboxFiles;
  private closed = false;
  private running = 0;
  /** Puts a kept function's failures into its user's source (see locate), by version. */
  private readonly keptLocators = new Map<number, (failure: Failure) => Failure>();
  /** What each carrier was given to keep, by version (see keep). */
  private readonly keptOn = new WeakMap<Carrier, Map<number, Promise<RunResult<void>>>>();
  /** Ends when the persistent realm's latest eval does (see takeTurn). */
  private lastTurn: Promise<void> = Promise.resolve();

  private constructor(
    private readonly options: ResolvedSandboxOptions,
    /** The first carrier, started while the options were checked; taken by the first slot. */
    private startedAhead: Carrier | undefined,
  ) {
    if (options.persistent && options.carriers > 1) {
      throw new TypeError("Sandbox.create: a persistent sandbox keeps one realm, so it takes exactly one carrier");
    }
    this.network = options.net ? withOptionsContext(() => new Network(options.net!)) : undefined;
    this.modules = options.modules ? withOptionsContext(() => new SandboxModules(options.modules!)) : undefined;
    this.tools = options.tools || options.mcp ? withOptionsContext(() => sandboxTools(options)) : undefined;
    this.fs = new SandboxFiles(options.files);
    const env = options.env || this.network?.secrets.isEmpty === false ? { ...options.env, ...this.network?.secrets.placeholders() } : undefined;
    if (env && options.globals && "env" in options.globals) throw new TypeError("Sandbox.create: globals.env and env/net.secrets both define the global `env`");
    const globals = env ? { ...options.globals, env } : options.globals;
    this.globalsBytes = globals ? serializeGlobals(globals, "globals") : undefined;
    this.slots = Array.from({ length: options.carriers }, () => undefined);
    this.load = this.slots.map(() => 0);
  }

  /** Creates a sandbox with carriers from the warm pool (or freshly started ones). */
  static async create(options?: SandboxOptions): Promise<Sandbox> {
    // The first check of options loads the schema library (~55 ms): a cold carrier starts meanwhile.
    const memoryMb = memoryMbAtAGlance(options);
    const startedAhead = memoryMb === undefined ? undefined : pool.startAhead({ memoryMb });
    let sandbox: Sandbox;
    try {
      sandbox = new Sandbox(parseOptions(sandboxOptionsSchema(), options, "Sandbox.create"), startedAhead);
    } catch (error) {
      startedAhead?.destroySync();
      throw error;
    }
    try {
      await Promise.all([...sandbox.slots.map((_, index) => sandbox.carrierAt(index).ready), sandbox.fs.open()]);
    } catch (error) {
      await sandbox.close();
      throw error;
    }
    return sandbox;
  }

  /** Starts warm carriers for sandboxes with this memory limit, and waits until they are ready. */
  static warm(options?: Pick<SandboxOptions, "memoryMb">): Promise<void> {
    return pool.warm({ memoryMb: parseOptions(sandboxOptionsSchema(), options, "Sandbox.warm").memoryMb });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Runs `code` and resolves to its completion value; rejects with a SandboxError on failure. */
  async eval<T = unknown>(code: string, options?: EvalOptions): Promise<T> {
    const result = await this.run<T>(code, options);
    if (!result.ok) throw result.error;
    return result.value;
  }

  /** Runs `code`; never throws for failures of the code: the result says what happened. */
  run<T = unknown>(code: string, options?: EvalOptions): Promise<RunResult<T>> {
    return this.execute<T>(code, options, undefined);
  }

  /**
   * Evaluates `code` on carrier `slot` and keeps its default export there, a function, in a realm
   * of its own, as kept function `version` (for products built on sandboxes: transforms).
   * @internal
   */
  keep(slot: number, version: number, code: string, options: Pick<EvalOptions, "filename" | "language" | "timeoutMs">): Promise<RunResult<void>> {
    // Once per carrier: two batches that found a fresh carrier without it ask at once.
    const carrier = this.carrierAt(slot);
    let kept = this.keptOn.get(carrier);
    if (!kept) this.keptOn.set(carrier, (kept = new Map()));
    const known = kept.get(version);
    if (known) return known;
    const keeping = this.execute<void>(code, options, { slot, version });
    kept.set(version, keeping);
    void keeping.then((result) => result.ok || kept.delete(version), () => kept.delete(version));
    return keeping;
  }

  /**
   * Calls kept function `version` of carrier `slot` once per item (see Carrier.batch), with the
   * sandbox's capabilities and limits; `timeoutMs` is each item's.
   * @internal
   */
  batch(slot: number, request: Pick<BatchRequest, "version" | "items" | "careful" | "onProgress"> & { timeoutMs: number }): Promise<BatchEnd> {
    if (this.closed) return Promise.reject(new SandboxClosedError("the sandbox is closed"));
    const tools = this.tools?.current;
    const handleCall = this.freshCalls();
    const limits: EvalLimits = { timeoutMs: request.timeoutMs, maxResultBytes: this.options.maxResultBytes, maxLogBytes: this.options.maxLogBytes, maxTimers: this.options.maxTimers };
    const carrier = this.carrierAt(slot);
    if (tools) carrier.provideTools(tools.message);
    const locator = this.keptLocators.get(request.version);
    const onProgress = locator ? (progress: BatchProgress) => request.onProgress(progress.errors.length === 0 ? progress : { ...progress, errors: progress.errors.map((error) => ({ ...locator(error), i: error.i })) }) : request.onProgress;
    this.load[slot]!++;
    const done = () => void this.load[slot]!--;
    return carrier.ready.then(() => carrier.batch({ ...request, onProgress, limits, handleCall })).finally(done);
  }

  /**
   * Evaluates `code` on carrier 0 and serves its default export as an app through `link` (for
   * products built on sandboxes: apps). Resolves once the app is up, or has failed to start; the
   * link ends when the carrier does.
   * @internal
   */
  serve(code: string, options: Pick<EvalOptions, "filename" | "language" | "timeoutMs">, link: ServeLink): Promise<RunResult<void>> {
    return this.execute<void>(code, options, undefined, link);
  }

  /**
   * Stops carrier `slot` without starting another: the next use takes one from the warm pool (an
   * idle app gives its memory back this way).
   * @internal
   */
  retire(slot: number, why: SandboxError): Promise<void> {
    const carrier = this.slots[slot];
    if (!carrier) return Promise.resolve();
    this.slots[slot] = undefined;
    carrier.kill(undefined, why);
    return carrier.exited;
  }

  /** Capabilities for calls no eval's records follow (a batch's, an app's). */
  private freshCalls(): CallHandler {
    const tools = this.tools?.current;
    return callHandler({
      fetch: new EvalFetches(this.network, this.options.onFetch),
      tools: tools ? new EvalToolCalls(tools.entries, this.tools!.limits, this, undefined) : undefined,
      files: new EvalFiles(this.fs, this.options.onFile),
    });
  }

  /**
   * An app's capabilities: its per-eval limits (net.maxRequests, maxToolCalls) count per window of
   * APP_LIMIT_WINDOW_MS, and its records go only to the listeners, so a long-lived app neither
   * runs out of calls nor piles records up.
   */
  private windowedCalls(): CallHandler {
    let current: { handler: CallHandler; until: number } | undefined;
    return (call, port) => {
      const now = performance.now();
      if (!current || now >= current.until) current = { handler: this.freshCalls(), until: now + APP_LIMIT_WINDOW_MS };
      return current.handler(call, port);
    };
  }

  /** Forgets kept function `version` on every carrier. @internal */
  dropKept(version: number): void {
    this.keptLocators.delete(version);
    for (const carrier of this.slots) if (carrier) this.keptOn.get(carrier)?.delete(version);
    for (const carrier of this.slots) if (carrier?.isAlive) carrier.drop(version);
  }

  /** Carriers of this sandbox (slots 0 … carriers - 1). */
  get carrierCount(): number {
    return this.slots.length;
  }

  private async execute<T>(code: string, options: EvalOptions | undefined, keep: { slot: number; version: number } | undefined, serve?: ServeLink): Promise<RunResult<T>> {
    if (typeof code !== "string") throw new TypeError(`Sandbox.run: code must be a string (got ${typeof code})`);
    const evalOptions = parseEvalOptions(options);
    const started = performance.now();
    const logs: LogEntry[] = [];
    const onFetch = evalOptions.onFetch ?? this.options.onFetch ? (record: FetchRecord) => {
      evalOptions.onFetch?.(record);
      this.options.onFetch?.(record);
    } : undefined;
    const fetches = new EvalFetches(this.network, onFetch);
    const imports: ImportRecord[] = [];
    let toolCalls: EvalToolCalls | undefined;
    const onFile = evalOptions.onFile ?? this.options.onFile ? (record: FileRecord) => {
      evalOptions.onFile?.(record);
      this.options.onFile?.(record);
    } : undefined;
    const files = new EvalFiles(this.fs, onFile);
    const finish = (outcome: { ok: true; value: T } | { ok: false; error: SandboxError }, cpuMs = 0, timeline?: EvalTimeline): RunResult<T> => {
      const now = performance.now();
      return {
        ...outcome,
        logs,
        fetches: fetches.records,
        imports,
        toolCalls: toolCalls?.records ?? [],
        files: files.records,
        stats: { wallMs: round(now - started), cpuMs, ...(timeline ? { phases: phasesOf(timeline, started, now) } : {}) },
      };
    };
    if (this.closed) return finish({ ok: false, error: new SandboxClosedError("the sandbox is closed") });
    if (this.running >= this.options.maxConcurrentEvals) {
      return finish({ ok: false, error: new ResourceLimitError(`more than ${this.options.maxConcurrentEvals} evals at once in this sandbox`) });
    }
    this.running++;
    const endTurn = this.options.persistent ? await this.takeTurn() : undefined;
    try {
      const sourceBytes = Buffer.byteLength(code);
      if (sourceBytes > this.options.maxSourceBytes) {
        throw new ResourceLimitError(`the source is ${sourceBytes} bytes; the limit is ${this.options.maxSourceBytes} bytes`);
      }
      const filename = evalOptions.filename ?? "eval.js";
      const language: Language = evalOptions.language ?? (/\.[mc]?tsx?$/.test(filename) ? "ts" : "auto");
      if ((evalOptions.typecheck ?? this.options.typecheck) && language !== "js") await this.typecheck(code, filename);
      const prepared = prepareSource(code, language);
      if (keep) this.keptLocators.set(keep.version, (failure) => locate(failure, prepared, filename, this.modules));
      const modules = this.modules || prepared.imports ? await this.resolveImports(prepared.imports ?? [], imports) : undefined;
      const tools = this.tools ? this.tools.current ?? (await this.tools.catalog()) : undefined;
      if (tools) toolCalls = new EvalToolCalls(tools.entries, this.tools!.limits, this, evalOptions.onToolCall);
      const limits: EvalLimits = {
        timeoutMs: evalOptions.timeoutMs ?? this.options.timeoutMs,
        maxResultBytes: this.options.maxResultBytes,
        maxLogBytes: this.options.maxLogBytes,
        maxTimers: this.options.maxTimers,
      };
      // An app's console output after its start goes only to the listeners (nothing reads the run's).
      let collecting = true;
      const onLog = (entry: LogEntry) => {
        if (collecting) logs.push(entry);
        evalOptions.onLog?.(entry);
        this.options.onLog?.(entry);
      };
      const outcome = await this.dispatch({
        code: prepared.code,
        kind: prepared.kind,
        filename,
        persistent: this.options.persistent,
        limits,
        ...(evalOptions.globals ? { globals: serializeGlobals(evalOptions.globals, "eval globals") } : {}),
        onLog,
        handleCall: serve ? this.windowedCalls() : callHandler({ fetch: fetches, tools: toolCalls, files }),
        trace: evalOptions.trace === true,
        ...(modules ? { modules } : {}),
        ...(keep ? { keep: keep.version } : {}),
        ...(serve ? { serve } : {}),
      }, keep?.slot ?? (serve ? 0 : undefined));
      collecting = false;
      if (outcome.ok) return finish({ ok: true, value: outcome.value as T }, outcome.cpuMs, outcome.timeline);
      return finish({ ok: false, error: toSandboxError(locate(outcome.error, prepared, filename, this.modules), modules?.failures) }, outcome.cpuMs, outcome.timeline);
    } catch (error) {
      if (error instanceof SandboxError) return finish({ ok: false, error });
      throw error;
    } finally {
      endTurn?.();
      this.running--;
    }
  }

  /**
   * Waits for the persistent realm's previous eval to end. Its evals run one at a time, as in a
   * REPL: they share one realm, and the realm's async work (a tool's reply, a timer) belongs to the
   * eval that is running, which two at once would confuse. Returns what ends this eval's turn.
   */
  private async takeTurn(): Promise<() => void> {
    const previous = this.lastTurn;
    let end!: () => void;
    this.lastTurn = new Promise<void>((resolve) => (end = resolve));
    await previous;
    return end;
  }

  /**
   * Checks and prepares what the eval imports. Without a module policy a static import fails the
   * eval; an import() is left to fail where it is called.
   */
  private async resolveImports(named: readonly SourceImport[], records: ImportRecord[]): Promise<EvalModules | undefined> {
    // Built-ins (node:fs) are every sandbox's: linked to their units, never the policy's business.
    const { builtins, others } = builtinImports(named);
    if (!this.modules) {
      const first = others.find((entry) => !entry.dynamic);
      if (first) throw new PolicyError(`import of "${first.specifier}" refused: no module policy grants imports in this sandbox`);
      return builtins;
    }
    try {
      const modules = await this.modules.prepareEval(others, records);
      return builtins ? { ...modules, imports: { ...modules.imports, ...builtins.imports }, units: new Map([...modules.units, ...builtins.units]) } : modules;
    } finally {
      for (const record of records) this.options.onImport?.(record);
    }
  }

  /**
   * What this sandbox's imports resolved to so far (versions and integrities). Pass it back as
   * `modules.lock` and the same imports resolve the same way later, or fail if the registry's
   * package changed. Undefined without a module policy.
   */
  modulesLock(): ModuleLock | undefined {
    return this.modules?.lock();
  }

  /** Fails with a ScriptError ("TypeCheckError") listing the compiler's diagnostics, if there are any. */
  private async typecheck(code: string, filename: string): Promise<void> {
    const declarations = this.tools ? await this.tools.declarations() : "";
    const diagnostics = typecheck(code, declarations, filename);
    const [first] = diagnostics;
    if (!first) return;
    const lines = diagnostics.map((diagnostic) => `TS${diagnostic.code} at ${filename}:${diagnostic.line}:${diagnostic.column}: ${diagnostic.message}`);
    throw new ScriptError(lines.join("\n"), {
      errorName: "TypeCheckError",
      line: first.line,
      column: first.column,
      sandboxStack: [`TypeCheckError: ${first.message}`, ...diagnostics.map((diagnostic) => `    at ${filename}:${diagnostic.line}:${diagnostic.column} (TS${diagnostic.code}: ${diagnostic.message.split("\n")[0]})`)].join("\n"),
    });
  }

  /**
   * TypeScript declarations of everything the sandbox's code can call (`declare const tools: …`),
   * with each tool's description and schemas as JSDoc: what a model needs in its prompt to write
   * code against the tools. Connects the sandbox's MCP servers if they are not yet.
   */
  async toolDeclarations(): Promise<string> {
    return this.tools ? this.tools.declarations() : "";
  }

  /** Kills the sandbox's carriers; running evals fail with SandboxClosedError. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const exits: Promise<void>[] = [];
    for (const carrier of this.slots) {
      if (!carrier) continue;
      carrier.kill(undefined, new SandboxClosedError("the sandbox was closed while the eval was running"));
      exits.push(carrier.exited);
    }
    if (this.network) exits.push(this.network.close());
    if (this.modules) exits.push(this.modules.close());
    if (this.tools) exits.push(this.tools.close());
    exits.push(this.fs.close());
    await Promise.all(exits);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Sends the eval to the least loaded carrier (counted before any await, so bursts spread). */
  private async dispatch(request: EvalRequest, slot = this.leastLoadedSlot()): Promise<EvalOutcome> {
    this.load[slot]!++;
    try {
      const carrier = this.carrierAt(slot);
      if (!carrier.isReady) request = await this.whenStarted(carrier, request);
      if (this.closed) throw new SandboxClosedError("the sandbox is closed");
      if (this.tools?.current) carrier.provideTools(this.tools.current.message);
      if (request.modules && carrier.provideModules(request.modules.units) === 0) request.modules.servedByCarrier();
      return await carrier.eval(request);
    } finally {
      this.load[slot]!--;
    }
  }

  /**
   * Waits for a carrier that is still starting. The wait counts against the eval's time limit (a
   * busy machine may start carriers slowly, but an eval never outlives its own limit): the eval
   * gets what is left of it.
   */
  private async whenStarted(carrier: Carrier, request: EvalRequest): Promise<EvalRequest> {
    const { timeoutMs } = request.limits;
    const late = () => new TimeoutError(`the eval did not finish within ${timeoutMs} ms: its carrier was still starting (the machine may be overloaded)`);
    const started = performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([carrier.ready, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(late()), timeoutMs)))]);
    } finally {
      clearTimeout(timer);
    }
    const left = Math.floor(timeoutMs - (performance.now() - started));
    if (left < 1) throw late();
    return { ...request, limits: { ...request.limits, timeoutMs: left } };
  }

  private leastLoadedSlot(): number {
    let best = 0;
    for (let index = 1; index < this.load.length; index++) if (this.load[index]! < this.load[best]!) best = index;
    return best;
  }

  /** The slot's live carrier; a dead one (killed by a limit) is replaced first. */
  private carrierAt(index: number): Carrier {
    const current = this.slots[index];
    if (current?.isAlive) return current;
    const carrier = pool.take({ memoryMb: this.options.memoryMb }, this.startedAhead);
    this.startedAhead = undefined;
    const maxCallBytes = Math.max(this.options.net?.maxRequestBytes ?? 0, this.tools ? this.options.maxToolInputBytes : 0, FILE_CHUNK_BYTES);
    carrier.attach({ ...this.options, maxCallBytes }, this.globalsBytes);
    this.slots[index] = carrier;
    void carrier.exited.then(() => {
      // A carrier that served and died (a limit, a crash, a kill) is replaced at once, so that its
      // replacement starts while nothing waits for it. One that never started is not: a broken
      // engine must not start a loop; the next eval tries again.
      if (!this.closed && carrier.isReady && this.slots[index] === carrier) this.carrierAt(index);
    });
    return carrier;
  }
}

/** How long an app's per-eval limits (net.maxRequests, maxToolCalls) count for before they start again. */
export const APP_LIMIT_WINDOW_MS = 60_000;

/** The sandbox's tools: its own (their schemas compiled now) and its MCP servers' (listed on first use). */
function sandboxTools(options: ResolvedSandboxOptions): SandboxTools {
  const own = hostToolEntries(options.tools ? flattenTools(options.tools, "Sandbox.create") : []);
  const hub = options.mcp instanceof McpHub ? options.mcp : options.mcp ? new McpHub(options.mcp, options.net ? { allowPrivate: options.net.allowPrivate } : {}) : undefined;
  const namespaces = new Set(hub?.namespaces);
  const clash = own.find((entry) => namespaces.has(entry.path[0]!));
  if (clash) throw new TypeError(`tools.${clash.name} clashes with the MCP server whose tools are tools.${clash.path[0]}.*: rename one of them`);
  const { maxToolCalls, maxConcurrentToolCalls, toolTimeoutMs, maxToolInputBytes, maxToolResultBytes, auditArguments, onToolCall } = options;
  return new SandboxTools(own, hub, !(options.mcp instanceof McpHub), { maxToolCalls, maxConcurrentToolCalls, toolTimeoutMs, maxToolInputBytes, maxToolResultBytes, auditArguments, onToolCall });
}

/** The memory limit the options ask for, if it is plainly valid without the schema; else undefined. */
function memoryMbAtAGlance(options: SandboxOptions | undefined): number | undefined {
  try {
    const memoryMb = options?.memoryMb ?? MEMORY_MB.default;
    return Number.isInteger(memoryMb) && memoryMb >= MEMORY_MB.min && memoryMb <= MEMORY_MB.max ? memoryMb : undefined;
  } catch {
    return undefined; // a getter that throws: the schema check reports it
  }
}

/** The policies' own checks (patterns, ranges) throw TypeErrors that name the entry; say where. */
function withOptionsContext<T>(make: () => T): T {
  try {
    return make();
  } catch (error) {
    if (error instanceof TypeError) throw new TypeError(`Sandbox.create: invalid options\n${error.message}`);
    throw error;
  }
}

/** The host's error for a carrier's failure report. @internal */
export function toSandboxError(failure: Failure, moduleFailures?: ReadonlyMap<string, ModuleError>): SandboxError {
  switch (failure.kind) {
    case "module":
      return moduleFailures?.get(failure.message) ?? new ModuleError(failure.message, "not-found");
    case "timeout":
      return new TimeoutError(failure.message);
    case "output":
      return new OutputLimitError(failure.message);
    case "resource":
      return new ResourceLimitError(failure.message);
    case "policy":
      return new PolicyError(failure.message);
    case "script":
      return scriptErrorOf(failure);
  }
}

/**
 * Puts a failure's positions into the user's source: a syntax error V8 reported without a position
 * gets the host parser's, and positions in code a TypeScript transform moved are mapped back.
 */
function locate(failure: Failure, prepared: PreparedSource, filename: string, packages: StackMapper | undefined): Failure {
  if (packages && failure.stack) failure = { ...failure, stack: packages.mapStack(failure.stack) };
  // An anonymous default export is named by the rewrite's variable (see source.ts): it is the code's "default".
  if (failure.stack?.includes(DEFAULT_EXPORT)) failure = { ...failure, stack: failure.stack.replaceAll(`at ${DEFAULT_EXPORT} (`, "at default (") };
  const hint = prepared.syntaxError;
  if (failure.kind === "script" && failure.name === "SyntaxError" && failure.line === undefined && hint) {
    // In script mode V8 stops at the first `await` or `import`; the host's parse saw the real error.
    const message = /await is only valid|import statement outside a module/.test(failure.message) ? hint.message : failure.message;
    return { ...failure, message, line: hint.line, column: hint.column, stack: `SyntaxError: ${message}\n    at ${filename}:${hint.line}:${hint.column}` };
  }
  const map = prepared.map;
  if (!map) return failure;
  const original = (line: number, column: number) => {
    const found = originalPositionFor(map, { line, column: Math.max(0, column - 1) });
    return found.line === null ? { line, column } : { line: found.line, column: found.column + 1 };
  };
  const located = { ...failure };
  if (failure.line !== undefined) Object.assign(located, original(failure.line, failure.column ?? 1));
  if (failure.stack) {
    const frame = new RegExp(`${filename.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:(\\d+):(\\d+)`, "g");
    located.stack = failure.stack.replace(frame, (_, line: string, column: string) => {
      const position = original(Number(line), Number(column));
      return `${filename}:${position.line}:${position.column}`;
    });
  }
  return located;
}

function serializeGlobals(globals: Record<string, unknown>, what: string): Uint8Array {
  try {
    const serializer = new Serializer();
    serializer.writeHeader();
    serializer.writeValue(globals);
    return serializer.releaseBuffer();
  } catch (error) {
    const where = findUncloneable(globals, what);
    throw new TypeError(where ? `${where} and cannot be passed into a sandbox (globals must be structured-cloneable)` : `${what} cannot be passed into a sandbox: ${(error as Error).message}`);
  }
}

function phasesOf(timeline: EvalTimeline, started: number, finished: number): EvalPhases {
  const us = (from: number, to: number) => Math.max(0, Math.round((to - from) * 1000));
  const { carrier } = timeline;
  const inCarrier = Object.values(carrier).reduce((sum, us) => sum + us, 0);
  return {
    prepare: us(started, timeline.sentAt),
    send: us(timeline.sentAt, timeline.encodedAt),
    ...carrier,
    transit: Math.max(0, us(timeline.encodedAt, timeline.receivedAt) - inCarrier),
    receive: us(timeline.receivedAt, timeline.resolvedAt),
    resume: us(timeline.resolvedAt, finished),
  };
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
