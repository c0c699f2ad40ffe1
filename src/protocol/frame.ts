/**
 * Frames on the host⇄carrier pipes.
 *
 *   u32 BE  length of everything after this field
 *   u32 BE  length of the header
 *   header  UTF-8 JSON (one message, see messages.ts)
 *   body    optional binary payload (V8-serialized values), the rest of the frame
 *
 * A JSON header keeps the control messages readable and cheap to validate; values travel in the
 * binary body so they are parsed once, by the V8 deserializer, never by JSON.
 */

export const FRAME_PREFIX_BYTES = 8;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export function encodeFrame(header: unknown, body?: Uint8Array): Uint8Array {
  const json = encoder.encode(JSON.stringify(header));
  const bodyLength = body?.byteLength ?? 0;
  const frame = new Uint8Array(FRAME_PREFIX_BYTES + json.byteLength + bodyLength);
  const view = new DataView(frame.buffer);
  view.setUint32(0, 4 + json.byteLength + bodyLength);
  view.setUint32(4, json.byteLength);
  frame.set(json, FRAME_PREFIX_BYTES);
  if (body) frame.set(body, FRAME_PREFIX_BYTES + json.byteLength);
  return frame;
}

export interface RawFrame {
  header: unknown;
  body: Uint8Array | undefined;
}

export class FrameError extends Error {
  override name = "FrameError";
}

/**
 * Incremental frame reader. Bytes go in as they arrive from the pipe; whole frames come out.
 * Every length is checked against `maxFrameBytes` before anything is buffered for it, so a peer
 * announcing a huge frame is refused at once instead of making us allocate.
 */
export class FrameReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;

  constructor(public maxFrameBytes: number) {}

  push(chunk: Uint8Array): RawFrame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.byteLength;
    const frames: RawFrame[] = [];
    while (this.buffered >= 4) {
      const head = this.peek(4);
      const length = new DataView(head.buffer, head.byteOffset, 4).getUint32(0);
      if (length < 4 || length > this.maxFrameBytes) {
        throw new FrameError(`frame of ${length} bytes is outside the allowed 4..${this.maxFrameBytes}`);
      }
      if (this.buffered < 4 + length) break;
      const frame = this.take(4 + length);
      const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
      const headerLength = view.getUint32(4);
      if (headerLength > length - 4) throw new FrameError(`header length ${headerLength} exceeds frame length ${length}`);
      const headerEnd = FRAME_PREFIX_BYTES + headerLength;
      let header: unknown;
      try {
        header = JSON.parse(decoder.decode(frame.subarray(FRAME_PREFIX_BYTES, headerEnd)));
      } catch {
        throw new FrameError("frame header is not valid UTF-8 JSON");
      }
      frames.push({ header, body: headerEnd < frame.byteLength ? frame.subarray(headerEnd) : undefined });
    }
    return frames;
  }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.byteLength >= n) return first;
    return this.concat(n, false);
  }

  private take(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.byteLength === n) {
      this.chunks.shift();
      this.buffered -= n;
      return first;
    }
    if (first.byteLength > n) {
      this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return first.subarray(0, n);
    }
    return this.concat(n, true);
  }

  private concat(n: number, consume: boolean): Uint8Array {
    const out = new Uint8Array(n);
    let offset = 0;
    let index = 0;
    while (offset < n) {
      const chunk = this.chunks[index]!;
      const used = Math.min(chunk.byteLength, n - offset);
      out.set(chunk.subarray(0, used), offset);
      offset += used;
      if (consume) {
        if (used === chunk.byteLength) {
          this.chunks.shift();
        } else {
          this.chunks[0] = chunk.subarray(used);
        }
      } else {
        index++;
      }
    }
    if (consume) this.buffered -= n;
    return out;
  }
}
