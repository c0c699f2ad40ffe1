/**
 * createCodeTool: code mode for any agent framework. It returns one framework-neutral tool
 * ({ name, description, inputSchema, execute }) that runs the model's code in a sandbox whose
 * code can call the given host tools and MCP servers' tools; the description carries their
 * TypeScript declarations, so the model writes code against real types.
 */
import { Sandbox } from "../host/sandbox.js";
import type { SandboxOptions } from "../host/options.js";
import type { ToolTree } from "../capabilities/tools/options.js";
import type { JsonSchema } from "../capabilities/tools/schema.js";
import { McpHub, type McpServerConfig } from "../capabilities/tools/mcp.js";
import { toolDeclarations } from "../capabilities/tools/catalog.js";
import {
  EXECUTE_CODE, EXECUTE_CODE_INPUT_SCHEMA, EXECUTE_CODE_OUTPUT_SCHEMA, checkExecuteCodeInput, describeExecuteCode, executeCode,
  renderExecuteCode, type ExecuteCodeInput, type ExecuteCodeResult,
} from "./execute-code.js";

export interface CodeToolOptions {
  /** The sandbox the code runs in (its limits, `net`, `modules`…). Persistent unless it says otherwise. */
  sandbox?: Omit<SandboxOptions, "tools" | "mcp">;
  /** Host tools the code may call as `tools.<name>(input)`. */
  tools?: ToolTree;
  /** MCP servers whose tools the code may call as `tools.<server>.<tool>(input)`, or a hub shared with others. */
  mcp?: Record<string, McpServerConfig> | McpHub;
  /** The tool's name (default "execute_code"). */
  name?: string;
}

export interface CodeTool extends AsyncDisposable {
  readonly name: string;
  /** What the model is told: the environment, and the declarations of every tool its code may call. */
  readonly description: string;
  readonly inputSchema: JsonSchema;
  readonly outputSchema: JsonSchema;
  /** Runs the model's code; failures of the code are in the result (`ok: false`), never thrown. */
  execute(input: ExecuteCodeInput): Promise<ExecuteCodeResult & { text: string }>;
  /** The sandbox, made on the first call. */
  sandbox(): Promise<Sandbox>;
  /** Closes the sandbox (and the MCP connections the tool made for itself). */
  close(): Promise<void>;
}

/** Makes the code tool. Connects the MCP servers now, to put their tools in the description. */
export async function createCodeTool(options: CodeToolOptions = {}): Promise<CodeTool> {
  const { tools, name = EXECUTE_CODE } = options;
  const sandboxOptions: SandboxOptions = { persistent: true, ...options.sandbox };
  const ownHub = options.mcp && !(options.mcp instanceof McpHub) ? new McpHub(options.mcp, sandboxOptions.net?.allowPrivate ? { allowPrivate: sandboxOptions.net.allowPrivate } : {}) : undefined;
  const hub = ownHub ?? (options.mcp as McpHub | undefined);
  let declarations: string;
  try {
    declarations = await toolDeclarations(tools, hub);
  } catch (error) {
    await ownHub?.close();
    throw error;
  }
  let sandbox: Promise<Sandbox> | undefined;
  const open = () => (sandbox ??= Sandbox.create({ ...sandboxOptions, ...(tools ? { tools } : {}), ...(hub ? { mcp: hub } : {}) }));
  const close = async () => {
    const made = sandbox;
    sandbox = undefined;
    await (await made?.catch(() => undefined))?.close();
    await ownHub?.close();
  };
  return {
    name,
    description: describeExecuteCode(declarations, sandboxOptions),
    inputSchema: EXECUTE_CODE_INPUT_SCHEMA,
    outputSchema: EXECUTE_CODE_OUTPUT_SCHEMA,
    async execute(input) {
      const checked = checkExecuteCodeInput(input);
      if (typeof checked === "string") throw new TypeError(`${name}: ${checked}`);
      const result = await executeCode(await open(), checked);
      return { ...result, text: renderExecuteCode(result) };
    },
    sandbox: open,
    close,
    [Symbol.asyncDispose]: close,
  };
}
