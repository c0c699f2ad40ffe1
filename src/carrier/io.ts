/**
 * The carrier's only channel to the world: frames on stdin/stdout. Captured from the Deno namespace
 * at start, before hardening deletes it.
 */
import { encodeFrame, FrameReader, type RawFrame } from "../protocol/frame.js";

export interface CarrierIO {
  send(header: unknown, body?: Uint8Array): void;
  /**
   * Reads frames until the host closes stdin. While `isIdle()` says nothing else needs the event
   * loop, the carrier blocks in a synchronous read: the request then wakes this thread directly,
   * which halves the pipe round trip compared with an async read through Deno's I/O threads.
   * `isIdle` is told whether the previous synchronous read found input already waiting.
   */
  readFrames(onFrame: (frame: RawFrame, readAt: number) => void, isIdle: (inputWasWaiting: boolean) => boolean, afterBatch: () => Promise<void>): Promise<void>;
  exit(code: number): never;
}

/** A synchronous read that returns within this found its input already there (a wake-up takes longer). */
const WAITING_INPUT_MS = 0.025;

export function captureIO(maxFrameBytes: number): CarrierIO {
  const { stdin, stdout } = Deno;
  const exit = Deno.exit;
  return {
    send(header, body) {
      const frame = encodeFrame(header, body);
      let written = 0;
      while (written < frame.byteLength) written += stdout.writeSync(frame.subarray(written));
    },
    async readFrames(onFrame, isIdle, afterBatch) {
      const reader = new FrameReader(maxFrameBytes);
      const buffer = new Uint8Array(256 * 1024);
      let inputWasWaiting = false;
      for (;;) {
        let n: number | null;
        if (isIdle(inputWasWaiting)) {
          const blockedAt = performance.now();
          n = stdin.readSync(buffer);
          inputWasWaiting = performance.now() - blockedAt < WAITING_INPUT_MS;
        } else {
          n = await stdin.read(buffer);
        }
        if (n === null) return;
        const readAt = performance.now();
        for (const frame of reader.push(buffer.slice(0, n))) onFrame(frame, readAt);
        // A synchronous read never yields to the event loop: let the work those frames started
        // (and evals that finish at once) complete before deciding how to read next.
        await afterBatch();
      }
    },
    exit,
  };
}
