/** Every error Paddock raises about a sandbox. `instanceof SandboxError` catches them all. */
export class SandboxError extends Error {
  override name = "SandboxError";
  /**
   * True when enforcing a limit (or a crash) killed the sandbox's carrier: the sandbox gets a fresh
   * one for its next eval, and a persistent sandbox has lost its state.
   */
  readonly carrierRestarted: boolean;
  constructor(message: string, options: { carrierRestarted?: boolean } = {}) {
    super(message);
    this.carrierRestarted = options.carrierRestarted ?? false;
    // No host frames: an app may hand these errors on (to an LLM, say), and the host's file paths
    // and code are nobody's business there. (Read lazily: subclasses set `name` after this runs.)
    Object.defineProperty(this, "stack", { get: () => `${this.name}: ${this.message}`, configurable: true, enumerable: false });
  }
}

export interface ScriptErrorDetails {
  /** The error's own name inside the sandbox: "TypeError", "SyntaxError", "Uncaught" for non-errors. */
  errorName: string;
  /** The sandbox's stack: the message, then frames in the user's code only. */
  sandboxStack?: string;
  line?: number;
  column?: number;
}

/** User code threw, or failed to parse. Positions point into the user's source. */
export class ScriptError extends SandboxError {
  override name = "ScriptError";
  readonly errorName: string;
  readonly line: number | undefined;
  readonly column: number | undefined;
  constructor(message: string, details: ScriptErrorDetails) {
    super(details.errorName === "Uncaught" ? `Uncaught ${message}` : `${details.errorName}: ${message}`);
    this.errorName = details.errorName;
    this.line = details.line;
    this.column = details.column;
    // The sandbox's stack: the user's frames, which say where the bug is.
    Object.defineProperty(this, "stack", { value: details.sandboxStack ?? this.message, configurable: true, writable: true, enumerable: false });
  }
}

/** The ScriptError for a failure described by the carrier (its name, message, user-frame stack and position). */
export function scriptErrorOf(failure: { name: string; message: string; stack?: string; line?: number; column?: number }): ScriptError {
  return new ScriptError(failure.message, {
    errorName: failure.name,
    ...(failure.stack !== undefined ? { sandboxStack: failure.stack } : {}),
    ...(failure.line !== undefined ? { line: failure.line } : {}),
    ...(failure.column !== undefined ? { column: failure.column } : {}),
  });
}

export class TimeoutError extends SandboxError {
  override name = "TimeoutError";
}

/** The carrier held more memory than allowed and was killed (always `carrierRestarted`). */
export class MemoryLimitError extends SandboxError {
  override name = "MemoryLimitError";
}

/** The result, the console output or another output of the eval was larger than allowed. */
export class OutputLimitError extends SandboxError {
  override name = "OutputLimitError";
}

/** A count limit other than time, memory and output: pending timers, source size, queued evals. */
export class ResourceLimitError extends SandboxError {
  override name = "ResourceLimitError";
}

/** The sandbox's policy refused something: a fetch, an import. */
export class PolicyError extends SandboxError {
  override name = "PolicyError";
}

/** The carrier died or broke the protocol. The host and other sandboxes are unaffected. */
export class CarrierCrashedError extends SandboxError {
  override name = "CarrierCrashedError";
}

/**
 * A carrier could not be started: the engine binary is missing or is not Deno, or the host ran out
 * of file descriptors or processes. A sandbox's next eval tries a fresh start.
 */
export class CarrierStartError extends CarrierCrashedError {
  override name = "CarrierStartError";
}

export class SandboxClosedError extends SandboxError {
  override name = "SandboxClosedError";
}

/** Why an import could not be served (see ModuleError.reason). */
export type ModuleErrorReason = "not-found" | "integrity" | "unreachable" | "offline" | "limit" | "invalid-package" | "unsupported";

/**
 * An import failed on the host: no such package or version, a tarball that does not match its
 * integrity or breaks a limit, a registry that could not be reached. (Refused by policy: PolicyError.)
 */
export class ModuleError extends SandboxError {
  override name = "ModuleError";
  constructor(message: string, readonly reason: ModuleErrorReason) {
    super(message);
  }
}

/** An MCP server the sandbox's tools come from could not be reached, or could not list its tools. */
export class McpError extends SandboxError {
  override name = "McpError";
}
