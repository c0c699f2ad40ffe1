/**
 * A carrier lying about a transform's batch (see src/carrier/batch.ts): the host checks each
 * progress report whole before it believes any of it, kills a carrier that lies, and the batch
 * goes on, on a real carrier, to every message's real result.
 */
import { test, describe, before, afterEach } from "node:test";
import assert from "node:assert/strict";
import { Transform, CarrierCrashedError, configurePool } from "../../src/index.js";
import { fakeCarrier } from "./fake-carrier.js";

/** The fake answers the function's compile (an eval that keeps its value) as a real carrier would. */
const KEEP = 'if (message.t === "eval") return send({ t: "done", id: message.id, ok: true, as: "undefined", logs: [], stats: { wallMs: 0, cpuMs: 0 } });';
const MESSAGES = [{ n: 1 }, { n: 2 }, { n: 3 }];

before(() => configurePool({ size: 0 }));
afterEach(() => {
  delete process.env.PADDOCK_DENO;
});

/** A transform whose first carrier is a fake that answers batches with `onBatch`; it must not be believed. */
async function expectDisbelieved(onBatch: string, replacedDuringBatch = true): Promise<void> {
  process.env.PADDOCK_DENO = fakeCarrier(KEEP + onBatch);
  const transform = await Transform.create({ code: "export default (m) => m.n * 10", timeoutMsPerMessage: 200 });
  delete process.env.PADDOCK_DENO;
  try {
    const results = await transform.callMany(MESSAGES);
    assert.deepEqual(results, MESSAGES.map((m, index) => ({ ok: true, value: m.n * 10, index, version: 1 })));
    if (replacedDuringBatch) assert.ok(transform.stats().carrierRestarts >= 1, "the lying carrier was replaced");
    // Whatever it said afterwards, the transform goes on with real carriers.
    assert.deepEqual(await transform.call({ n: 7 }), 70);
  } finally {
    await transform.close();
  }
}

describe("a carrier lying about a batch is killed, and the batch goes on to real results", () => {
  const body = (lines: string) => `Buffer.from(${JSON.stringify(lines)})`;
  test("a report that starts past the items done", () => expectDisbelieved(`send({ t: "progress", id: message.id, from: 1, n: 2 }, ${body("1\n2")});`));
  test("a report of more items than the batch holds", () => expectDisbelieved(`send({ t: "progress", id: message.id, from: 0, n: 4 }, ${body("1\n2\n3\n4")});`));
  test("a report whose body holds fewer results than it says", () => expectDisbelieved(`send({ t: "progress", id: message.id, from: 0, n: 3 }, ${body("1\n2")});`));
  test("a result missing without an error or empty mark", () => expectDisbelieved(`send({ t: "progress", id: message.id, from: 0, n: 3 }, ${body("1\n\n3")});`));
  test("an error for an item that has a result", () =>
    expectDisbelieved(`send({ t: "progress", id: message.id, from: 0, n: 3, errors: [{ i: 1, kind: "script", name: "Error", message: "x" }] }, ${body("1\n2\n3")});`));
  test("an error for an item outside the report", () =>
    expectDisbelieved(`send({ t: "progress", id: message.id, from: 0, n: 1, errors: [{ i: 2, kind: "script", name: "Error", message: "x" }] });`));
  test("the same item marked twice", () => expectDisbelieved(`send({ t: "progress", id: message.id, from: 0, n: 2, empty: [0, 0] }, ${body("\n")});`));
  test("an end before every item was reported", () => expectDisbelieved(`send({ t: "progress", id: message.id, from: 0, n: 1, end: { cpuMs: 0, durations: [] } }, ${body("1")});`));
  test("console output over a message's limit", () =>
    expectDisbelieved(`send({ t: "progress", id: message.id, from: 0, n: 1, logs: [{ i: 0, level: "log", message: "x".repeat(100000) }] }, ${body("1")});`));
  test("item times that do not match the items", () => expectDisbelieved(`send({ t: "progress", id: message.id, from: 0, n: 1, us: [1, 2] }, ${body("1")});`));
  test("a batch answered with an eval's done", () =>
    expectDisbelieved(`send({ t: "done", id: message.id, ok: true, as: "inline", v: 1, logs: [], stats: { wallMs: 0, cpuMs: 0 } });`));
  test("empty reports, to keep the host waiting", () => expectDisbelieved(`setInterval(() => send({ t: "progress", id: message.id, from: 0, n: 0 }), 20);`));
  test("a result over maxResultBytes", () => expectDisbelieved(`send({ t: "progress", id: message.id, from: 0, n: 1 }, Buffer.from(JSON.stringify("x".repeat(2 * 1024 * 1024))));`));
  test("a batch never answered: the host stops waiting", () => expectDisbelieved(""));
  test("a whole batch reported, then reported again", () =>
    expectDisbelieved(`for (let k = 0; k < 2; k++) send({ t: "progress", id: message.id, from: 0, n: 3, end: { cpuMs: 0, durations: [] } }, ${body("10\n20\n30")});`, false));
});

test("a progress report for a compile (an eval) kills the carrier: the transform is not created", async () => {
  process.env.PADDOCK_DENO = fakeCarrier('send({ t: "progress", id: message.id, from: 0, n: 0, end: { cpuMs: 0, durations: [] } });');
  const error = await Transform.create({ code: "export default (m) => m" }).catch((e: unknown) => e);
  delete process.env.PADDOCK_DENO;
  assert.ok(error instanceof CarrierCrashedError, String(error));
  assert.match(error.message, /progress report for an eval/);
});

test("a result that is not JSON is that message's failure, never handed on", async () => {
  process.env.PADDOCK_DENO = fakeCarrier(KEEP + `send({ t: "progress", id: message.id, from: 0, n: 2, end: { cpuMs: 0, durations: [] } }, Buffer.from('{"a":1}} trailing\\n2'));`);
  const transform = await Transform.create({ code: "export default (m) => m" });
  delete process.env.PADDOCK_DENO;
  try {
    const results = await transform.callManyJson(["1", "2"]);
    assert.equal(results[0]!.ok, false);
    assert.deepEqual(results[1], { ok: true, json: "2", index: 1, version: 1 });
  } finally {
    await transform.close();
  }
});
