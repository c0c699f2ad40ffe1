/**
 * Fake carriers for protocol tests: executables that speak (or break) the carrier protocol, used in
 * place of Deno through PADDOCK_DENO. Each behaviour is a small program written to a temp file.
 */
import { after } from "node:test";
import { mkdtempSync, writeFileSync, chmodSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const frameModule = fileURLToPath(new URL("../../src/protocol/frame.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "paddock-fake-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let count = 0;

/**
 * `onEval` is the body of a function `(message, send, raw) => void` run for each eval request (and
 * each batch, see src/carrier/batch.ts):
 * `send(header, body?)` writes a well-formed frame, `raw(bytes)` writes anything at all.
 * `prelude` runs once at start, before anything is read; by default it sends a ready message.
 */
export function fakeCarrier(onEval: string, prelude = 'send({ t: "ready" });'): string {
  const path = join(dir, `fake-${count++}.mjs`);
  writeFileSync(
    path,
    `#!${process.execPath}
import { FrameReader, encodeFrame } from ${JSON.stringify(frameModule)};
const send = (header, body) => process.stdout.write(encodeFrame(header, body));
const raw = (bytes) => process.stdout.write(bytes);
const reader = new FrameReader(1 << 30);
${prelude}
const onEval = (message) => { ${onEval} };
process.stdin.on("data", (chunk) => {
  for (const frame of reader.push(chunk)) if (frame.header.t === "eval" || frame.header.t === "batch") onEval(frame.header);
});
`,
  );
  chmodSync(path, 0o755);
  return path;
}
