/**
 * A request body the sandbox streams up, chunk by chunk, as the HTTP client asks for it: the
 * carrier may send only what it was granted, so the host holds at most one window of it.
 * More than net.maxRequestBytes in all fails the request.
 */
export class UploadTooLargeError extends Error {
  override name = "UploadTooLargeError";
}

/** Bytes the carrier may send ahead of the HTTP client. */
export const UPLOAD_WINDOW_BYTES = 256 * 1024;
/** Chunks waiting to be sent are merged up to this size. */
const MERGE_BYTES = 16 * 1024;

export class Upload {
  /** Bytes received from the sandbox so far. */
  bytes = 0;
  private granted = 0;
  private readonly chunks: Uint8Array[] = [];
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  /**
   * `grant` gives the carrier credit; `violation` reports a carrier that sent more than it was
   * given (or after its end), which only a carrier that was taken over would do.
   */
  constructor(
    private readonly maxBytes: number,
    private readonly grant: (bytes: number) => void,
    private readonly violation: (what: string) => void,
  ) {}

  push(data: Uint8Array): void {
    if (this.failure) return;
    if (this.ended || this.bytes + data.byteLength > this.granted) return this.violation("request body data beyond the credit it was given");
    if (this.bytes + data.byteLength > this.maxBytes) {
      this.failure = new UploadTooLargeError(`fetch: the request body is over net.maxRequestBytes (${this.maxBytes})`);
    } else {
      this.bytes += data.byteLength;
      // Copied (a view would keep the whole pipe read it came in alive), and small chunks merged:
      // a body sent a byte at a time is not held as a million objects.
      const last = this.chunks.at(-1);
      if (last && last.byteLength + data.byteLength <= MERGE_BYTES) this.chunks[this.chunks.length - 1] = Buffer.concat([last, data]);
      else this.chunks.push(Uint8Array.prototype.slice.call(data));
    }
    this.notify();
  }

  end(): void {
    this.ended = true;
    this.notify();
  }

  /** The sandbox or the host gave up on the request: the body ends in an error. */
  fail(): void {
    this.failure ??= new Error("the request body was abandoned");
    this.notify();
  }

  /** The body for the HTTP client; credit starts when it starts reading, and follows its reads. */
  async *stream(): AsyncGenerator<Uint8Array> {
    this.give(Math.min(UPLOAD_WINDOW_BYTES, this.maxBytes + 1));
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk) {
        yield chunk;
        this.give(chunk.byteLength);
      } else if (this.failure) {
        throw this.failure;
      } else if (this.ended) {
        return;
      } else {
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    }
  }

  private give(bytes: number): void {
    this.granted += bytes;
    this.grant(bytes);
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
