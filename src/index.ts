export { Sandbox, type RunResult, type EvalStats, type EvalPhases } from "./host/sandbox.js";
export type { SandboxOptions, EvalOptions } from "./host/options.js";
export type { LogEntry, LogLevel } from "./capabilities/console/messages.js";
export type { FetchRecord } from "./capabilities/fetch/host.js";
export type { NetOptions, NetLookup } from "./capabilities/fetch/options.js";
export type { ModulesOptions, ModuleLock } from "./capabilities/modules/options.js";
export type { ImportRecord } from "./capabilities/modules/host.js";
export {
  SandboxError, ScriptError, TimeoutError, MemoryLimitError, OutputLimitError, ResourceLimitError, PolicyError,
  CarrierCrashedError, CarrierStartError, SandboxClosedError, ModuleError, type ModuleErrorReason,
} from "./host/errors.js";
export { configurePool, type PoolOptions } from "./host/pool.js";
