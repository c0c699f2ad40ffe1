export { Sandbox, type RunResult, type EvalStats, type EvalPhases } from "./host/sandbox.js";
export type { SandboxOptions, EvalOptions } from "./host/options.js";
export type { LogEntry, LogLevel } from "./capabilities/console/messages.js";
export type { FetchRecord } from "./capabilities/fetch/host.js";
export type { NetOptions, NetLookup } from "./capabilities/fetch/options.js";
export type { ModulesOptions, ModuleLock } from "./capabilities/modules/options.js";
export type { ImportRecord } from "./capabilities/modules/host.js";
export { SandboxFiles, FileError, type FileRecord, type FileInfo, type DirEntry, type WriteFileOptions } from "./capabilities/files/host.js";
export type { FilesOptions } from "./capabilities/files/options.js";
export {
  SandboxError, ScriptError, TimeoutError, MemoryLimitError, OutputLimitError, ResourceLimitError, PolicyError,
  CarrierCrashedError, CarrierStartError, SandboxClosedError, ModuleError, type ModuleErrorReason, McpError,
} from "./host/errors.js";
export { tool, type ToolDefinition, type ToolTree, type ToolContext } from "./capabilities/tools/options.js";
export type { ToolCallRecord } from "./capabilities/tools/host.js";
export type { JsonSchema, StandardSchemaV1, ToolSchema } from "./capabilities/tools/schema.js";
export { McpHub, type McpServerConfig, type McpStdioServer, type McpHttpServer, type McpHubOptions } from "./capabilities/tools/mcp.js";
export { toolDeclarations } from "./capabilities/tools/catalog.js";
export { createCodeTool, type CodeTool, type CodeToolOptions } from "./code-tool/code-tool.js";
export type { ExecuteCodeInput, ExecuteCodeResult } from "./code-tool/execute-code.js";
export { configurePool, type PoolOptions } from "./host/pool.js";
export { Transform, type TransformOptions, type TransformResult, type TransformFailure, type TransformLog, type TransformStats, type StreamOptions, type PreviewEntry, type TransformJsonResult } from "./transforms/transform.js";
export { App, type AppOptions, type AppStats } from "./apps/app.js";
export type { ListenOptions, Listener } from "./apps/listener.js";
export { AppServer, type AppServerOptions, type AppServerEvent, type AppServerApp } from "./apps/server.js";
