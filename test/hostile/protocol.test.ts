/**
 * Category 4: a carrier (or code that took over one) lying to the host. Each fake carrier breaks
 * the protocol in one way; the host must kill it, fail only that sandbox's evals with a typed
 * error, and keep serving everyone else. Afterwards the sandbox gets a real carrier again.
 */
import { test, describe, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { Sandbox, CarrierCrashedError, TimeoutError, configurePool, SandboxError, type SandboxOptions } from "../../src/index.js";
import { fakeCarrier } from "./fake-carrier.js";
import { hostRssMb } from "../helpers.js";
import { LONG_TIMEOUT_MS, SLACK_MS } from "../timing.js";

const FETCH_ARGS = '{ url: "http://127.0.0.1/", method: "GET", headers: [], body: "none", redirect: "follow" }';
const VALID_DONE = 'send({ t: "done", id: message.id, ok: true, as: "inline", v: 2, logs: [], stats: { wallMs: 0, cpuMs: 0 } });';

let bystander: Sandbox;

before(async () => {
  configurePool({ size: 0 });
  bystander = await Sandbox.create();
});
after(() => bystander.close());
afterEach(() => {
  delete process.env.PADDOCK_DENO;
});

/**
 * Creates a sandbox on a fake carrier, runs one eval, and returns its error. Unless a test is about
 * the time limit, the eval gets far more time than a lie takes to arrive on a busy machine.
 */
async function lyingEval(onEval: string, options: Pick<SandboxOptions, "timeoutMs" | "net" | "tools" | "maxToolInputBytes"> = {}): Promise<{ error: SandboxError; sandbox: Sandbox; evalMs: number }> {
  process.env.PADDOCK_DENO = fakeCarrier(onEval);
  const sandbox = await Sandbox.create({ timeoutMs: LONG_TIMEOUT_MS, ...options });
  // The fake is running. Any carrier started from now on is real: the one that replaces the fake
  // once it is killed may start at once, before the eval's failure reaches this function.
  delete process.env.PADDOCK_DENO;
  const started = performance.now();
  const result = await sandbox.run("1 + 1");
  const evalMs = performance.now() - started;
  assert.equal(result.ok, false, "a lying carrier's answer must not be taken");
  if (result.ok) throw new Error("unreachable");
  return { error: result.error, sandbox, evalMs };
}

async function expectKilled(onEval: string, pattern: RegExp, options: Pick<SandboxOptions, "net" | "tools" | "maxToolInputBytes"> = {}): Promise<void> {
  const { error, sandbox } = await lyingEval(onEval, options);
  assert.ok(error instanceof CarrierCrashedError, `expected CarrierCrashedError, got ${error.name}: ${error.message}`);
  assert.match(error.message, pattern);
  // The sandbox recovers with a fresh (real) carrier; the bystander never noticed. The eval's limit
  // also covers the cold start of that carrier (the pool is off here), slow on a busy machine.
  delete process.env.PADDOCK_DENO;
  assert.equal(await sandbox.eval("1 + 1", { timeoutMs: LONG_TIMEOUT_MS }), 2);
  assert.equal(await bystander.eval("40 + 2"), 42);
  await sandbox.close();
}

describe("a carrier that lies to the host is killed, and only its sandbox notices", () => {
  test("a frame announcing 4 GB", () => expectKilled("raw(Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]));", /frame of 4294967295 bytes/));

  test("a header that is not JSON", () =>
    expectKilled("const junk = Buffer.from('{not json'); const f = Buffer.alloc(8 + junk.length); f.writeUInt32BE(4 + junk.length, 0); f.writeUInt32BE(junk.length, 4); junk.copy(f, 8); raw(f);", /not valid UTF-8 JSON/));

  test("a header length larger than its frame", () =>
    expectKilled("const f = Buffer.alloc(12); f.writeUInt32BE(8, 0); f.writeUInt32BE(1000, 4); raw(f);", /header length/));

  test("an answer for an eval it was not given", () =>
    expectKilled('send({ t: "done", id: message.id + 1000, ok: true, as: "undefined", logs: [], stats: { wallMs: 0, cpuMs: 0 } });', /not running/));

  test("a message with an unknown type", () => expectKilled('send({ t: "exec", cmd: "rm -rf /" });', /malformed message/));

  test("a done message with extra fields", () =>
    expectKilled('send({ t: "done", id: message.id, ok: true, as: "inline", v: 1, logs: [], stats: { wallMs: 0, cpuMs: 0 }, admin: true });', /malformed message/));

  test("a done message with a wrongly typed field", () =>
    expectKilled('send({ t: "done", id: message.id, ok: true, as: "inline", v: 1, logs: "lots", stats: { wallMs: 0, cpuMs: 0 } });', /malformed message/));

  test("a done message whose phases are not durations", () =>
    expectKilled('send({ t: "done", id: message.id, ok: true, as: "inline", v: 2, logs: [], stats: { wallMs: 0, cpuMs: 0 }, phases: { decode: -1, realm: 0, compile: 0, run: 0, encode: 0, settle: 0 } });', /malformed message/));

  test("a result body that is not a V8 value", () =>
    expectKilled('send({ t: "done", id: message.id, ok: true, as: "body", logs: [], stats: { wallMs: 0, cpuMs: 0 } }, Buffer.from([0xff, 0x0f, 0x5c, 0xff, 0xff, 0xff, 0xff, 0x0f]));', /undecodable result/));

  test("a body result without its body", () =>
    expectKilled('send({ t: "done", id: message.id, ok: true, as: "body", logs: [], stats: { wallMs: 0, cpuMs: 0 } });', /without its body/));

  test("more console output than the eval's limit", () =>
    expectKilled('send({ t: "logs", id: message.id, logs: [{ level: "log", message: "x".repeat(5 * 1024 * 1024), time: 0 }] });', /console output/));

  test("a second ready message", () => expectKilled('send({ t: "ready" });', /second ready/));

  test("a capability call for an eval it was not given", () =>
    expectKilled(`send({ t: "call", id: message.id + 7, call: 1, cap: "fetch", args: ${FETCH_ARGS} });`, /not running/));

  test("a capability call that reuses a call id", () =>
    expectKilled(`send({ t: "call", id: message.id, call: 5, cap: "fetch", args: ${FETCH_ARGS} }); send({ t: "call", id: message.id, call: 5, cap: "fetch", args: ${FETCH_ARGS} });`, /reuses an id/));

  test("a stream message for a call that was never made", () =>
    expectKilled('send({ t: "stream", id: message.id, call: 99, op: "credit", bytes: 1000000 });', /never made/));

  test("stream data without a body", () =>
    expectKilled(`send({ t: "call", id: message.id, call: 1, cap: "fetch", args: ${FETCH_ARGS} }); send({ t: "stream", id: message.id, call: 1, op: "data" });`, /without a body/));

  test("request body data beyond the credit the host gave", () =>
    expectKilled(
      `send({ t: "call", id: message.id, call: 1, cap: "fetch", args: { url: "http://127.0.0.1:1/", method: "POST", headers: [], body: "stream", redirect: "follow" } }); send({ t: "stream", id: message.id, call: 1, op: "data" }, Buffer.alloc(1000));`,
      /beyond the credit/,
      { net: { allow: ["127.0.0.1:1"], allowPrivate: ["127.0.0.1"] } },
    ));

  test("a capability call with arguments the schema refuses", () =>
    expectKilled('send({ t: "call", id: message.id, call: 1, cap: "fetch", args: { url: "http://127.0.0.1/", method: "GET" } });', /malformed message/));

  test("a file call with a path that is not normal (a carrier trying to climb out of the sandbox's root)", () =>
    expectKilled('send({ t: "call", id: message.id, call: 1, cap: "files", args: { op: "read", path: "/a/../../etc/passwd" } });', /malformed message/));

  test("an inline file write whose body is not the size it announced", () =>
    expectKilled('send({ t: "call", id: message.id, call: 1, cap: "files", args: { op: "write", path: "/x", mode: "replace", size: 1, body: "inline" } }, Buffer.alloc(100));', /inline write of 100 bytes/));

  test("a streamed file write beyond the credit the host gave, or beyond its announced size", async () => {
    await expectKilled(
      'send({ t: "call", id: message.id, call: 1, cap: "files", args: { op: "write", path: "/x", mode: "replace", size: 10485760, body: "stream" } }); send({ t: "stream", id: message.id, call: 1, op: "data" }, Buffer.alloc(5 * 1024 * 1024));',
      /more bytes than the host allowed/,
    );
    await expectKilled(
      'send({ t: "call", id: message.id, call: 1, cap: "files", args: { op: "write", path: "/x", mode: "replace", size: 10, body: "stream" } }); send({ t: "stream", id: message.id, call: 1, op: "data" }, Buffer.alloc(20));',
      /more bytes than announced/,
    );
  });

  const echoTool = { tools: { echo: { execute: (input: unknown) => input } } };

  test("a tool call in a sandbox without tools", () =>
    expectKilled('send({ t: "call", id: message.id, call: 1, cap: "tool", args: { tool: "echo" } });', /tool call in a sandbox without tools/));

  test("a call of a tool the sandbox does not have (Object.prototype names included)", async () => {
    await expectKilled('send({ t: "call", id: message.id, call: 1, cap: "tool", args: { tool: "shell" } });', /"shell", which is not one of the sandbox's tools/, echoTool);
    await expectKilled('send({ t: "call", id: message.id, call: 1, cap: "tool", args: { tool: "__proto__" } });', /"__proto__", which is not one of the sandbox's tools/, echoTool);
  });

  test("a tool input that is not V8 serialization", () =>
    expectKilled('send({ t: "call", id: message.id, call: 1, cap: "tool", args: { tool: "echo" } }, Buffer.from("not a structured clone"));', /undecodable input/, echoTool));

  test("a tool input larger than the limit the carrier was told", () =>
    expectKilled('send({ t: "call", id: message.id, call: 1, cap: "tool", args: { tool: "echo" } }, Buffer.alloc(5000));', /tool input of 5000 bytes/, { ...echoTool, maxToolInputBytes: 1024 }));

  test("exiting in the middle of an eval", () => expectKilled("process.exit(3);", /exited unexpectedly \(code 3\)/));

  test("a carrier that never answers is killed at the deadline", async () => {
    // Timed from the eval, not from the fake carrier's start (a node process: slow on a busy machine).
    const { error, sandbox, evalMs } = await lyingEval("/* silence */", { timeoutMs: 300 });
    assert.ok(error instanceof TimeoutError, `expected TimeoutError, got ${error.name}`);
    assert.equal((error as TimeoutError).carrierRestarted, true);
    assert.ok(evalMs < 300 + SLACK_MS, `the host must not wait much past the limit (${Math.round(evalMs)} ms)`);
    delete process.env.PADDOCK_DENO;
    assert.equal(await sandbox.eval("1 + 1", { timeoutMs: LONG_TIMEOUT_MS }), 2);
    await sandbox.close();
  });

  test("garbage before ready fails Sandbox.create with a typed error", async () => {
    process.env.PADDOCK_DENO = fakeCarrier("", "raw(Buffer.from('hello, host\\n'));");
    await assert.rejects(Sandbox.create(), CarrierCrashedError);
  });

  test("a carrier that dies before ready fails Sandbox.create with a typed error", async () => {
    process.env.PADDOCK_DENO = fakeCarrier("", "process.exit(1);");
    await assert.rejects(Sandbox.create(), CarrierCrashedError);
  });

  test("an honest fake is believed (the harness itself works)", async () => {
    process.env.PADDOCK_DENO = fakeCarrier(VALID_DONE);
    const sandbox = await Sandbox.create();
    assert.equal(await sandbox.eval("anything"), 2);
    await sandbox.close();
  });

  test("a flood of lying carriers does not grow the host", async () => {
    const before = hostRssMb();
    for (let i = 0; i < 10; i++) {
      const { error, sandbox } = await lyingEval("raw(Buffer.from([0x7f, 0xff, 0xff, 0xff]));");
      assert.ok(error instanceof CarrierCrashedError);
      await sandbox.close();
    }
    assert.ok(hostRssMb() - before < 100, "the host's memory stays bounded");
  });
});
