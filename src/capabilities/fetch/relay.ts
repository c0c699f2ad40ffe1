/**
 * Relays a response to the sandbox: its head in the call's reply, its body as stream messages.
 * The body is decompressed here (so limits count what the sandbox gets, and a zip bomb stops at
 * the limit), scrubbed of secrets, and sent no faster than the sandbox reads it.
 */
import { createBrotliDecompress, createGunzip, createInflate, constants as zlib } from "node:zlib";
import { pipeline, type Readable, type Transform } from "node:stream";
import type { IncomingHttpHeaders } from "node:http";
import type { Dispatcher } from "undici";
import type { CallPort } from "../../host/call-port.js";
import type { CallReply } from "../../host/carrier.js";
import type { CallError } from "../../protocol/messages.js";
import type { FetchResponseHead } from "./messages.js";
import { MAX_CHUNK_BYTES, RESPONSE_WINDOW_BYTES } from "./flow.js";
import type { Network, FetchRecord } from "./host.js";
import type { HeaderList, Secrets } from "./secrets.js";
import { limitFailure, typeError } from "./failures.js";

/** Content codings undone on the host, as fetch does. Lenient about a missing end, like browsers. */
const DECODERS: Record<string, () => Transform> = {
  gzip: () => createGunzip({ flush: zlib.Z_SYNC_FLUSH, finishFlush: zlib.Z_SYNC_FLUSH }),
  "x-gzip": () => createGunzip({ flush: zlib.Z_SYNC_FLUSH, finishFlush: zlib.Z_SYNC_FLUSH }),
  deflate: () => createInflate({ flush: zlib.Z_SYNC_FLUSH, finishFlush: zlib.Z_SYNC_FLUSH }),
  br: () => createBrotliDecompress({ flush: zlib.BROTLI_OPERATION_FLUSH, finishFlush: zlib.BROTLI_OPERATION_FLUSH }),
};

export interface RelayTarget {
  response: Dispatcher.ResponseData;
  url: URL;
  method: string;
  redirected: boolean;
  port: CallPort;
  network: Network;
  record: FetchRecord;
  /** Aborted when the fetch is stopped (timeout, cancel, eval end). */
  signal: AbortSignal;
  /** Why the fetch was stopped, once it was. */
  stopError: () => CallError;
  /** Receives the function that takes the sandbox's read credit. */
  onCredit: (credit: (bytes: number) => void) => void;
  /** Called once, when the body is over, with the error that ended it if any. */
  finish: (error?: string) => void;
}

export function relayBody(target: RelayTarget): CallReply {
  const { response, port, network, record } = target;
  const { statusCode: status } = response;
  if (status < 200 || status > 599) {
    response.body.destroy();
    return typeError(`fetch: the response status ${status} is not one a Response can have`);
  }
  const encoding = headerText(response.headers["content-encoding"]).trim().toLowerCase();
  const decoder = DECODERS[encoding];
  const hasBody = target.method !== "HEAD" && status !== 204 && status !== 205 && status !== 304;
  const head: FetchResponseHead = {
    status,
    statusText: network.secrets.redact(response.statusText ?? ""),
    headers: responseHeaders(response.headers, network.secrets, decoder !== undefined),
    url: network.secrets.redact(target.url.href),
    redirected: target.redirected,
    body: hasBody,
  };
  if (!hasBody) {
    response.body.destroy();
    target.finish();
    return { ok: true, value: head };
  }
  const limit = network.options.maxResponseBytes;
  const declared = Number(headerText(response.headers["content-length"]));
  if (!decoder && declared > limit) {
    response.body.destroy();
    port.fail(tooLarge(limit));
    target.finish(`response body over net.maxResponseBytes`);
    return { ok: true, value: head };
  }
  streamBody(target, decoder);
  return { ok: true, value: head };
}

function streamBody(target: RelayTarget, decoder: (() => Transform) | undefined): void {
  const { response, port, network, record } = target;
  const source = response.body;
  const limit = network.options.maxResponseBytes;
  const scrubber = network.secrets.isEmpty ? undefined : network.secrets.bodyScrubber();
  let body: Readable = source;
  if (decoder) body = pipeline(source, decoder(), () => {});
  source.on("data", (chunk: Buffer) => (record.bytesIn += chunk.byteLength));

  let delivered = 0;
  let unread = 0;
  let pipeBlocked = false;
  let over = false;
  const end = (error?: CallError) => {
    if (over) return;
    over = true;
    source.destroy();
    if (error) port.fail(error);
    else port.end();
    target.finish(error?.message);
  };
  const send = (data: Buffer) => {
    for (let offset = 0; offset < data.byteLength; offset += MAX_CHUNK_BYTES) {
      if (!port.push(data.subarray(offset, offset + MAX_CHUNK_BYTES))) pipeBlocked = true;
    }
    unread += data.byteLength;
  };
  const resumeIfAllowed = () => {
    if (!over && !pipeBlocked && unread < RESPONSE_WINDOW_BYTES && body.isPaused()) body.resume();
  };
  target.onCredit((bytes) => {
    unread = Math.max(0, unread - bytes);
    resumeIfAllowed();
  });
  body.on("data", (chunk: Buffer) => {
    if (over) return;
    delivered += chunk.byteLength;
    if (delivered > limit) return end(tooLarge(limit));
    send(scrubber ? scrubber.push(chunk) : chunk);
    if (unread >= RESPONSE_WINDOW_BYTES || pipeBlocked) body.pause();
    if (pipeBlocked) {
      void port.whenWritable().then(() => {
        pipeBlocked = false;
        resumeIfAllowed();
      });
    }
  });
  body.on("end", () => {
    if (scrubber) send(scrubber.flush());
    end();
  });
  body.on("error", () => end(target.signal.aborted ? target.stopError() : { name: "TypeError", message: "fetch: the response body could not be read (network error or bad encoding)" }));
  target.signal.addEventListener("abort", () => end(target.stopError()), { once: true });
}

function tooLarge(limit: number): CallError {
  return limitFailure(`fetch: the response body is over net.maxResponseBytes (${limit} bytes)`);
}

function headerText(value: string | string[] | undefined): string {
  return Array.isArray(value) ? value.join(", ") : value ?? "";
}

/** The response headers as the sandbox sees them: secrets redacted, decoded codings removed. */
function responseHeaders(headers: IncomingHttpHeaders, secrets: Secrets, decoded: boolean): HeaderList {
  const list: HeaderList = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (decoded && (name === "content-encoding" || name === "content-length")) continue;
    for (const item of Array.isArray(value) ? value : [value]) list.push([name, secrets.redact(item)]);
  }
  return list;
}
