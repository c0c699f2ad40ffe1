/**
 * The host half of fetch: every sandboxed request is decided here. No network policy exists yet,
 * so every request is refused with a PolicyError that names the rule.
 */
import type { FetchRequest } from "./messages.js";
import type { CapabilityReply } from "../../host/capabilities.js";

export async function handleFetch(request: FetchRequest): Promise<CapabilityReply> {
  let target: string;
  try {
    target = new URL(request.url).host;
  } catch {
    return { ok: false, error: { name: "TypeError", message: `fetch: invalid URL` } };
  }
  return {
    ok: false,
    error: { name: "PolicyError", message: `fetch to ${target} refused: no network policy grants this sandbox network access` },
  };
}
