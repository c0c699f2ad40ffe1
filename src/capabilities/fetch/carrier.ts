/**
 * `fetch` for realms. The carrier has no network: every request is a call to the host, which
 * checks the sandbox's network policy and performs it. Until a policy grants hosts, the host
 * refuses and the promise rejects with a PolicyError.
 */
import type { CarrierCapability } from "../../carrier/capability.js";
import { defineGlobal, liveScope } from "../../carrier/capability.js";
import type { FetchRequest } from "./messages.js";

export const fetchCapability: CarrierCapability = {
  install(global, slot, { realm }) {
    defineGlobal(global, "fetch", async (input: unknown, init?: { method?: unknown }) => {
      let request: Request;
      try {
        request = new Request(input as RequestInfo, init as RequestInit);
      } catch (error) {
        throw realm.makeError("TypeError", `fetch: ${(error as Error).message}`);
      }
      const scope = liveScope(slot);
      if (!scope) throw realm.makeError("TypeError", "fetch: the eval that made this request has ended");
      const args: FetchRequest = { url: request.url, method: request.method };
      try {
        return await scope.call("fetch", args);
      } catch (error) {
        const { name, message } = error as { name: string; message: string };
        throw realm.makeError(name, message);
      }
    });
  },
};
