/** The host halves of capabilities, keyed by the name carriers call them by. */
import type { CallMessage } from "../protocol/messages.js";
import { handleFetch } from "../capabilities/fetch/host.js";

export type CapabilityReply = { ok: true; value: unknown } | { ok: false; error: { name: string; message: string } };

export function handleCall(call: CallMessage): Promise<CapabilityReply> {
  switch (call.cap) {
    case "fetch":
      return handleFetch(call.args);
  }
}
