export { Sandbox, type RunResult, type EvalStats } from "./host/sandbox.js";
export type { SandboxOptions, EvalOptions } from "./host/options.js";
export type { LogEntry, LogLevel } from "./capabilities/console/messages.js";
export {
  SandboxError, ScriptError, TimeoutError, MemoryLimitError, OutputLimitError, ResourceLimitError, PolicyError,
  CarrierCrashedError, SandboxClosedError,
} from "./host/errors.js";
export { configurePool, type PoolOptions } from "./host/pool.js";
