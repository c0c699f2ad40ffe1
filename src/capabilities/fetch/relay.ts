/**
 * Relays a response to the sandbox: its head in the call's reply, its body either in that same
 * reply (small and already complete: the common case, one frame) or as stream messages after it.
 * The body is decompressed here (so limits count what the sandbox gets, and a zip bomb stops at
 * the limit), scrubbed of secrets, and streamed no faster than the sandbox reads it.
 */
import { createBrotliDecompress, createGunzip, createInflate, constants as zlib } from "node:zlib";
import type { Transform } from "node:stream";
import type { IncomingHttpHeaders } from "node:http";
import type { CallPort } from "../../host/call-port.js";
import type { CallReply } from "../../host/carrier.js";
import type { CallError } from "../../protocol/messages.js";
import type { FetchResponseHead } from "./messages.js";
import { MAX_CHUNK_BYTES, RESPONSE_WINDOW_BYTES } from "./flow.js";
import type { Hop, HopHead, BodySink } from "./hop.js";
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
  hop: Hop;
  head: HopHead;
  url: URL;
  method: string;
  redirected: boolean;
  port: CallPort;
  secrets: Secrets;
  maxResponseBytes: number;
  /** Tells when the fetch is stopped (timeout, cancel, eval end). */
  stops: { onStop(listener: () => void): void };
  /** Why the fetch was stopped, once it was. */
  stopError: () => CallError;
  /** Receives the function that takes the sandbox's read credit. */
  onCredit: (credit: (bytes: number) => void) => void;
  /** Called once, when the body is over, with the error that ended it if any. */
  finish: (error?: string) => void;
}

export function relay(target: RelayTarget): CallReply {
  const { hop, head, secrets, maxResponseBytes: limit } = target;
  if (head.status < 200 || head.status > 599) {
    hop.discard();
    return typeError(`fetch: the response status ${head.status} is not one a Response can have`);
  }
  const decoding = decodersFor(headerText(head.headers["content-encoding"]));
  if (decoding === "unknown" && !secrets.isEmpty) {
    // Undecoded bytes cannot be scrubbed: code that chose the coding could decode a secret itself.
    hop.discard();
    return typeError("fetch: the response uses a content coding the host cannot decode");
  }
  const decoder = decoding === "unknown" || decoding.length === 0 ? undefined : chain(decoding);
  const hasBody = target.method !== "HEAD" && head.status !== 204 && head.status !== 205 && head.status !== 304;
  const value: FetchResponseHead = {
    status: head.status,
    statusText: secrets.redactText(head.statusText),
    headers: responseHeaders(head.headers, secrets, decoder !== undefined),
    url: secrets.redactUrl(target.url),
    redirected: target.redirected,
    body: "none",
  };
  if (!hasBody) {
    hop.discard();
    target.finish();
    target.port.end();
    return { ok: true, value };
  }
  const declared = Number(headerText(head.headers["content-length"]));
  if (!decoder && declared > limit) {
    hop.discard();
    value.body = "stream";
    target.finish(tooLarge(limit).message);
    target.port.fail(tooLarge(limit));
    return { ok: true, value };
  }
  const whole = decoder ? undefined : completeBody(hop, limit);
  if (whole) {
    value.body = "inline";
    target.finish();
    // Nothing follows the reply: the call is over (a request body still streaming up stops).
    target.port.end();
    return { ok: true, value, body: secrets.isEmpty ? whole : secrets.redactBytes(whole) };
  }
  value.body = "stream";
  hop.pipeTo(new BodyStream(target, decoder));
  return { ok: true, value };
}

/** The decoders for a Content-Encoding list, in the order to apply them; "unknown" if one is. */
function decodersFor(encoding: string): Array<() => Transform> | "unknown" {
  const codings = encoding.split(",").map((coding) => coding.trim().toLowerCase()).filter((coding) => coding !== "" && coding !== "identity");
  if (codings.length > 3) return "unknown";
  const decoders = codings.reverse().map((coding) => DECODERS[coding]);
  return decoders.every((decoder) => decoder !== undefined) ? (decoders as Array<() => Transform>) : "unknown";
}

/** Decoders piped one into the next: bytes go in the first, come out of the last. */
interface DecoderChain {
  input: Transform;
  output: Transform;
  all: Transform[];
}

function chain(decoders: Array<() => Transform>): DecoderChain {
  const all = decoders.map((make) => make());
  for (let i = 0; i + 1 < all.length; i++) all[i]!.pipe(all[i + 1]!);
  return { input: all[0]!, output: all[all.length - 1]!, all };
}

/** The whole body, if it has already arrived and fits in one reply. */
function completeBody(hop: Hop, limit: number): Buffer | undefined {
  if (!hop.complete) return undefined;
  const chunks = hop.heldChunks;
  const size = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
  if (size > RESPONSE_WINDOW_BYTES || size > limit) return undefined;
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

/** A body streamed to the sandbox: decoded, counted, scrubbed, and paced by the sandbox's reads. */
class BodyStream implements BodySink {
  private delivered = 0;
  private unread = 0;
  private pipeBlocked = false;
  private decoderFull = false;
  private over = false;
  private readonly scrubber: ReturnType<Secrets["bodyScrubber"]> | undefined;

  constructor(
    private readonly target: RelayTarget,
    private readonly decoder: DecoderChain | undefined,
  ) {
    this.scrubber = target.secrets.isEmpty ? undefined : target.secrets.bodyScrubber();
    target.onCredit((bytes) => {
      this.unread = Math.max(0, this.unread - bytes);
      this.updateFlow();
    });
    target.stops.onStop(() => this.close(target.stopError()));
    if (decoder) {
      decoder.output.on("data", (chunk: Buffer) => this.deliver(chunk));
      decoder.output.on("end", () => this.finishDecoded());
      for (const stage of decoder.all) stage.on("error", () => this.close({ name: "TypeError", message: "fetch: the response body could not be decoded" }));
      decoder.input.on("drain", () => {
        this.decoderFull = false;
        this.updateFlow();
      });
    }
  }

  get flowing(): boolean {
    return !this.over && !this.pipeBlocked && !this.decoderFull && this.unread < RESPONSE_WINDOW_BYTES;
  }

  data(chunk: Buffer): void {
    if (this.over) return;
    if (!this.decoder) return this.deliver(chunk);
    if (!this.decoder.input.write(chunk)) this.decoderFull = true;
    this.updateFlow();
  }

  end(): void {
    if (this.decoder) this.decoder.input.end();
    else this.finishDecoded();
  }

  error(): void {
    // A stop (timeout, cancel) closes the stream itself, with its own error, before this.
    this.close({ name: "TypeError", message: "fetch: the connection failed while the response body was being read" });
  }

  private deliver(chunk: Buffer): void {
    if (this.over) return;
    this.delivered += chunk.byteLength;
    if (this.delivered > this.target.maxResponseBytes) return this.close(tooLarge(this.target.maxResponseBytes));
    this.send(this.scrubber ? this.scrubber.push(chunk) : chunk);
    this.updateFlow();
  }

  private finishDecoded(): void {
    if (this.scrubber) this.send(this.scrubber.flush());
    this.close();
  }

  private send(data: Buffer): void {
    const { port } = this.target;
    for (let offset = 0; offset < data.byteLength; offset += MAX_CHUNK_BYTES) {
      if (!port.push(data.subarray(offset, offset + MAX_CHUNK_BYTES)) && !this.pipeBlocked) {
        // The carrier is not reading its pipe (a carrier that grants credit and never reads, say).
        this.pipeBlocked = true;
        void port.whenWritable().then(() => {
          this.pipeBlocked = false;
          this.updateFlow();
        });
      }
    }
    this.unread += data.byteLength;
  }

  /**
   * The decoder's output runs while the sandbox has room; the connection runs while, on top of
   * that, the decoder takes more input. (Resuming the output is what drains a full decoder.)
   */
  private updateFlow(): void {
    if (this.over) return;
    const room = this.unread < RESPONSE_WINDOW_BYTES && !this.pipeBlocked;
    if (room) this.decoder?.output.resume();
    else this.decoder?.output.pause();
    if (this.flowing) this.target.hop.resume();
    else this.target.hop.pause();
  }

  private close(error?: CallError): void {
    if (this.over) return;
    this.over = true;
    this.target.hop.discard();
    for (const stage of this.decoder?.all ?? []) stage.destroy();
    // The exchange is finished first: the port's closing must not read as the eval ending.
    this.target.finish(error?.message);
    if (error) this.target.port.fail(error);
    else this.target.port.end();
  }
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
    // A decoded or scrubbed body has another length than the one declared (and a secret's length
    // is nobody's business).
    if ((decoded || !secrets.isEmpty) && name === "content-length") continue;
    if (decoded && name === "content-encoding") continue;
    for (const item of Array.isArray(value) ? value : [value]) {
      const redacted = secrets.redactText(item);
      // What exact matching missed (a percent-encoded secret in a Location, say) is withheld whole.
      list.push([secrets.redactText(name), secrets.revealedIn(redacted) ? "(withheld: it carries a secret)" : redacted]);
    }
  }
  return list;
}
