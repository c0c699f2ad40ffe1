/**
 * A sandbox's tools: its own host tools and those of its MCP servers, gathered once (connecting
 * the servers on first use) into the entries calls are served from, the names its carriers offer
 * and the declarations a model is shown.
 */
import type { ToolCatalogMessage } from "./messages.js";
import { declarationOf, hostToolEntries, type ToolEntry } from "./host.js";
import { flattenTools, type ToolLimits, type ToolTree } from "./options.js";
import type { McpHub } from "./mcp.js";
import { declareTools } from "./declarations.js";

export interface ToolCatalog {
  /** By dotted name (a Map: a tool may be called `__proto__`). */
  entries: ReadonlyMap<string, ToolEntry>;
  message: ToolCatalogMessage;
  /** Made on first use. */
  declarations?: string;
}

export class SandboxTools {
  /** The catalog once gathered: evals after the first take it without waiting. */
  current: ToolCatalog | undefined;
  private gathering: Promise<ToolCatalog> | undefined;

  constructor(
    private readonly own: readonly ToolEntry[],
    private readonly hub: McpHub | undefined,
    /** A hub made from the sandbox's own `mcp` servers is the sandbox's, and closed with it. */
    private readonly ownsHub: boolean,
    readonly limits: ToolLimits,
  ) {
    if (!hub) this.current = catalogOf(own, limits);
  }

  /** The catalog, gathered on first use; an MCP server that cannot be reached fails it (with an McpError), and the next use tries again. */
  catalog(): Promise<ToolCatalog> {
    if (this.current) return Promise.resolve(this.current);
    this.gathering ??= (async () => {
      try {
        const remote = await this.hub!.tools();
        return (this.current = catalogOf([...this.own, ...remote], this.limits));
      } finally {
        this.gathering = undefined;
      }
    })();
    return this.gathering;
  }

  async declarations(): Promise<string> {
    const catalog = await this.catalog();
    return (catalog.declarations ??= declarationsOf([...catalog.entries.values()]));
  }

  close(): Promise<void> {
    return this.ownsHub && this.hub ? this.hub.close() : Promise.resolve();
  }
}

function catalogOf(entries: readonly ToolEntry[], limits: ToolLimits): ToolCatalog {
  const byName = new Map<string, ToolEntry>();
  for (const entry of entries) byName.set(entry.name, entry);
  return { entries: byName, message: { t: "tools", paths: entries.map((entry) => [...entry.path]), maxInputBytes: limits.maxToolInputBytes } };
}

/**
 * The declarations for a set of tools without a sandbox (to build a prompt before any code runs):
 * host tools as Sandbox.create takes them, and the tools of an McpHub's servers.
 */
export async function toolDeclarations(tools: ToolTree | undefined, mcp?: McpHub): Promise<string> {
  const own = hostToolEntries(tools ? flattenTools(tools, "toolDeclarations") : []);
  const remote = mcp ? await mcp.tools() : [];
  return declarationsOf([...own, ...remote]);
}

/** None at all for no tools: a sandbox without tools has no `tools` global to declare. */
function declarationsOf(entries: readonly ToolEntry[]): string {
  return entries.length === 0 ? "" : declareTools(entries.map(declarationOf));
}
