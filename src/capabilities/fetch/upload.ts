/**
 * A request body the sandbox streams up, chunk by chunk, as the HTTP client asks for it. What is
 * buffered here is bounded by net.maxRequestBytes: more than that fails the request.
 */
export class UploadTooLargeError extends Error {
  override name = "UploadTooLargeError";
}

export class Upload {
  /** Bytes received from the sandbox so far. */
  bytes = 0;
  private readonly chunks: Uint8Array[] = [];
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly maxBytes: number) {}

  push(data: Uint8Array): void {
    if (this.ended || this.failure) return;
    if (this.bytes + data.byteLength > this.maxBytes) {
      this.failure = new UploadTooLargeError(`fetch: the request body is over net.maxRequestBytes (${this.maxBytes})`);
    } else {
      this.bytes += data.byteLength;
      this.chunks.push(data);
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

  async *stream(): AsyncGenerator<Uint8Array> {
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk) yield chunk;
      else if (this.failure) throw this.failure;
      else if (this.ended) return;
      else await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
