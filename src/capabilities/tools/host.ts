/**
 * The host half of tools: every call sandboxed code makes is looked up, decoded, checked against
 * the tool's schema and limits, run with a signal that aborts when the call is over, recorded, and
 * answered with a structured clone of the result or an error that says only what the code needs.
 */
import { Serializer } from "node:v8";
import type { CallPort } from "../../host/call-port.js";
import type { CallReply } from "../../host/carrier.js";
import { decodeResult } from "../../host/decode.js";
import type { Sandbox } from "../../host/sandbox.js";
import { findUncloneable } from "../../protocol/clone-path.js";
import { limitError, type FailedReply } from "../fetch/failures.js";
import { Slots } from "../../shared/slots.js";
import type { ToolCallArgs } from "./messages.js";
import type { FlatTool, ToolLimits } from "./options.js";
import { compileSchema, type CompiledSchema } from "./schema.js";
import type { ToolDeclaration } from "./declarations.js";

/** One tool call as the audit log sees it. */
export interface ToolCallRecord {
  /** The tool's name as the sandbox called it ("github.create_issue"). */
  tool: string;
  ms: number;
  ok: boolean;
  /** Why it failed: "TypeError: …", "ToolError: …", "TimeoutError: …". */
  error?: string;
  /** Structured-clone bytes of the input and of the result. */
  bytesIn: number;
  bytesOut: number;
  /** The input, only with `auditArguments: true`. */
  input?: unknown;
}

/** A tool as the sandbox sees it, whoever provides it (the host's own function, an MCP server). */
export interface ToolEntry {
  /** Its path under `tools`, and that path dotted. */
  readonly path: readonly string[];
  readonly name: string;
  readonly description: string | undefined;
  /** The name its provider knows it by, when it is not the path's last segment. */
  readonly originalName?: string | undefined;
  readonly input: CompiledSchema | undefined;
  /** Checked by Paddock when `checksOutput`; an MCP client checks its own. */
  readonly output: CompiledSchema | undefined;
  readonly checksOutput: boolean;
  run(input: unknown, context: ToolRunContext): Promise<unknown>;
}

export interface ToolRunContext {
  signal: AbortSignal;
  sandbox: Sandbox;
  /** Milliseconds the call may take, for providers with timeouts of their own. */
  timeoutMs: number;
}

/** A sandbox's own host tools, as entries. Their schemas are compiled now: a bad one fails Sandbox.create. */
export function hostToolEntries(tools: readonly FlatTool[]): ToolEntry[] {
  return tools.map(({ path, definition }) => {
    const name = path.join(".");
    const compile = (schema: unknown, direction: "input" | "output") =>
      schema === undefined ? undefined : compileSchema(schema as Parameters<typeof compileSchema>[0], direction === "input" ? "input" : "the result", `tools.${name}.${direction}Schema`, direction);
    const execute = definition.execute.bind(definition) as (input: unknown, context: { signal: AbortSignal; tool: string; sandbox: Sandbox }) => unknown;
    return {
      path,
      name,
      description: typeof definition.description === "string" ? definition.description : undefined,
      input: compile(definition.inputSchema, "input"),
      output: compile(definition.outputSchema, "output"),
      checksOutput: true,
      run: async (input, context) => execute(input, { get signal() { return context.signal; }, tool: name, sandbox: context.sandbox }),
    };
  });
}

/** What the declarations need of an entry. */
export function declarationOf(entry: ToolEntry): ToolDeclaration {
  return { path: entry.path, description: entry.description, inputSchema: entry.input?.json, outputSchema: entry.output?.json, originalName: entry.originalName };
}

/** How long a handler's message may be in the sandbox's ToolError. */
const MAX_ERROR_CHARS = 4096;

/** One eval's tool calls: its count, its concurrency, its records. */
export class EvalToolCalls {
  readonly records: ToolCallRecord[] = [];
  private calls = 0;
  /** The eval's concurrent-call slots. */
  private readonly slots: Slots;

  constructor(
    private readonly tools: ReadonlyMap<string, ToolEntry>,
    private readonly limits: ToolLimits,
    private readonly sandbox: Sandbox,
    private readonly onRecord: ((record: ToolCallRecord) => void) | undefined,
  ) {
    this.slots = new Slots(limits.maxConcurrentToolCalls);
  }

  async handle({ tool }: ToolCallArgs, port: CallPort): Promise<CallReply> {
    const entry = this.tools.get(tool);
    // The carrier offers only the tools it was told of: another name is a carrier lying.
    if (!entry) {
      port.violation(`a call of "${tool.slice(0, 100)}", which is not one of the sandbox's tools`);
      return fail("TypeError", `tools.${tool} is not a tool`);
    }
    const call = new ToolCall(tool, port.body?.byteLength ?? 0, this.limits.auditArguments, (record) => this.record(record));
    if (++this.calls > this.limits.maxToolCalls) {
      const reply = limitError(`tools.${tool}: more than ${this.limits.maxToolCalls} tool calls in this eval (maxToolCalls)`);
      // Past the limit a call costs the host nothing but its refusal, and only the first is recorded.
      return this.calls === this.limits.maxToolCalls + 1 ? call.refuse(reply) : reply;
    }
    port.onClose(() => call.abort(`the eval that called tools.${tool} has ended`, "AbortError"));
    try {
      return await call.race(this.serve(entry, call, port));
    } catch (error) {
      if (!call.aborted) return call.refuse(fail("ToolError", messageOf(error)));
      if (!port.isOpen) return call.refuse(fail("AbortError", `tools.${tool}: the eval that made this call has ended`));
      return call.refuse({ ok: false, error: { name: "TimeoutError", message: `tools.${tool} did not finish within ${this.limits.toolTimeoutMs} ms (toolTimeoutMs)`, kind: "timeout" } });
    } finally {
      call.answered();
    }
  }

  /** Decodes, checks and runs one call; throws what the handler threw. */
  private async serve(entry: ToolEntry, call: ToolCall, port: CallPort): Promise<CallReply> {
    const { tool } = call;
    if (port.body) {
      // (Inputs are small, as a rule: decoded at once, without a promise.)
      if (call.bytesIn > this.limits.maxToolInputBytes) {
        port.violation(`a tool input of ${call.bytesIn} bytes, over the limit it was told`);
        return limitError(`tools.${tool}: the input is larger than ${this.limits.maxToolInputBytes} bytes (maxToolInputBytes)`);
      }
      const decoding = decodeResult(port.body, this.limits.maxToolInputBytes, { noun: "input", limit: "maxToolInputBytes" });
      const decoded = decoding instanceof Promise ? await decoding : decoding;
      if ("violation" in decoded) {
        port.violation(decoded.violation);
        return fail("TypeError", `tools.${tool}: ${decoded.violation}`);
      }
      if ("failure" in decoded) return call.refuse(limitError(`tools.${tool}: ${decoded.failure.message}`));
      call.input = decoded.value;
    }
    if (entry.input) {
      const checking = entry.input.check(call.input);
      const checked = checking instanceof Promise ? await checking : checking;
      if (!checked.ok) return call.refuse(fail("TypeError", `tools.${tool}: invalid input: ${checked.problems.join("; ")}`));
      call.input = checked.value;
    }
    const acquiring = this.slots.acquire((listener) => call.onAbort(listener));
    if (!(acquiring === true || (await acquiring))) throw call.reason;
    // The call's own time starts when its handler does (not while it waits for a slot).
    call.limitTo(this.limits.toolTimeoutMs);
    // The slot is the handler's until it settles, even if the call is over for the sandbox sooner:
    // `maxConcurrentToolCalls` counts handlers running on the host.
    const running = entry.run(call.input, call.context(this.sandbox, this.limits.toolTimeoutMs));
    void running.then(() => this.slots.release(), () => this.slots.release());
    let result = await running;
    if (entry.checksOutput && entry.output) {
      const checked = await entry.output.check(result);
      if (!checked.ok) return call.refuse(fail("ToolError", `tools.${tool} returned a result that does not match its output schema: ${checked.problems.join("; ")}`));
      result = checked.value;
    }
    if (result === undefined) return call.succeed(undefined);
    let body: Uint8Array;
    try {
      body = serialize(result);
    } catch (error) {
      const where = error instanceof RangeError ? "the result is nested too deeply" : findUncloneable(result, "the result") ?? `the result cannot be cloned (${messageOf(error)})`;
      return call.refuse(fail("ToolError", `tools.${tool} returned what cannot be passed into the sandbox: ${where} (results must be structured-cloneable)`));
    }
    if (body.byteLength > this.limits.maxToolResultBytes) {
      return call.refuse(limitError(`tools.${tool} returned ${body.byteLength} bytes; the limit is ${this.limits.maxToolResultBytes} bytes (maxToolResultBytes)`));
    }
    return call.succeed(body);
  }

  private record(record: ToolCallRecord): void {
    this.records.push(record);
    for (const listener of [this.onRecord, this.limits.onToolCall]) {
      try {
        listener?.(record);
      } catch {
        // A listener's failure is the listener's: the call goes on.
      }
    }
  }
}

function fail(name: string, message: string): FailedReply {
  return { ok: false, error: { name, message } };
}

/**
 * One call: its record (made once, however the call ends), and how it ends early (its eval ended,
 * its time ran out). The handler's AbortSignal is made only if the handler reads it (an
 * AbortController is a good part of a no-op call's cost).
 */
class ToolCall {
  input: unknown;
  private readonly started = performance.now();
  private recorded = false;
  private done = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private abortReason: DOMException | undefined;
  private controller: AbortController | undefined;
  private readonly abortListeners: Array<() => void> = [];

  constructor(
    readonly tool: string,
    readonly bytesIn: number,
    private readonly keepInput: boolean,
    private readonly onRecord: (record: ToolCallRecord) => void,
  ) {}

  get aborted(): boolean {
    return this.abortReason !== undefined;
  }

  get reason(): DOMException | undefined {
    return this.abortReason;
  }

  succeed(body: Uint8Array | undefined): CallReply {
    this.record(true, body?.byteLength ?? 0);
    return body ? { ok: true, value: undefined, body } : { ok: true, value: undefined };
  }

  refuse(reply: FailedReply): CallReply {
    this.record(false, 0, `${reply.error.name}: ${reply.error.message}`);
    return reply;
  }

  /** Aborts the call with a TimeoutError in `ms` unless it is answered first. */
  limitTo(ms: number): void {
    this.timer = setTimeout(() => this.abort(`tools.${this.tool} did not finish within ${ms} ms`, "TimeoutError"), ms);
  }

  /** The call's answer is out: ending it later (its eval ends) has nothing left to abort. */
  answered(): void {
    this.done = true;
    clearTimeout(this.timer);
  }

  abort(message: string, name: string): void {
    // (A DOMException costs ~20 µs: none is made for a call that is over.)
    if (this.abortReason || (this.done && !this.controller)) return;
    this.abortReason = new DOMException(message, name);
    this.controller?.abort(this.abortReason);
    for (const listener of this.abortListeners.splice(0)) listener();
  }

  onAbort(listener: () => void): void {
    if (this.abortReason) listener();
    else this.abortListeners.push(listener);
  }

  /** The outcome, or the abort, whichever comes first (a handler may ignore its signal). */
  race<T>(outcome: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.onAbort(() => reject(this.abortReason));
      outcome.then(resolve, reject);
    });
  }

  context(sandbox: Sandbox, timeoutMs: number): ToolRunContext {
    const call = this;
    return {
      get signal() {
        if (!call.controller) {
          call.controller = new AbortController();
          if (call.abortReason) call.controller.abort(call.abortReason);
        }
        return call.controller.signal;
      },
      sandbox,
      timeoutMs,
    };
  }

  private record(ok: boolean, bytesOut: number, error?: string): void {
    // A call answered early (its time ran out) is recorded then; what its handler does later is not.
    if (this.recorded) return;
    this.recorded = true;
    const record: ToolCallRecord = { tool: this.tool, ms: Math.round((performance.now() - this.started) * 1000) / 1000, ok, bytesIn: this.bytesIn, bytesOut };
    if (error !== undefined) record.error = error;
    if (this.keepInput) record.input = this.input;
    this.onRecord(record);
  }
}

function serialize(value: unknown): Uint8Array {
  const serializer = new Serializer();
  serializer.writeHeader();
  serializer.writeValue(value);
  return serializer.releaseBuffer();
}

/** What a handler threw, as words only: never its stack, its class or its other properties. */
function messageOf(error: unknown): string {
  let message: string;
  try {
    message = error instanceof Error ? String(error.message) : typeof error === "string" ? error : "the tool failed";
  } catch {
    message = "the tool failed";
  }
  if (message === "") message = "the tool failed";
  return message.length > MAX_ERROR_CHARS ? message.slice(0, MAX_ERROR_CHARS - 1) + "…" : message;
}
