import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeFrame, FrameReader, FrameError } from "../../src/protocol/frame.js";

test("frames round-trip whole, split byte by byte, and batched", () => {
  const frames = [encodeFrame({ t: "a", n: 1 }), encodeFrame({ t: "b" }, new Uint8Array([1, 2, 3])), encodeFrame({ t: "c", s: "é" })];
  const joined = Buffer.concat(frames);
  for (const chunking of [joined.length, 1, 7]) {
    const reader = new FrameReader(1024);
    const out = [];
    for (let at = 0; at < joined.length; at += chunking) out.push(...reader.push(joined.subarray(at, at + chunking)));
    assert.deepEqual(out.map((f) => f.header), [{ t: "a", n: 1 }, { t: "b" }, { t: "c", s: "é" }]);
    assert.deepEqual([...(out[1]!.body ?? [])], [1, 2, 3]);
    assert.equal(out[0]!.body, undefined);
  }
});

test("an oversized length is refused before anything is buffered", () => {
  const reader = new FrameReader(100);
  assert.throws(() => reader.push(new Uint8Array([0, 0, 1, 0])), FrameError);
});

test("a length too small to hold a header length is refused", () => {
  assert.throws(() => new FrameReader(100).push(new Uint8Array([0, 0, 0, 2, 0, 0])), FrameError);
});

test("a header length past the frame end is refused", () => {
  const frame = Buffer.alloc(12);
  frame.writeUInt32BE(8, 0);
  frame.writeUInt32BE(9, 4);
  assert.throws(() => new FrameReader(100).push(frame), /header length/);
});

test("invalid UTF-8 or JSON in a header is refused", () => {
  for (const bad of [Buffer.from([0xff, 0xfe]), Buffer.from("{nope")]) {
    const frame = Buffer.alloc(8 + bad.length);
    frame.writeUInt32BE(4 + bad.length, 0);
    frame.writeUInt32BE(bad.length, 4);
    bad.copy(frame, 8);
    assert.throws(() => new FrameReader(100).push(frame), /not valid UTF-8 JSON/);
  }
});
