/**
 * The carrier's only channel to the world: frames on stdin/stdout. Captured from the Deno namespace
 * at start, before hardening deletes it.
 */
import { setImmediate } from "node:timers";
import { encodeFrame, FrameReader, type RawFrame } from "../protocol/frame.js";

export interface CarrierIO {
  send(header: unknown, body?: Uint8Array): void;
  /**
   * Sends after the current turn of the event loop, with every frame sent so for that turn in one
   * write (an app's responses under load); `send` sends what is waiting first, so order is kept.
   */
  sendSoon(header: unknown, body?: Uint8Array): void;
  /**
   * Reads frames until the host closes stdin. While `isIdle()` says nothing else needs the event
   * loop, the carrier blocks in a synchronous read: the request then wakes this thread directly,
   * which halves the pipe round trip compared with an async read through Deno's I/O threads.
   * `isIdle` is told whether the previous synchronous read found input already waiting.
   */
  readFrames(onFrame: (frame: RawFrame, readAt: number) => void, isIdle: (inputWasWaiting: boolean) => boolean, afterBatch: () => Promise<void>): Promise<void>;
  exit(code: number): never;
}

/** Frames waiting to be sent soon are sent at once beyond this many bytes. */
const SOON_FLUSH_BYTES = 256 * 1024;

/** A synchronous read that returns within this found its input already there (a wake-up takes longer). */
const WAITING_INPUT_MS = 0.025;

export function captureIO(maxFrameBytes: number): CarrierIO {
  const { stdin, stdout } = Deno;
  const exit = Deno.exit;
  const write = (frame: Uint8Array) => {
    let written = 0;
    while (written < frame.byteLength) written += stdout.writeSync(frame.subarray(written));
  };
  let waiting: Uint8Array[] = [];
  let waitingBytes = 0;
  const flush = () => {
    if (waiting.length === 0) return;
    const frames = waiting;
    const joined = new Uint8Array(waitingBytes);
    waiting = [];
    waitingBytes = 0;
    let offset = 0;
    for (const frame of frames) {
      joined.set(frame, offset);
      offset += frame.byteLength;
    }
    write(joined);
  };
  return {
    send(header, body) {
      flush();
      write(encodeFrame(header, body));
    },
    sendSoon(header, body) {
      const frame = encodeFrame(header, body);
      if (waiting.length === 0) setImmediate(flush);
      waiting.push(frame);
      waitingBytes += frame.byteLength;
      if (waitingBytes >= SOON_FLUSH_BYTES) flush();
    },
    async readFrames(onFrame, isIdle, afterBatch) {
      const reader = new FrameReader(maxFrameBytes);
      const buffer = new Uint8Array(256 * 1024);
      let inputWasWaiting = false;
      for (;;) {
        let n: number | null;
        if (isIdle(inputWasWaiting)) {
          // Nothing may wait to be sent while the carrier blocks.
          flush();
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
    exit: (code) => {
      flush();
      return exit(code);
    },
  };
}
