import { test } from "node:test";
import assert from "node:assert/strict";
import { acceptHotMessage } from "../../src/protocol/hot-messages.js";
import { carrierMessage } from "../../src/protocol/messages.js";
import { PROTOCOL_LIMITS } from "../../src/protocol/limits.js";

/** The hand check may only say yes where the schema says yes, and must then give the same message. */
function assertAgrees(header: unknown, label: string): boolean {
  const fast = acceptHotMessage(header);
  const parsed = carrierMessage().safeParse(header);
  if (fast !== undefined) {
    assert.ok(parsed.success, `${label}: the hot check accepted a message the schema refuses: ${JSON.stringify(header)}`);
    assert.deepEqual(fast, parsed.data, label);
  }
  return fast !== undefined;
}

const phases = { decode: 1, realm: 2, compile: 0, run: 40.5, encode: 3, settle: 0 };
const logs = [
  { level: "log", message: "hi", time: 0 },
  { level: "error", message: "", time: 12.5 },
];

/** Valid messages of every hot shape, each of which the hot check must take (so the fast path runs). */
const VALID: Record<string, unknown> = {
  ready: { t: "ready" },
  "logs, empty": { t: "logs", id: 1, logs: [] },
  "logs, entries": { t: "logs", id: 7, logs },
  "done, inline number": { t: "done", id: 1, ok: true, as: "inline", v: 0, logs: [], stats: { wallMs: 0.1, cpuMs: 0 } },
  "done, inline string": { t: "done", id: 2, ok: true, as: "inline", v: "x".repeat(100), logs, stats: { wallMs: 1, cpuMs: 1 } },
  "done, inline null": { t: "done", id: 3, ok: true, as: "inline", v: null, logs: [], stats: { wallMs: 0, cpuMs: 0 } },
  "done, inline boolean": { t: "done", id: 3, ok: true, as: "inline", v: false, logs: [], stats: { wallMs: 0, cpuMs: 0 } },
  "done, undefined": { t: "done", id: 4, ok: true, as: "undefined", logs: [], stats: { wallMs: 0, cpuMs: 0 } },
  "done, body, traced": { t: "done", id: Number.MAX_SAFE_INTEGER, ok: true, as: "body", logs: [], stats: { wallMs: 0, cpuMs: 0 }, phases },
  "done, failed": {
    t: "done", id: 5, ok: false, logs, stats: { wallMs: 3, cpuMs: 2 },
    error: { kind: "script", name: "TypeError", message: "x is not a function", stack: "TypeError: …\n    at eval.js:1:1", line: 1, column: 0 },
  },
  "tool call": { t: "call", id: 3, call: 9, cap: "tool", args: { tool: "github.create_issue" } },
  "tool call, longest name": { t: "call", id: Number.MAX_SAFE_INTEGER, call: Number.MAX_SAFE_INTEGER, cap: "tool", args: { tool: "t".repeat(1024) } },
  "progress, plain": { t: "progress", id: 4, from: 0, n: 1000 },
  "progress, empty items and times": { t: "progress", id: 4, from: 1000, n: 3, empty: [1000, 1002], us: [0, 1.5, 20] },
  "progress, end": { t: "progress", id: Number.MAX_SAFE_INTEGER, from: 5, n: 0, end: { cpuMs: 1.25, durations: [[3, 900], [255, 1]] } },
  "progress, end with items": { t: "progress", id: 9, from: 0, n: 1_000_000, empty: [0], end: { cpuMs: 0, durations: [] } },
  "response, whole": { t: "response", id: 3, req: 1, ok: true, status: 200, statusText: "", headers: [["content-type", "text/plain"]], body: true, whole: true },
  "response, streamed": { t: "response", id: 3, req: Number.MAX_SAFE_INTEGER, ok: true, status: 599, statusText: "S".repeat(512), headers: [], body: false },
  "response, many headers": { t: "response", id: 3, req: 2, ok: true, status: 204, statusText: "No Content", headers: Array.from({ length: 256 }, (_, i) => [`x-${i}`, "v".repeat(100)]), body: false },
  "body, data": { t: "body", id: 3, req: 1, op: "data" },
  "body, credit": { t: "body", id: 3, req: 1, op: "credit", bytes: 65536 },
  "body, end": { t: "body", id: 3, req: 1, op: "end" },
  "done, failed, fewest fields, traced": {
    t: "done", id: 6, ok: false, logs: [], stats: { wallMs: 3, cpuMs: 2 }, phases,
    error: { kind: "timeout", name: "N".repeat(PROTOCOL_LIMITS.maxNameText), message: "m".repeat(PROTOCOL_LIMITS.maxErrorText) },
  },
};

test("every valid hot message is taken by the hand check, as the schema gives it", () => {
  for (const [label, message] of Object.entries(VALID)) {
    assert.ok(assertAgrees(structuredClone(message), label), `${label}: not taken by the hot check`);
  }
});

/** Values to put where a field was, chosen around each rule of the schema. */
const ODD_VALUES: unknown[] = [
  undefined, null, true, 0, -0, -1, 1.5, 2 ** 53, Number.MAX_SAFE_INTEGER, NaN, Infinity, -Infinity, "", "x", "0",
  "n".repeat(PROTOCOL_LIMITS.maxNameText + 1), "m".repeat(PROTOCOL_LIMITS.maxErrorText + 1), [], [{}], {}, { t: "ready" },
  "inline", "body", "log", "script", "policy", "ready", "done", "logs", "call", "stream", "tool", "fetch", "t".repeat(1025), { tool: "x" },
  "progress", 1_000_000, 1_000_001, 256, "response", "body", "data", "credit", "abort", 199, 200, 599, 600, 101, "S".repeat(513), [["a", "b", "c"]], [["", "v"]], [["a", 1]], ["ab"], [0, 1], [[1, 2]], [[1, 2, 3]], [[-1, 2]], [[0.5, 1]], Array.from({ length: 257 }, () => [0, 1]), { cpuMs: 0, durations: [] }, [1e-3],
];

/** A small deterministic generator, so a failure names a case that can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Every object inside `root` (itself included), with a way to reach it. */
function objectsIn(root: unknown): Array<Record<string, unknown> | unknown[]> {
  const found: Array<Record<string, unknown> | unknown[]> = [];
  const visit = (value: unknown) => {
    if (typeof value !== "object" || value === null) return;
    found.push(value as Record<string, unknown>);
    for (const child of Object.values(value)) visit(child);
  };
  visit(root);
  return found;
}

const EXTRA_KEYS = ["extra", "__proto__", "constructor", "t", "id", "ok", "as", "v", "phases", "level", "kind", "stack", "line", "0", "length", "call", "cap", "args", "tool", "from", "n", "empty", "us", "end", "cpuMs", "durations", "missing", "errors", "logs", "2"];

/** One to three changes anywhere in the message: a field dropped, replaced or added. */
function mutate(message: unknown, next: () => number): unknown {
  const copy = structuredClone(message);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  for (let changes = 1 + Math.floor(next() * 3); changes > 0; changes--) {
    const target = pick(objectsIn(copy)) as Record<string, unknown>;
    const keys = Object.keys(target);
    const action = next();
    if (action < 0.3 && keys.length > 0) delete target[pick(keys)];
    else if (action < 0.8 && keys.length > 0) target[pick(keys)] = structuredClone(pick(ODD_VALUES));
    // Arrays from JSON.parse have only elements.
    else if (Array.isArray(target)) target.push(structuredClone(pick(ODD_VALUES)));
    else Object.defineProperty(target, pick(EXTRA_KEYS), { value: structuredClone(pick(ODD_VALUES)), enumerable: true, configurable: true, writable: true });
  }
  return copy;
}

test("on thousands of mutated messages the hand check never accepts what the schema refuses", () => {
  const next = random(20261203);
  const valid = Object.values(VALID);
  let taken = 0;
  let refused = 0;
  for (let i = 0; i < 20_000; i++) {
    const message = mutate(valid[i % valid.length], next);
    if (assertAgrees(message, `case ${i}`)) taken++;
    else refused++;
  }
  // Both outcomes must occur, or the mutations are not testing the boundary.
  assert.ok(taken > 100 && refused > 10_000, `taken ${taken}, refused ${refused}`);
});

test("headers as JSON.parse makes them: an own __proto__ key and non-objects are refused by both", () => {
  for (const text of ['{"t":"ready","__proto__":{}}', '{"t":"logs","id":1,"logs":[],"__proto__":null}', "[]", "null", '"ready"', "1", '{"t":"done"}']) {
    const header: unknown = JSON.parse(text);
    assert.equal(acceptHotMessage(header), undefined, text);
    assert.equal(carrierMessage().safeParse(header).success, false, text);
  }
});

test("stream messages and fetch calls are left to the schema", () => {
  assert.equal(acceptHotMessage({ t: "stream", id: 1, call: 1, op: "end" }), undefined);
  assert.ok(carrierMessage().safeParse({ t: "stream", id: 1, call: 1, op: "end" }).success);
  const fetchCall = { t: "call", id: 1, call: 2, cap: "fetch", args: { url: "https://example.com/", method: "GET", headers: [], body: "none", redirect: "follow" } };
  assert.equal(acceptHotMessage(fetchCall), undefined);
  assert.ok(carrierMessage().safeParse(fetchCall).success);
});
