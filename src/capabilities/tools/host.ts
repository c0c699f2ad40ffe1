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
import { limitError } from "../fetch/failures.js";
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
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly tools: ReadonlyMap<string, ToolEntry>,
    private readonly limits: ToolLimits,
    private readonly sandbox: Sandbox,
    private readonly onRecord: ((record: ToolCallRecord) => void) | undefined,
  ) {}

  async handle({ tool }: ToolCallArgs, port: CallPort): Promise<CallReply> {
    const started = performance.now();
    const entry = this.tools.get(tool);
    // The carrier offers only the tools it was told of: another name is a carrier lying.
    if (!entry) {
      port.violation(`a call of "${tool.slice(0, 100)}", which is not one of the sandbox's tools`);
      return fail("TypeError", `tools.${tool} is not a tool`);
    }
    const bytesIn = port.body?.byteLength ?? 0;
    const record = (ok: boolean, bytesOut: number, error?: string, input?: unknown) => {
      const entryRecord: ToolCallRecord = { tool, ms: Math.round((performance.now() - started) * 1000) / 1000, ok, bytesIn, bytesOut };
      if (error !== undefined) entryRecord.error = error;
      if (this.limits.auditArguments) entryRecord.input = input;
      this.records.push(entryRecord);
      for (const listener of [this.onRecord, this.limits.onToolCall]) {
        try {
          listener?.(entryRecord);
        } catch {
          // A listener's failure is the listener's: the call goes on.
        }
      }
    };
    const refuse = (reply: CallReply & { ok: false }, input?: unknown): CallReply => {
      record(false, 0, `${reply.error.name}: ${reply.error.message}`, input);
      return reply;
    };
    if (++this.calls > this.limits.maxToolCalls) {
      const reply = limitError(`tools.${tool}: more than ${this.limits.maxToolCalls} tool calls in this eval (maxToolCalls)`) as CallReply & { ok: false };
      // Past the limit a call costs the host nothing but its refusal, and only the first is recorded.
      return this.calls === this.limits.maxToolCalls + 1 ? refuse(reply) : reply;
    }
    let input: unknown;
    if (port.body) {
      // (Inputs are small, as a rule: decoded at once, without a promise.)
      if (bytesIn > this.limits.maxToolInputBytes) {
        port.violation(`a tool input of ${bytesIn} bytes, over the limit it was told`);
        return limitError(`tools.${tool}: the input is larger than ${this.limits.maxToolInputBytes} bytes (maxToolInputBytes)`);
      }
      const decoding = decodeResult(port.body, this.limits.maxToolInputBytes, { noun: "input", limit: "maxToolInputBytes" });
      const decoded = decoding instanceof Promise ? await decoding : decoding;
      if ("violation" in decoded) {
        port.violation(decoded.violation);
        return fail("TypeError", `tools.${tool}: ${decoded.violation}`);
      }
      if ("failure" in decoded) return refuse(limitError(`tools.${tool}: ${decoded.failure.message}`) as CallReply & { ok: false });
      input = decoded.value;
    }
    if (entry.input) {
      const checking = entry.input.check(input);
      const checked = checking instanceof Promise ? await checking : checking;
      if (!checked.ok) return refuse(fail("TypeError", `tools.${tool}: invalid input: ${checked.problems.join("; ")}`), input);
      input = checked.value;
    }
    const acquiring = this.acquire(port);
    const ended = () => fail("AbortError", `tools.${tool}: the eval that made this call has ended`);
    if (!(acquiring === true || (await acquiring))) return refuse(ended(), input);
    const call = new CallAbort();
    port.onClose(() => call.abort(`the eval that called tools.${tool} has ended`, "AbortError"));
    const timer = setTimeout(() => call.abort(`tools.${tool} did not finish within ${this.limits.toolTimeoutMs} ms`, "TimeoutError"), this.limits.toolTimeoutMs);
    // The slot is the handler's until it settles, even if the call is over for the sandbox sooner:
    // `maxConcurrentToolCalls` counts handlers running on the host.
    const running = entry.run(input, call.context(this.sandbox, this.limits.toolTimeoutMs));
    void running.then(() => this.release(), () => this.release());
    let result: unknown;
    try {
      result = await call.race(running);
    } catch (error) {
      if (call.aborted) {
        if (!port.isOpen) return refuse(ended(), input);
        return refuse({ ok: false, error: { name: "TimeoutError", message: `tools.${tool} did not finish within ${this.limits.toolTimeoutMs} ms (toolTimeoutMs)`, kind: "timeout" } }, input);
      }
      return refuse(fail("ToolError", messageOf(error)), input);
    } finally {
      clearTimeout(timer);
    }
    if (entry.checksOutput && entry.output) {
      const checked = await entry.output.check(result);
      if (!checked.ok) return refuse(fail("ToolError", `tools.${tool} returned a result that does not match its output schema: ${checked.problems.join("; ")}`), input);
      result = checked.value;
    }
    if (result === undefined) {
      record(true, 0, undefined, input);
      return { ok: true, value: undefined };
    }
    let body: Uint8Array;
    try {
      body = serialize(result);
    } catch (error) {
      const where = error instanceof RangeError ? "the result is nested too deeply" : findUncloneable(result, "the result") ?? `the result cannot be cloned (${messageOf(error)})`;
      return refuse(fail("ToolError", `tools.${tool} returned what cannot be passed into the sandbox: ${where} (results must be structured-cloneable)`), input);
    }
    if (body.byteLength > this.limits.maxToolResultBytes) {
      return refuse(limitError(`tools.${tool} returned ${body.byteLength} bytes; the limit is ${this.limits.maxToolResultBytes} bytes (maxToolResultBytes)`) as CallReply & { ok: false }, input);
    }
    record(true, body.byteLength, undefined, input);
    return { ok: true, value: undefined, body };
  }

  /** Takes one of the eval's concurrent-call slots, waiting for one; false if the call ends first. */
  private acquire(port: CallPort): boolean | Promise<boolean> {
    if (this.running < this.limits.maxConcurrentToolCalls) {
      this.running++;
      return true;
    }
    return new Promise((resolve) => {
      const grant = () => {
        this.running++;
        resolve(true);
      };
      this.waiting.push(grant);
      port.onClose(() => {
        const index = this.waiting.indexOf(grant);
        if (index === -1) return;
        this.waiting.splice(index, 1);
        resolve(false);
      });
    });
  }

  private release(): void {
    this.running--;
    this.waiting.shift()?.();
  }
}

function fail(name: string, message: string): CallReply & { ok: false } {
  return { ok: false, error: { name, message } };
}

/**
 * How one call ends early: its eval ended, or its time ran out. The handler's AbortSignal is made
 * only if the handler reads it (an AbortController is a good part of a no-op call's cost).
 */
class CallAbort {
  private reason: DOMException | undefined;
  private controller: AbortController | undefined;
  private rejectRace: ((reason: unknown) => void) | undefined;

  get aborted(): boolean {
    return this.reason !== undefined;
  }

  abort(message: string, name: string): void {
    if (this.reason) return;
    this.reason = new DOMException(message, name);
    this.controller?.abort(this.reason);
    this.rejectRace?.(this.reason);
  }

  /** The handler's outcome, or the abort, whichever comes first (a handler may ignore its signal). */
  race<T>(outcome: Promise<T>): Promise<T> {
    if (this.reason) return Promise.reject(this.reason);
    return new Promise<T>((resolve, reject) => {
      this.rejectRace = reject;
      outcome.then(resolve, reject);
    });
  }

  context(sandbox: Sandbox, timeoutMs: number): ToolRunContext {
    const call = this;
    return {
      get signal() {
        if (!call.controller) {
          call.controller = new AbortController();
          if (call.reason) call.controller.abort(call.reason);
        }
        return call.controller.signal;
      },
      sandbox,
      timeoutMs,
    };
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
