/**
 * Integration: MessageChannel and MessagePort as user code sees them in a real carrier
 * (src/carrier/web/extras.ts, installed in every realm). Messages are delivered by tasks of the
 * eval that posted them. Also QuotaExceededError, which is Deno's own, lent to the realm through
 * the membrane (src/carrier/web/bindings.ts, membrane.ts): the realm's must behave as plain Deno's
 * does (the expectations below were read off `deno run` 2.9.6).
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Sandbox, ScriptError, type RunResult } from "../../src/index.js";
import { LONG_TIMEOUT_MS } from "../timing.js";

/** A sandbox shared by the tests of one describe block (none of them tests a time limit). */
function sharedSandbox(options: Parameters<typeof Sandbox.create>[0] = {}): () => Sandbox {
  let sandbox: Sandbox | undefined;
  before(async () => {
    sandbox = await Sandbox.create({ timeoutMs: LONG_TIMEOUT_MS, ...options });
  });
  after(async () => {
    await sandbox?.close();
  });
  return () => {
    if (!sandbox) throw new Error("the shared sandbox was not created");
    return sandbox;
  };
}

/** How a failed eval ended: [the host error's class name, the sandbox error's name, the message]. */
function failureOf(result: RunResult, code = ""): [string, string, string] {
  assert.equal(result.ok, false, `the eval should have failed: ${code}`);
  if (result.ok) throw new Error("unreachable");
  assert.ok(result.error instanceof ScriptError, `${result.error.name}: ${result.error.message}`);
  return [result.error.name, result.error.errorName, result.error.message];
}

/** Code that waits until `condition` (an expression) holds, a few ms at a time. */
const until = (condition: string): string => `while (!(${condition})) await new Promise((r) => setTimeout(r, 2));`;

describe("MessageChannel and MessagePort", () => {
  const sandbox = sharedSandbox();
  const run = <T = unknown>(code: string): Promise<T> => sandbox().eval<T>(code);

  test("the interfaces have WebIDL's shape", async () => {
    assert.deepEqual(
      await run(`
        // Read before anything made the globals: lazy globals must still read as data properties.
        const first = ["MessageChannel", "MessagePort"].map((name) => {
          const d = Object.getOwnPropertyDescriptor(globalThis, name);
          return [typeof d.value, "get" in d, d.writable, d.enumerable, d.configurable, d.value === globalThis[name]];
        });
        const c = new MessageChannel();
        const d = Object.getOwnPropertyDescriptor(globalThis, "MessagePort");
        const illegal = (() => { try { new MessagePort(); return "constructed" } catch (e) { return [e instanceof TypeError, e.message] } })();
        [[MessageChannel.name, MessageChannel.length, MessagePort.name, MessagePort.length], [d.enumerable, d.writable, d.configurable], illegal,
          Object.keys(MessagePort.prototype), Object.keys(MessageChannel.prototype), MessagePort.prototype.postMessage.length,
          c.port1 === c.port1, c.port1 instanceof MessagePort, c.port1 instanceof EventTarget, String(c.port2), String(c), first]`),
      [
        ["MessageChannel", 0, "MessagePort", 0], [false, true, true], [true, "Illegal constructor"],
        ["postMessage", "start", "close", "onmessage", "onmessageerror"], ["port1", "port2"], 1,
        true, true, true, "[object MessagePort]", "[object MessageChannel]",
        [["function", false, true, false, true, true], ["function", false, true, false, true, true]],
      ],
    );
  });

  test("a message arrives as a MessageEvent at the other port, with a copy of the data", async () => {
    assert.deepEqual(
      await run(`
        const { port1, port2 } = new MessageChannel();
        const sent = { list: [1, { deep: true }], when: new Date(5), bytes: new Uint8Array([7, 8]) };
        const event = await new Promise((resolve) => { port2.onmessage = resolve; port1.postMessage(sent); sent.list.push("later"); });
        [event instanceof MessageEvent, event instanceof Event, event.type, event.target === port2, event.data !== sent, event.data.list,
          event.data.when instanceof Date, event.data.bytes instanceof Uint8Array, [...event.data.bytes], event.ports.length, event.origin, event.source]`),
      [true, true, "message", true, true, [1, { deep: true }], true, true, [7, 8], 0, "", null],
    );
  });

  test("messages wait until the port is started; addEventListener does not start it", async () => {
    assert.deepEqual(
      await run(`
        const { port1, port2 } = new MessageChannel();
        const got = [];
        port2.addEventListener("message", (e) => got.push(e.data));
        port1.postMessage("a");
        port1.postMessage("b");
        await new Promise((r) => setTimeout(r, 20));
        const before = [...got];
        port2.start();
        port1.postMessage("c");
        ${until("got.length === 3")}
        [before, got]`),
      [[], ["a", "b", "c"]],
    );
  });

  test("messages arrive in order, each in a task of its own, in both directions", async () => {
    assert.deepEqual(
      await run(`
        const { port1, port2 } = new MessageChannel();
        const log = [];
        port2.onmessage = (e) => {
          log.push("2:" + e.data);
          queueMicrotask(() => log.push("micro"));
          if (e.data === 2) port2.postMessage("back");
        };
        port1.onmessage = (e) => log.push("1:" + e.data);
        for (const n of [0, 1, 2]) port1.postMessage(n);
        ${until("log.includes('1:back')")}
        log`),
      ["2:0", "micro", "2:1", "micro", "2:2", "micro", "1:back"],
    );
  });

  test("a port used as a scheduler (each handler posts the next message) runs a thousand rounds", async () => {
    assert.equal(
      await run(`
        const { port1, port2 } = new MessageChannel();
        let rounds = 0;
        await new Promise((resolve) => {
          port2.onmessage = () => (++rounds === 1000 ? resolve() : port1.postMessage(null));
          port1.postMessage(null);
        });
        rounds`),
      1000,
    );
  });

  test("transfer lists move buffers; what cannot be cloned or transferred throws a DataCloneError at once", async () => {
    assert.deepEqual(
      await run(`
        const { port1, port2 } = new MessageChannel();
        const got = [];
        port2.onmessage = (e) => got.push(e.data.byteLength);
        const a = new ArrayBuffer(4), b = new ArrayBuffer(2);
        port1.postMessage(a, [a]);
        port1.postMessage(b, { transfer: [b] });
        const other = new MessageChannel();
        const errors = [() => port1.postMessage(() => 1), () => port1.postMessage(1, [port1]), () => port1.postMessage(1, [other.port1]),
          () => port1.postMessage(), () => port1.postMessage(1, 5), () => port1.postMessage(1, [5])]
          .map((f) => { try { f(); return "no error" } catch (e) { return [e.name, e instanceof DOMException || e instanceof TypeError] } });
        ${until("got.length === 2")}
        [a.byteLength, b.byteLength, got, errors]`),
      [0, 0, [4, 2], [
        ["DataCloneError", true], ["DataCloneError", true], ["DataCloneError", true], ["TypeError", true], ["TypeError", true], ["TypeError", true],
      ]],
    );
  });

  test("close(): a closed port neither sends nor receives; what was sent before the sender closed arrives", async () => {
    assert.deepEqual(
      await run(`
        const got = [];
        const a = new MessageChannel(), b = new MessageChannel(), c = new MessageChannel();
        a.port2.onmessage = (e) => got.push("a:" + e.data);
        a.port2.close();
        a.port1.postMessage("to a closed port");
        b.port2.onmessage = (e) => got.push("b:" + e.data);
        b.port1.close();
        b.port1.postMessage("from a closed port");
        c.port2.onmessage = (e) => got.push("c:" + e.data);
        c.port1.postMessage("sent before closing");
        c.port1.close();
        ${until("got.length > 0")}
        await new Promise((r) => setTimeout(r, 20));
        got`),
      ["c:sent before closing"],
    );
  });

  test("a thrown handler error is reported like any listener's: uncancelled it ends the eval, cancelled the port goes on", async () => {
    const code = (cancel: boolean): string => `
      const { port1, port2 } = new MessageChannel();
      const got = [], reported = [];
      addEventListener("error", (e) => { reported.push([e.error instanceof Error, e.error.message]); ${cancel ? "e.preventDefault();" : ""} });
      port2.onmessage = (e) => { got.push(e.data); if (e.data === 1) throw new Error("handler failed") };
      port1.postMessage(1);
      port1.postMessage(2);
      ${until("got.length === 2")}
      [got, reported]`;
    assert.deepEqual(failureOf(await sandbox().run(code(false))), ["ScriptError", "Error", "Error: handler failed"]);
    assert.deepEqual(await run(code(true)), [[1, 2], [[true, "handler failed"]]]);
  });
});

describe("QuotaExceededError (Deno's, through the membrane)", () => {
  const sandbox = sharedSandbox();
  const run = <T = unknown>(code: string): Promise<T> => sandbox().eval<T>(code);

  test("the interface has WebIDL's shape: a global data property, DOMException's subclass, quota and requested getters", async () => {
    assert.deepEqual(
      await run(`
        const describe = (o, k) => { const d = Object.getOwnPropertyDescriptor(o, k); return d && [typeof d.value, !!d.writable, d.enumerable, d.configurable, typeof d.get, typeof d.set]; };
        // Read first: the lazy global must read as the data property it becomes.
        const global = describe(globalThis, "QuotaExceededError");
        const Q = QuotaExceededError, P = Q.prototype;
        const getter = (k) => { const d = Object.getOwnPropertyDescriptor(P, k); return [typeof d.get, d.set, d.enumerable, d.configurable, d.get.name, d.get.length] };
        const illegal = (f) => { try { f(); return "no error" } catch (e) { return [e instanceof TypeError, e.message] } };
        [global, Q.name, Q.length, describe(Q, "prototype"), describe(P, "constructor"), Object.prototype.toString.call(P),
          Object.keys(P), Object.getOwnPropertyNames(Q).sort(), getter("quota"), getter("requested"),
          [Object.getPrototypeOf(Q) === DOMException, Object.getPrototypeOf(P) === DOMException.prototype, P.constructor === Q,
            Object.getPrototypeOf(DOMException.prototype) === Error.prototype],
          illegal(() => P.quota), illegal(() => Object.getOwnPropertyDescriptor(P, "requested").get.call(new DOMException("x", "QuotaExceededError"))),
          illegal(() => Object.getOwnPropertyDescriptor(P, "quota").get.call({})), illegal(() => QuotaExceededError("m"))[0]]`),
      [
        ["function", true, false, true, "undefined", "undefined"], "QuotaExceededError", 0, ["object", false, false, false, "undefined", "undefined"],
        ["function", true, false, true, "undefined", "undefined"], "[object QuotaExceededError]",
        ["quota", "requested"], ["length", "name", "prototype"], ["function", undefined, true, true, "get quota", 0], ["function", undefined, true, true, "get requested", 0],
        [true, true, true, true],
        [true, "Illegal invocation"], [true, "Illegal invocation"], [true, "Illegal invocation"], true,
      ],
    );
  });

  test("an instance is a DOMException and an Error, with its name, code 22, message, quota and requested", async () => {
    assert.deepEqual(
      await run(`
        const e = new QuotaExceededError("m", { quota: 5, requested: 6 });
        const plain = new QuotaExceededError();
        const named = new DOMException("x", "QuotaExceededError");
        [[e.name, e.message, e.code, e.quota, e.requested], [e instanceof QuotaExceededError, e instanceof DOMException, e instanceof Error],
          [String(e), Object.prototype.toString.call(e), Object.keys(e), typeof e.stack, e.stack.split("\\n")[0]],
          [plain.name, plain.message, plain.code, plain.quota, plain.requested],
          // A DOMException named QuotaExceededError has the code, but is no QuotaExceededError.
          [named.code, named instanceof QuotaExceededError, "quota" in named],
          [e.code === DOMException.QUOTA_EXCEEDED_ERR, e.QUOTA_EXCEEDED_ERR]]`),
      [
        ["QuotaExceededError", "m", 22, 5, 6], [true, true, true],
        ["QuotaExceededError: m", "[object QuotaExceededError]", [], "string", "QuotaExceededError: m"],
        ["QuotaExceededError", "", 22, null, null],
        [22, false, false],
        [true, 22],
      ],
    );
  });

  test("it can be subclassed", async () => {
    assert.deepEqual(
      await run(`
        class Sub extends QuotaExceededError {
          constructor(requested) { super("sub", { quota: 1, requested }); this.extra = "own"; }
          get over() { return this.requested - this.quota; }
        }
        class Bare extends QuotaExceededError {}
        const s = new Sub(4), b = new Bare("bare", { requested: 2 });
        [[s instanceof Sub, s instanceof QuotaExceededError, s instanceof DOMException, s instanceof Error, Object.getPrototypeOf(s) === Sub.prototype],
          [s.name, s.message, s.code, s.quota, s.requested, s.over, s.extra, Object.keys(s), Object.prototype.toString.call(s)],
          [b instanceof Bare, b.message, b.quota, b.requested]]`),
      [
        [true, true, true, true, true],
        ["QuotaExceededError", "sub", 22, 1, 4, 3, "own", ["extra"], "[object QuotaExceededError]"],
        [true, "bare", null, 2],
      ],
    );
  });

  test("its arguments are converted and checked as plain Deno's are", async () => {
    // What `deno run` answers for each. Deno is laxer than the IDL (no RangeError for quota >
    // requested; NaN and Infinity kept rather than a TypeError; non-object options ignored rather
    // than a TypeError; a member present but undefined converted rather than skipped); the realm's
    // must answer the same, errors' messages included.
    const cases: Array<[string, unknown]> = [
      [`new Q("m", { quota: -1 })`, ["RangeError", "Failed to construct 'QuotaExceededError': quota must not be negative"]],
      [`new Q("m", { requested: -0.5 })`, ["RangeError", "Failed to construct 'QuotaExceededError': requested must not be negative"]],
      [`new Q("m", { requested: -Infinity })`, ["RangeError", "Failed to construct 'QuotaExceededError': requested must not be negative"]],
      [`new Q("m", { quota: 1n })`, ["TypeError", "Cannot convert a BigInt value to a number"]],
      [`new Q(Symbol("m"))`, ["TypeError", "Cannot convert a Symbol value to a string"]],
      [`new Q("m", { quota: 2, requested: 1 })`, ["made", "m", 2, 1]],
      [`new Q("m", { quota: 3, requested: 3 })`, ["made", "m", 3, 3]],
      [`new Q("m", { quota: 1.5, requested: 2.5 })`, ["made", "m", 1.5, 2.5]],
      [`new Q("m", { quota: NaN })`, ["made", "m", NaN, null]],
      [`new Q("m", { quota: Infinity })`, ["made", "m", Infinity, null]],
      [`new Q("m", { requested: Infinity })`, ["made", "m", null, Infinity]],
      [`new Q("m", { quota: "x" })`, ["made", "m", NaN, null]],
      [`new Q("m", { quota: undefined, requested: null })`, ["made", "m", NaN, 0]],
      [`new Q("m", 5)`, ["made", "m", null, null]],
      [`new Q("m", "x")`, ["made", "m", null, null]],
      [`new Q(undefined, null)`, ["made", "", null, null]],
      [`new Q("m", { requested: 0 })`, ["made", "m", null, 0]],
      [`new Q(7, { quota: "5", requested: { valueOf: () => 6 } })`, ["made", "7", 5, 6]],
      [`new Q("m", { quota: -0 })`, ["made", "m", "-0", null]],
    ];
    const results = await run<unknown[]>(`
      const Q = QuotaExceededError;
      const show = (v) => (Object.is(v, -0) ? "-0" : v);
      const attempt = (f) => { try { const e = f(); return ["made", e.message, show(e.quota), show(e.requested)] } catch (e) { return [e.constructor.name, e.message] } };
      [${cases.map(([code]) => `attempt(() => ${code})`).join(",\n       ")}]`);
    assert.deepEqual(results.map((result, i) => [cases[i]![0], result]), cases);
    // The message is converted first, then the options' members, in dictionary order.
    assert.deepEqual(
      await run(`
        const order = [];
        new QuotaExceededError({ toString() { order.push("message"); return "" } },
          { get requested() { order.push("requested"); return 1 }, get quota() { order.push("quota"); return 2 } });
        order`),
      ["message", "quota", "requested"],
    );
  });

  test("structuredClone and postMessage copy it as Deno does: a DOMException of that name and message", async () => {
    // (Deno's clone is a plain DOMException: quota and requested are not kept.)
    assert.deepEqual(
      await run(`
        const e = new QuotaExceededError("posted", { quota: 1, requested: 2 });
        const look = (c) => [c !== e, c instanceof DOMException, c instanceof QuotaExceededError, c.name, c.message, c.code];
        const { port1, port2 } = new MessageChannel();
        const got = await new Promise((resolve) => { port2.onmessage = (m) => resolve(m.data); port1.postMessage(e); });
        [look(structuredClone(e)), look(got)]`),
      [
        [true, true, false, "QuotaExceededError", "posted", 22],
        [true, true, false, "QuotaExceededError", "posted", 22],
      ],
    );
  });

  test("thrown and not caught, it fails the eval as a DOMException of that name does", async () => {
    const failure = async (code: string): Promise<unknown> => failureOf(await sandbox().run(code), code);
    const expected = ["ScriptError", "QuotaExceededError", "QuotaExceededError: over the quota"];
    assert.deepEqual(await failure(`throw new DOMException("over the quota", "QuotaExceededError")`), expected);
    assert.deepEqual(await failure(`throw new QuotaExceededError("over the quota", { quota: 1, requested: 2 })`), expected);
    assert.deepEqual(await failure(`await Promise.reject(new QuotaExceededError("over the quota", { quota: 1 }))`), expected);
    assert.deepEqual(await failure(`class Sub extends QuotaExceededError {}; throw new Sub("over the quota")`), expected);
  });

  test("thrown and not caught in a timer or a port's handler, it fails the eval the same way", async () => {
    const expected = ["ScriptError", "QuotaExceededError", "QuotaExceededError: over the quota"];
    for (const code of [
      `setTimeout(() => { throw new QuotaExceededError("over the quota", { quota: 1 }) }, 0);
       await new Promise((r) => setTimeout(r, 1000));`,
      `const { port1, port2 } = new MessageChannel();
       port2.onmessage = () => { throw new QuotaExceededError("over the quota", { quota: 1 }) };
       port1.postMessage(null);
       await new Promise((r) => setTimeout(r, 1000));`,
    ]) {
      assert.deepEqual(failureOf(await sandbox().run(code), code), expected, code);
    }
    // The global's error event carries the realm's error itself.
    assert.deepEqual(
      await run(`
        let seen;
        addEventListener("error", (e) => { seen = [e.error instanceof QuotaExceededError, e.error.quota, e.error.message]; e.preventDefault(); });
        setTimeout(() => { throw new QuotaExceededError("over the quota", { quota: 1 }) }, 0);
        ${until("seen")}
        seen`),
      [true, 1, "over the quota"],
    );
  });
});

describe("MessageChannel in a persistent sandbox", () => {
  const sandbox = sharedSandbox({ persistent: true });

  test("a channel made by one eval is used by the next; messages waiting for start() wait across evals", async () => {
    await sandbox().eval(`
      var channel = new MessageChannel();
      var received = [];
      channel.port2.addEventListener("message", (e) => received.push(e.data));
      channel.port1.postMessage("posted by the first eval");`);
    assert.deepEqual(
      await sandbox().eval(`
        channel.port2.start();
        channel.port1.postMessage("posted by the second eval");
        ${until("received.length === 2")}
        received`),
      ["posted by the first eval", "posted by the second eval"],
    );
  });

  test("a delivery still pending when its eval ends does not run during a later eval", async () => {
    // Like a pending timer: the task that would deliver the message belonged to the first eval.
    await sandbox().eval(`
      var late = new MessageChannel();
      var lateReceived = [];
      late.port2.onmessage = (e) => lateReceived.push(e.data);
      late.port1.postMessage("never delivered");`);
    assert.deepEqual(
      await sandbox().eval(`
        await new Promise((r) => setTimeout(r, 30));
        late.port1.postMessage("delivered");
        ${until("lateReceived.length > 0")}
        lateReceived`),
      ["delivered"],
    );
  });
});
