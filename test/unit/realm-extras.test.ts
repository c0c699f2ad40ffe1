/**
 * Unit: the realm-side MessageChannel and MessagePort (src/carrier/web/extras.ts),
 * installed as the carrier installs them: the function's source text compiled inside a fresh
 * node:vm context and called there. Node's own EventTarget, MessageEvent, DOMException and
 * structuredClone stand in for the realm's Web APIs; the scheduler is a FIFO of macrotasks. Every
 * test runs twice: on the function as tsc emits it, and minified by esbuild as in the carrier bundle.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import vm from "node:vm";
import { transform, stop as stopEsbuild } from "esbuild";
import { installRealmExtras } from "../../src/carrier/web/extras.js";

interface Realm {
  /** Runs `code` in the realm; its completion value, JSON-encoded there and decoded here. */
  json<T = unknown>(code: string): T;
  run(code: string): unknown;
  /** Resolves once every task the realm scheduled (also tasks those tasks scheduled) has run. */
  idle(): Promise<void>;
  /** How many tasks the realm has scheduled so far. */
  scheduled(): number;
}

/** The function's source as the carrier bundle has it: esbuild-minified (identifiers renamed). */
async function minifiedSource(): Promise<string> {
  const { code } = await transform(`var install = (${installRealmExtras.toString()});`, { minify: true, target: "esnext", loader: "js" });
  // esbuild's service is a child process: the leak guard wants none left behind.
  await stopEsbuild();
  return vm.runInNewContext(`${code}; install.toString()`) as string;
}

const SOURCES = { tsc: installRealmExtras.toString(), minified: await minifiedSource() };

function makeRealm(source: string): Realm {
  const context = vm.createContext();
  const G = vm.runInContext("globalThis", context) as Record<string, unknown>;
  // Subclasses per realm: a test that patches the realm's EventTarget.prototype patches these, not
  // Node's own classes.
  const apis: Record<string, unknown> = {
    EventTarget: class EventTarget extends globalThis.EventTarget {},
    Event: class Event extends globalThis.Event {},
    MessageEvent: globalThis.MessageEvent,
    DOMException: globalThis.DOMException,
    structuredClone: globalThis.structuredClone,
  };
  for (const [name, value] of Object.entries(apis)) Object.defineProperty(G, name, { value, writable: true, configurable: true, enumerable: false });
  let pending = 0;
  let total = 0;
  let waiters: Array<() => void> = [];
  const schedule = (task: () => void): void => {
    pending++;
    total++;
    setTimeout(() => {
      try {
        task();
      } finally {
        pending--;
        if (pending === 0) {
          const wake = waiters;
          waiters = [];
          for (const resolve of wake) resolve();
        }
      }
    }, 0);
  };
  const install = vm.runInContext(`(${source})`, context) as typeof installRealmExtras;
  install(G, schedule);
  return {
    run: (code) => vm.runInContext(code, context),
    json: <T>(code: string) => JSON.parse(vm.runInContext(`JSON.stringify((() => { ${code} })())`, context) as string) as T,
    idle: () => new Promise<void>((resolve) => (pending === 0 ? setImmediate(resolve) : waiters.push(resolve))),
    scheduled: () => total,
  };
}

for (const [variant, source] of Object.entries(SOURCES)) {
  describe(`realm extras (${variant})`, () => {
    test("the globals and their prototypes have WebIDL's shape, names included", () => {
      const realm = makeRealm(source);
      const shape = realm.json<Record<string, unknown>>(`
        const describe = (o, k) => { const d = Object.getOwnPropertyDescriptor(o, k); return d && [typeof d.value, !!d.writable, d.enumerable, d.configurable, typeof d.get, typeof d.set]; };
        const out = {};
        for (const name of ["MessageChannel", "MessagePort"]) {
          const C = globalThis[name];
          out[name] = {
            global: describe(globalThis, name), name: C.name, length: C.length, prototype: describe(C, "prototype"),
            tag: Object.prototype.toString.call(C.prototype), constructor: describe(C.prototype, "constructor"),
            members: Object.keys(C.prototype),
          };
        }
        const P = MessagePort.prototype;
        out.lengths = [P.postMessage.length, P.start.length, P.close.length, Object.getOwnPropertyDescriptor(P, "onmessage").set.length];
        out.accessorNames = [Object.getOwnPropertyDescriptor(P, "onmessage").get.name, Object.getOwnPropertyDescriptor(MessageChannel.prototype, "port1").get.name,
          P.postMessage.name];
        out.chain = [Object.getPrototypeOf(MessagePort) === EventTarget, Object.getPrototypeOf(P) === EventTarget.prototype,
          Object.getPrototypeOf(MessageChannel) === Function.prototype, Object.getPrototypeOf(MessageChannel.prototype) === Object.prototype];
        out.methodsConstruct = (() => { try { new P.start(); return true } catch (e) { return e instanceof TypeError } })();
        return out;`);
      const global = ["function", true, false, true, "undefined", "undefined"];
      const prototype = ["object", false, false, false, "undefined", "undefined"];
      const constructor = ["function", true, false, true, "undefined", "undefined"];
      assert.deepEqual(shape.MessageChannel, { global, name: "MessageChannel", length: 0, prototype, tag: "[object MessageChannel]", constructor, members: ["port1", "port2"] });
      assert.deepEqual(shape.MessagePort, {
        global, name: "MessagePort", length: 0, prototype, tag: "[object MessagePort]", constructor,
        members: ["postMessage", "start", "close", "onmessage", "onmessageerror"],
      });
      assert.deepEqual(shape.lengths, [1, 0, 0, 1]);
      assert.deepEqual(shape.accessorNames, ["get onmessage", "get port1", "postMessage"]);
      assert.deepEqual(shape.chain, [true, true, true, true]);
      assert.equal(shape.methodsConstruct, true);
    });

    test("MessagePort cannot be constructed; MessageChannel needs new; ports are the channel's own", () => {
      const realm = makeRealm(source);
      assert.deepEqual(
        realm.json(`
          const errors = [() => new MessagePort(), () => MessagePort(), () => MessageChannel(), () => Reflect.construct(MessagePort, [], MessageChannel),
            () => { class Sub extends MessagePort {}; return new Sub() }].map((f) => { try { f(); return "no error" } catch (e) { return [e instanceof TypeError, e.message] } });
          const c = new MessageChannel();
          return [errors.slice(0, 1), errors.every((e) => e[0] === true), c.port1 === c.port1, c.port1 !== c.port2, c.port1 instanceof MessagePort,
            c.port1 instanceof EventTarget, Object.prototype.toString.call(c.port1), Object.keys(c.port1).length];`),
        [[[true, "Illegal constructor"]], true, true, true, true, true, "[object MessagePort]", 0],
      );
    });

    test("members check their receiver", () => {
      const realm = makeRealm(source);
      assert.deepEqual(
        realm.json(`
          const P = MessagePort.prototype;
          const calls = [() => P.postMessage.call({}, 1), () => P.start.call(new EventTarget()), () => P.close.call(undefined), () => P.onmessage,
            () => Object.getOwnPropertyDescriptor(P, "onmessage").set.call({}, null), () => MessageChannel.prototype.port1,
            () => Object.getOwnPropertyDescriptor(MessageChannel.prototype, "port2").get.call(new MessageChannel().port1)];
          return calls.map((f) => { try { f(); return "no error" } catch (e) { return e instanceof TypeError && e.message } });`),
        Array(7).fill("Illegal invocation"),
      );
    });

    test("messages wait for start(); addEventListener alone does not start the port", async () => {
      const realm = makeRealm(source);
      realm.run(`
        var got = [];
        var c = new MessageChannel();
        c.port2.addEventListener("message", (e) => got.push(e.data));
        c.port1.postMessage("a");
        c.port1.postMessage({ b: [1, 2] });`);
      await realm.idle();
      assert.deepEqual(realm.json("return got"), []);
      assert.equal(realm.scheduled(), 0);
      realm.run(`c.port2.start(); c.port2.start(); c.port1.postMessage("c");`);
      await realm.idle();
      assert.deepEqual(realm.json("return got"), ["a", { b: [1, 2] }, "c"]);
    });

    test("a delivered message is a MessageEvent at the receiving port, with a clone of the data", async () => {
      const realm = makeRealm(source);
      realm.run(`
        var seen;
        var sent = { list: [1, { deep: true }], when: new Date(5), map: new Map([["k", "v"]]) };
        var c = new MessageChannel();
        c.port2.onmessage = function (e) {
          seen = [e instanceof MessageEvent, e.type, e.target === c.port2, e.currentTarget === c.port2, this === c.port2, e.data !== sent,
            e.data.list[1].deep, e.data.when.getTime(), e.data.map.get("k"), Array.isArray(e.ports), e.ports.length, e.origin, e.source, e.bubbles, e.cancelable];
        };
        c.port1.postMessage(sent);
        sent.list.push("changed after posting");`);
      await realm.idle();
      assert.deepEqual(realm.json("return seen"), [true, "message", true, true, true, true, true, 5, "v", true, 0, "", null, false, false]);
    });

    test("messages arrive in the order posted, in both directions, each in a task of its own", async () => {
      const realm = makeRealm(source);
      realm.run(`
        var log = [];
        var c = new MessageChannel();
        c.port1.onmessage = (e) => { log.push("1:" + e.data); Promise.resolve().then(() => log.push("micro after 1:" + e.data)); };
        c.port2.onmessage = (e) => {
          log.push("2:" + e.data);
          Promise.resolve().then(() => log.push("micro after 2:" + e.data));
          if (e.data === 0) c.port2.postMessage("reply");
        };
        for (let i = 0; i < 3; i++) c.port1.postMessage(i);`);
      await realm.idle();
      assert.deepEqual(realm.json("return log"), [
        "2:0", "micro after 2:0", "2:1", "micro after 2:1", "2:2", "micro after 2:2", "1:reply", "micro after 1:reply",
      ]);
      assert.equal(realm.scheduled(), 4);
    });

    test("onmessage: setting it starts the port; null or a non-object removes it; listeners keep their order", async () => {
      const realm = makeRealm(source);
      realm.run(`
        var log = [];
        var c = new MessageChannel();
        var handler = (e) => log.push("handler " + e.data);
        c.port2.addEventListener("message", (e) => log.push("listener before " + e.data));
        c.port2.onmessage = handler;
        c.port2.addEventListener("message", (e) => log.push("listener after " + e.data));
        var read = [c.port2.onmessage === handler, c.port2.onmessageerror];
        c.port1.postMessage(1);`);
      await realm.idle();
      realm.run(`
        c.port2.onmessage = null; read.push(c.port2.onmessage);
        c.port1.postMessage(2);`);
      await realm.idle();
      realm.run(`
        c.port2.onmessage = handler;
        c.port2.onmessage = (e) => log.push("second handler " + e.data);
        c.port1.postMessage(3);`);
      await realm.idle();
      realm.run(`c.port2.onmessage = 42; read.push(c.port2.onmessage); c.port1.postMessage(4);`);
      await realm.idle();
      // A non-callable object is kept, and ignored when the event fires (no error).
      realm.run(`var notCallable = {}; c.port2.onmessage = notCallable; read.push(c.port2.onmessage === notCallable); c.port1.postMessage(5);`);
      await realm.idle();
      assert.deepEqual(realm.json("return [log, read]"), [
        ["listener before 1", "handler 1", "listener after 1", "listener before 2", "listener after 2",
          "listener before 3", "listener after 3", "second handler 3", "listener before 4", "listener after 4", "listener before 5", "listener after 5"],
        [true, null, null, null, true],
      ]);
      // Setting onmessage to null still starts a port (only the first setting matters).
      realm.run(`var d = new MessageChannel(); var late = []; d.port2.addEventListener("message", (e) => late.push(e.data)); d.port2.onmessage = null; d.port1.postMessage("x");`);
      await realm.idle();
      assert.deepEqual(realm.json("return late"), ["x"]);
    });

    test("onmessageerror does not start the port; a handler returning false cancels a cancelable event", async () => {
      const realm = makeRealm(source);
      realm.run(`
        var c = new MessageChannel();
        var got = [];
        c.port2.addEventListener("message", (e) => got.push(e.data));
        c.port2.onmessageerror = () => {};
        c.port1.postMessage(1);`);
      await realm.idle();
      assert.deepEqual(realm.json("return got"), []);
      assert.deepEqual(
        realm.json(`
          c.port2.onmessage = () => false;
          const event = new Event("message", { cancelable: true });
          return [c.port2.dispatchEvent(event), event.defaultPrevented];`),
        [false, true],
      );
    });

    test("transfer lists: buffers move, in either form; the iterable is read once", async () => {
      const realm = makeRealm(source);
      realm.run(`
        var got = [];
        var c = new MessageChannel();
        c.port2.onmessage = (e) => got.push([e.data.constructor.name, e.data.byteLength, new Uint8Array(e.data).at(-1)]);
        var a = new Uint8Array([1, 2, 3]).buffer, b = new Uint8Array([4, 5]).buffer, d = new Uint8Array([6, 7]).buffer;
        c.port1.postMessage(a, [a]);
        c.port1.postMessage(b, { transfer: [b] });
        var reads = 0;
        c.port1.postMessage(d, { transfer: (function* () { reads++; yield d; })() });
        c.port1.postMessage(new ArrayBuffer(1), undefined);
        c.port1.postMessage(new ArrayBuffer(1), null);
        c.port1.postMessage(new ArrayBuffer(1), {});
        var after = [a.byteLength, b.byteLength, d.byteLength, reads];`);
      await realm.idle();
      assert.deepEqual(realm.json("return [after, got]"), [
        [0, 0, 0, 1],
        [["ArrayBuffer", 3, 3], ["ArrayBuffer", 2, 5], ["ArrayBuffer", 2, 7], ["ArrayBuffer", 1, 0], ["ArrayBuffer", 1, 0], ["ArrayBuffer", 1, 0]],
      ]);
    });

    test("postMessage refuses what it cannot clone or convert, synchronously, before anything is queued", async () => {
      const realm = makeRealm(source);
      realm.run(`
        var c = new MessageChannel();
        var got = [];
        c.port2.onmessage = (e) => got.push(e.data);`);
      const errors = realm.json<unknown[]>(`
        const other = new MessageChannel();
        const attempt = (f) => { try { f(); return "no error" } catch (e) { return [e.name, e instanceof DOMException || e instanceof TypeError] } };
        return [
          attempt(() => c.port1.postMessage(() => 1)),
          attempt(() => c.port1.postMessage({ s: Symbol("x") })),
          attempt(() => c.port1.postMessage(1, [c.port1])),
          attempt(() => c.port1.postMessage(1, [other.port1])),
          attempt(() => c.port1.postMessage(1, { transfer: [other.port2] })),
          attempt(() => c.port1.postMessage()),
          attempt(() => c.port1.postMessage(1, 5)),
          attempt(() => c.port1.postMessage(1, "ab")),
          attempt(() => c.port1.postMessage(1, { transfer: 5 })),
          attempt(() => c.port1.postMessage(1, { transfer: {} })),
          attempt(() => c.port1.postMessage(1, [5])),
          attempt(() => c.port1.postMessage(1, { [Symbol.iterator]: 5 })),
          attempt(() => c.port1.postMessage(1, { [Symbol.iterator]: () => 5 })),
          attempt(() => { const buffer = new ArrayBuffer(1); c.port1.postMessage(1, [buffer, buffer]) }),
        ];`);
      assert.deepEqual(errors, [
        ["DataCloneError", true], ["DataCloneError", true], ["DataCloneError", true], ["DataCloneError", true], ["DataCloneError", true],
        ["TypeError", true], ["TypeError", true], ["TypeError", true], ["TypeError", true], ["TypeError", true], ["TypeError", true],
        ["TypeError", true], ["TypeError", true], ["DataCloneError", true],
      ]);
      await realm.idle();
      assert.deepEqual(realm.json("return got"), []);
      // The port still works after all that.
      realm.run(`c.port1.postMessage("still open")`);
      await realm.idle();
      assert.deepEqual(realm.json("return got"), ["still open"]);
    });

    test("transferring the target port dooms the channel without an error; the message is still cloned", async () => {
      const realm = makeRealm(source);
      realm.run(`
        var c = new MessageChannel();
        var got = [];
        c.port1.onmessage = (e) => got.push("1:" + e.data);
        c.port2.onmessage = (e) => got.push("2:" + e.data);
        c.port1.postMessage("before");
        var buffer = new ArrayBuffer(4);
        var thrown = null;
        try { c.port1.postMessage("doomed", [c.port2, buffer]) } catch (e) { thrown = e.name }
        var notClonable = null;
        try { c.port1.postMessage(() => 1, [c.port2]) } catch (e) { notClonable = e.name }
        c.port1.postMessage("after");
        c.port2.postMessage("from the lost port");`);
      await realm.idle();
      assert.deepEqual(realm.json("return [thrown, notClonable, buffer.byteLength, got]"), [null, "DataCloneError", 0, []]);
    });

    test("close(): nothing reaches or leaves a closed port; messages already sent by a port that then closes arrive", async () => {
      const realm = makeRealm(source);
      realm.run(`
        var got = [];
        var a = new MessageChannel(), b = new MessageChannel(), d = new MessageChannel(), e = new MessageChannel();
        a.port2.onmessage = (m) => got.push("a:" + m.data);
        a.port2.close();
        a.port1.postMessage("to a closed port");
        b.port2.onmessage = (m) => got.push("b:" + m.data);
        b.port1.close();
        b.port1.close();
        b.port1.postMessage("from a closed port");
        d.port2.onmessage = (m) => got.push("d:" + m.data);
        d.port1.postMessage("sent before closing");
        d.port1.close();
        e.port2.onmessage = (m) => got.push("e:" + m.data);
        e.port1.postMessage("on its way when the receiver closed");
        e.port2.close();
        var stillThrows = null;
        try { a.port1.postMessage(() => 1) } catch (error) { stillThrows = error.name }`);
      await realm.idle();
      assert.deepEqual(realm.json("return [got, stillThrows]"), [["d:sent before closing"], "DataCloneError"]);
    });

    test("a port that closes in its handler gets no more messages; its partner's later posts are dropped", async () => {
      const realm = makeRealm(source);
      realm.run(`
        var got = [];
        var c = new MessageChannel();
        c.port2.onmessage = (m) => { got.push(m.data); c.port2.close(); };
        c.port1.postMessage(1);
        c.port1.postMessage(2);`);
      await realm.idle();
      realm.run("c.port1.postMessage(3)");
      await realm.idle();
      assert.deepEqual(realm.json("return got"), [1]);
    });

    test("user code that replaces globals and prototypes later does not reach these APIs", async () => {
      const realm = makeRealm(source);
      realm.run(`
        var OriginalTypeError = TypeError, OriginalDOMException = DOMException;
        // Records without arrays: the test itself must not trip over the traps it sets.
        var got = {}, gotCount = 0, errors = {}, errorCount = 0;
        var note = (value) => { errors[errorCount++] = value };
        var trap = (what) => function () { throw new Error("called the replaced " + what) };
        Reflect.apply = trap("Reflect.apply");
        Reflect.construct = trap("Reflect.construct");
        Function.prototype.call = trap("Function.prototype.call");
        Function.prototype.apply = trap("Function.prototype.apply");
        Object.defineProperty = trap("Object.defineProperty");
        Reflect.defineProperty(Array.prototype, "0", { set: trap("an Array.prototype setter"), configurable: true });
        WeakMap.prototype.get = trap("WeakMap.prototype.get");
        WeakMap.prototype.set = trap("WeakMap.prototype.set");
        Array.prototype.push = trap("Array.prototype.push");
        Object.prototype.bubbles = true;
        Object.prototype.transfer = "not a sequence";
        EventTarget.prototype.dispatchEvent = trap("dispatchEvent");
        EventTarget.prototype.addEventListener = trap("addEventListener");
        EventTarget.prototype.removeEventListener = trap("removeEventListener");
        // Constructing does not go through the constructors' [[Prototype]] (as super() would). Put
        // MessagePort's back afterwards: Node's EventTarget recognizes its instances by a static
        // member of their constructor, which MessagePort inherits from EventTarget.
        Object.setPrototypeOf(MessagePort, trap("MessagePort's [[Prototype]]"));
        var c = new MessageChannel();
        Object.setPrototypeOf(MessagePort, EventTarget);
        globalThis.EventTarget = globalThis.MessageEvent = globalThis.DOMException = globalThis.structuredClone = trap("a replaced global");
        globalThis.TypeError = trap("a replaced error class");
        c.port2.onmessage = (e) => { got[gotCount++] = [e.data.n, e.bubbles, e.data.buffer.byteLength] };
        var buffer = new ArrayBuffer(2);
        c.port1.postMessage({ n: 1, buffer }, [buffer]);
        c.port1.postMessage({ n: 2, buffer: new ArrayBuffer(3) });
        try { new MessagePort() } catch (e) { note(e instanceof OriginalTypeError) }
        try { c.port1.postMessage(() => 1) } catch (e) { note(e instanceof OriginalDOMException && e.name) }`);
      await realm.idle();
      // Removing the handler also goes through what was captured: the next message finds no one.
      realm.run(`c.port2.onmessage = null; c.port1.postMessage({ n: 3, buffer: new ArrayBuffer(0) });`);
      await realm.idle();
      assert.deepEqual(realm.json("return [Object.values(got), Object.values(errors), buffer.byteLength]"), [
        [[1, false, 2], [2, false, 3]],
        [true, "DataCloneError"],
        0,
      ]);
    });
  });
}
