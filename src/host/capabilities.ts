/** The host halves of capabilities, keyed by the name carriers call them by. */
import type { CallHandler } from "./carrier.js";
import type { EvalFetches } from "../capabilities/fetch/host.js";
import type { EvalToolCalls } from "../capabilities/tools/host.js";
import type { EvalFiles } from "../capabilities/files/host.js";

/** What one eval's capability calls reach. */
export interface EvalCapabilities {
  fetch: EvalFetches;
  /** Undefined for a sandbox without tools: a carrier that calls one anyway is refused. */
  tools: EvalToolCalls | undefined;
  files: EvalFiles;
}

export function callHandler(capabilities: EvalCapabilities): CallHandler {
  return (call, port) => {
    switch (call.cap) {
      case "fetch":
        return capabilities.fetch.handle(call.args, port);
      case "tool":
        if (capabilities.tools) return capabilities.tools.handle(call.args, port);
        port.violation("a tool call in a sandbox without tools");
        return Promise.resolve({ ok: false, error: { name: "TypeError", message: "this sandbox has no tools" } });
      case "files":
        return capabilities.files.handle(call.args, port);
    }
  };
}
