/**
 * `tools` for realms: each tool the host granted is a function of the realm's own that sends its
 * input (structured-cloned) to the host and returns the realm's Promise of the result. The
 * carrier knows only the tools' names; what they do, and whether an input is valid, is the host's.
 */
import { deserialize } from "node:v8";
import type { CapabilityTools, CarrierCapability, RealmHelpers, ScopeSlot } from "../../carrier/capability.js";
import { defineGlobal, liveScope } from "../../carrier/capability.js";
import { capabilityError, serializeValue, UncloneableResult } from "../../carrier/values.js";
import { findUncloneable } from "../../protocol/clone-path.js";
import type { CallError } from "../../protocol/messages.js";
import type { ToolCatalogMessage } from "./messages.js";

let catalog: ToolCatalogMessage | undefined;

/** The sandbox's tools; realms made from now on offer them. */
export function receiveToolCatalog(message: ToolCatalogMessage): void {
  catalog = message.paths.length > 0 ? message : undefined;
}

export const toolsCapability: CarrierCapability = {
  install(global, slot, { realm }: CapabilityTools) {
    // No tools, no `tools`: code can tell it was given none.
    const granted = catalog;
    if (!granted) return;
    realm.lazyGlobal("ToolError", () => realm.errorClass("ToolError"));
    // Made with the realm (spare realms are made while the carrier is idle), not on the first
    // call: code in a sandbox with tools calls them.
    defineGlobal(global, "tools", namespaceOf(realm, slot, granted));
  },
};

type Tree = Map<string, Tree | string>;

/** The `tools` object: null-prototype, frozen namespaces, a realm function for each tool. */
function namespaceOf(realm: RealmHelpers, slot: ScopeSlot, granted: ToolCatalogMessage): object {
  const root: Tree = new Map();
  for (const path of granted.paths) {
    let node = root;
    for (const segment of path.slice(0, -1)) {
      let next = node.get(segment);
      if (typeof next !== "object") node.set(segment, (next = new Map()));
      node = next;
    }
    node.set(path.at(-1)!, path.join("."));
  }
  const build = (tree: Tree): object => {
    const namespace = realm.adopt({}) as object;
    Object.setPrototypeOf(namespace, null);
    for (const [key, value] of tree) {
      const member = typeof value === "string" ? toolFunction(realm, slot, key, value, granted.maxInputBytes) : build(value);
      Object.defineProperty(namespace, key, { value: member, enumerable: true });
    }
    return Object.freeze(namespace);
  };
  return build(root);
}

function toolFunction(realm: RealmHelpers, slot: ScopeSlot, key: string, name: string, maxInputBytes: number): unknown {
  const fail = (error: CallError): Error => {
    if (error.name === "ToolError") realm.errorClass("ToolError");
    return capabilityError(realm, error);
  };
  const call = async (input: unknown): Promise<unknown> => {
    const scope = liveScope(slot);
    if (!scope) throw fail({ name: "TypeError", message: `tools.${name}: the eval that made this call has ended` });
    let body: Uint8Array | undefined;
    if (input !== undefined) {
      try {
        body = serializeValue(input);
      } catch (error) {
        throw fail({ name: "TypeError", message: `tools.${name}: ${uncloneable(input, error)}` });
      }
      if (body.byteLength > maxInputBytes) {
        throw fail({ name: "ResourceLimitError", message: `tools.${name}: the input is ${body.byteLength} bytes; the limit is ${maxInputBytes} bytes (maxToolInputBytes)`, kind: "resource" });
      }
    }
    let reply;
    try {
      reply = await scope.call("tool", { tool: name }, body).reply;
    } catch (error) {
      throw fail(error as CallError);
    }
    return reply.body ? realm.adopt(deserialize(reply.body)) : undefined;
  };
  // A function of one declared parameter, named after the tool; the membrane makes it the
  // realm's own, returning the realm's Promise.
  const tool = (input: unknown) => call(input);
  Object.defineProperty(tool, "name", { value: key });
  return realm.membrane.hostFunction(tool);
}

/** Why an input cannot go to the host, and where in it. */
function uncloneable(input: unknown, error: unknown): string {
  if (error instanceof RangeError) return "the input is nested too deeply to be sent";
  if (error instanceof UncloneableResult) return error.message.replace("the result", "the input").replace("returned", "sent");
  let where: string | undefined;
  try {
    where = findUncloneable(input, "input");
  } catch {
    where = undefined;
  }
  return `${where ?? "the input cannot be structured-cloned"}, so it cannot be sent to the tool (inputs must be structured-cloneable: plain data, like JSON)`;
}
