/** How a fetch fails, in the words the sandbox sees: standard error names, no host details. */
import { undici } from "./undici.js";
import type { CallReply } from "../../host/carrier.js";
import type { CallError } from "../../protocol/messages.js";
import { AddressRefusedError } from "./policy.js";
import { UploadTooLargeError } from "./upload.js";

/** A reply that refuses the call. */
export type FailedReply = CallReply & { ok: false };

export function typeError(message: string): FailedReply {
  return { ok: false, error: { name: "TypeError", message } };
}

export function policyError(message: string): FailedReply {
  return { ok: false, error: { name: "PolicyError", message, kind: "policy" } };
}

export function limitError(message: string): FailedReply {
  return { ok: false, error: limitFailure(message) };
}

export function limitFailure(message: string): CallError {
  return { name: "ResourceLimitError", message, kind: "resource" };
}

/** Socket and TLS error codes, and what the sandbox is told about them. */
const NETWORK_FAILURES: Record<string, string> = {
  ENOTFOUND: "the name does not resolve",
  EAI_AGAIN: "the name could not be resolved",
  ECONNREFUSED: "the connection was refused",
  ECONNRESET: "the connection was reset",
  EPIPE: "the connection was closed",
  ETIMEDOUT: "the connection timed out",
  EHOSTUNREACH: "the host is unreachable",
  ENETUNREACH: "the network is unreachable",
  UND_ERR_CONNECT_TIMEOUT: "the connection timed out",
  UND_ERR_HEADERS_TIMEOUT: "the response headers took too long",
  UND_ERR_BODY_TIMEOUT: "the response body stalled",
  UND_ERR_SOCKET: "the connection was closed",
  UND_ERR_CLOSED: "the connection was closed",
  UND_ERR_HEADERS_OVERFLOW: "the response headers are too large",
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: "the response body does not match its content-length",
  HPE_INVALID_CONSTANT: "the response is not valid HTTP",
};

/**
 * The sandbox's error for a request that failed on the host, and the refusal rule when the policy
 * (at connect time) refused it. Messages are chosen here, never copied from the error: they could
 * carry addresses, paths or header values.
 */
export function describeFailure(error: unknown, host: string): { error: CallError; refused?: string } {
  const cause = rootCause(error);
  if (cause instanceof AddressRefusedError) {
    return { error: { name: "PolicyError", message: `fetch to ${host} refused: ${cause.rule}`, kind: "policy" }, refused: cause.rule };
  }
  if (cause instanceof UploadTooLargeError) return { error: limitFailure(cause.message) };
  if (cause instanceof undici().errors.InvalidArgumentError) return { error: { name: "TypeError", message: `fetch: ${safeInvalidArgument(cause.message)}` } };
  const code = (cause as { code?: unknown } | undefined)?.code;
  const tls = typeof code === "string" && /CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO/.test(code);
  const what = typeof code === "string" ? NETWORK_FAILURES[code] ?? (tls ? `the TLS handshake failed (${code})` : undefined) : undefined;
  return { error: { name: "TypeError", message: `fetch to ${host} failed: ${what ?? "network error"}` } };
}

/** undici's argument errors name a header or a method, never a value: "invalid content-type header". */
function safeInvalidArgument(message: string): string {
  return /^[\w -]{1,120}$/.test(message) ? message : "the request is invalid";
}

function rootCause(error: unknown): unknown {
  let current = error;
  for (let depth = 0; depth < 4; depth++) {
    if (current instanceof AddressRefusedError || current instanceof UploadTooLargeError) return current;
    const next = (current as { cause?: unknown } | undefined)?.cause;
    if (next === undefined) return current;
    current = next;
  }
  return current;
}
