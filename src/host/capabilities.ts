/** The host halves of capabilities, keyed by the name carriers call them by. */
import type { CallHandler } from "./carrier.js";
import type { EvalFetches } from "../capabilities/fetch/host.js";

/** What one eval's capability calls reach. */
export interface EvalCapabilities {
  fetch: EvalFetches;
}

export function callHandler(capabilities: EvalCapabilities): CallHandler {
  return (call, port) => {
    switch (call.cap) {
      case "fetch":
        return capabilities.fetch.handle(call.args, port);
    }
  };
}
