/**
 * Realms: a fresh V8 context per eval, holding ECMAScript built-ins plus the hardened Web APIs.
 * Creating a context costs ~0.3 ms, so spare realms are made ahead of demand while the carrier is
 * idle; an eval that finds none waiting makes its own.
 */
import vm from "node:vm";
import type { RealmHelpers, ScopeSlot } from "./capability.js";
import { defineGlobal, liveScope } from "./capability.js";
import { describeThrown } from "./values.js";
import { types } from "node:util";
import { installRealmExtras } from "./web/extras.js";
import { runMicrotasks } from "./pump.js";
import type { RealmWeb, WebBindings } from "./web/bindings.js";
import type { Membrane } from "./web/membrane.js";

/**
 * Deno's Web APIs that every realm gets a realm-owned counterpart of (see web/bindings.ts).
 * Per-eval ones (console, timers, fetch) are not here.
 */
export const SHARED_WEB_APIS = [
  "URL", "URLSearchParams", "URLPattern", "TextEncoder", "TextDecoder", "TextEncoderStream", "TextDecoderStream",
  "atob", "btoa", "Blob", "File", "FormData", "AbortController", "AbortSignal", "Event", "EventTarget",
  "CustomEvent", "ErrorEvent", "MessageEvent", "ProgressEvent", "PromiseRejectionEvent", "CloseEvent", "DOMException",
  "ReadableStream", "ReadableStreamDefaultReader", "ReadableStreamBYOBReader", "ReadableStreamBYOBRequest",
  "ReadableStreamDefaultController", "ReadableByteStreamController", "WritableStream", "WritableStreamDefaultWriter",
  "WritableStreamDefaultController", "TransformStream", "TransformStreamDefaultController", "ByteLengthQueuingStrategy",
  "CountQueuingStrategy", "CompressionStream", "DecompressionStream", "Headers", "Request", "Response",
  "crypto", "Crypto", "SubtleCrypto", "CryptoKey", "structuredClone", "FileReader", "QuotaExceededError",
  "DOMMatrix", "DOMMatrixReadOnly", "DOMPoint", "DOMPointReadOnly", "DOMQuad", "DOMRect", "DOMRectReadOnly", "ImageData",
] as const;

/**
 * Compiled once, run in every new realm: helpers whose objects must belong to the realm itself
 * (errors user code can `instanceof`, and copies of the host's globals with the realm's prototypes).
 */
const HELPERS_SOURCE = `(() => {
  "use strict";
  // Everything is captured now, before any user code runs: a persistent realm's code may replace
  // its globals later, and these helpers must not call into it.
  const G = globalThis;
  const { Array, Date, RegExp, Map, Set, DataView, Object, Error } = G;
  const ERRORS = new Map(["Error", "TypeError", "RangeError", "SyntaxError", "ReferenceError", "EvalError", "URIError"].map((n) => [n, G[n]]));
  const VIEWS = new Map(["Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array", "Uint32Array",
    "Float16Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array"].filter((n) => typeof G[n] === "function").map((n) => [n, G[n]]));
  const Uint8 = VIEWS.get("Uint8Array");
  const toTag = Object.prototype.toString;
  const { keys, defineProperty } = Object;
  const apply = Reflect.apply;
  const tag = (v) => apply(toTag, v, []).slice(8, -1);
  // An error class of the realm's own for a capability's errors (ToolError), made once.
  const errorClass = (name) => {
    let Ctor = ERRORS.get(name);
    if (Ctor) return Ctor;
    Ctor = class extends Error {};
    defineProperty(Ctor, "name", { value: name, configurable: true });
    defineProperty(Ctor.prototype, "name", { value: name, writable: true, configurable: true });
    ERRORS.set(name, Ctor);
    return Ctor;
  };
  const makeError = (name, message) => {
    const Ctor = ERRORS.get(name) ?? Error;
    const error = new Ctor(message);
    if (Ctor === Error && name !== "Error") defineProperty(error, "name", { value: name, configurable: true, writable: true });
    return error;
  };
  // Copies host-provided data (already structured-cloned, in the carrier's outer realm) into this
  // realm, so that it has this realm's prototypes.
  const adopt = (value, seen = new Map()) => {
    if (typeof value !== "object" || value === null) return value;
    if (seen.has(value)) return seen.get(value);
    const kind = tag(value);
    let copy;
    switch (kind) {
      case "Array":
        copy = new Array(value.length); seen.set(value, copy);
        for (let i = 0; i < value.length; i++) if (i in value) copy[i] = adopt(value[i], seen);
        return copy;
      case "Date": copy = new Date(value.getTime()); break;
      case "RegExp": copy = new RegExp(value.source, value.flags); break;
      case "Map":
        copy = new Map(); seen.set(value, copy);
        for (const [k, v] of value) copy.set(adopt(k, seen), adopt(v, seen));
        return copy;
      case "Set":
        copy = new Set(); seen.set(value, copy);
        for (const v of value) copy.add(adopt(v, seen));
        return copy;
      case "ArrayBuffer": copy = new Uint8(new Uint8(value)).buffer; break;
      case "DataView": copy = new DataView(adopt(value.buffer, seen), value.byteOffset, value.byteLength); break;
      case "Error": copy = makeError(value.name, value.message); break;
      case "Boolean": case "Number": case "String": case "BigInt": copy = Object(value.valueOf()); break;
      default:
        if (VIEWS.has(kind)) {
          copy = new (VIEWS.get(kind))(adopt(value.buffer, seen), value.byteOffset, value.length);
          break;
        }
        copy = {}; seen.set(value, copy);
        // An own "__proto__" key is data, not the copy's prototype.
        for (const key of keys(value)) {
          if (key === "__proto__") defineProperty(copy, key, { value: adopt(value[key], seen), writable: true, enumerable: true, configurable: true });
          else copy[key] = adopt(value[key], seen);
        }
        return copy;
    }
    seen.set(value, copy);
    return copy;
  };
  // Stacks seen inside the sandbox show the user's frames only, not the carrier's or Deno's.
  // (Same rule as isInternalFrame in harden.ts, which cannot be shared: this runs inside the realm.)
  const internal = (site) => { const file = site.getFileName(); return typeof file === "string" && (file.startsWith("data:") || file.startsWith("paddock:") || file.startsWith("ext:") || file.startsWith("node:") || site.getLineNumber() === 0); };
  const errorToString = Error.prototype.toString;
  defineProperty(Error, "prepareStackTrace", {
    value: (error, sites) => {
      let head;
      try { head = apply(errorToString, error, []); } catch { head = "Error"; }
      return head + sites.filter((site) => !internal(site)).map((site) => "\\n    at " + site).join("");
    },
    writable: true, configurable: true, enumerable: false,
  });
  // queueMicrotask on this realm's own queue (see pump.ts), in order with its promises.
  const resolved = G.Promise.resolve();
  const then = G.Promise.prototype.then;
  const makeQueueMicrotask = (report) => function queueMicrotask(callback) {
    if (typeof callback !== "function") throw new G.TypeError("queueMicrotask: the callback must be a function");
    apply(then, resolved, [() => { try { callback(); } catch (error) { report(error); } }]);
  };
  // Globals made on first use: an accessor that asks the carrier for the value (which then makes
  // it a data property); assigning one first just makes it a data property.
  // Looking at one's descriptor makes it first, so that it reads as the data property it becomes.
  const defineLazy = (names, resolve) => {
    const getters = { __proto__: null };
    for (const name of names) {
      const get = () => resolve(name);
      getters[name] = get;
      defineProperty(G, name, {
        get,
        set(value) { defineProperty(G, name, { value, writable: true, enumerable: false, configurable: true }); },
        enumerable: false, configurable: true,
      });
    }
    const getOwn = Reflect.getOwnPropertyDescriptor;
    const made = (target, key) => {
      if (target !== G || typeof key !== "string") return;
      const own = getOwn(G, key);
      if (own !== undefined && own.get !== undefined && own.get === getters[key]) own.get();
    };
    const ownDescriptors = Object.getOwnPropertyDescriptors;
    const replace = (holder, key, fn) => defineProperty(holder, key, { value: fn, writable: true, enumerable: false, configurable: true });
    replace(Object, "getOwnPropertyDescriptor", { getOwnPropertyDescriptor(target, key) { made(target, key); return getOwn(target, key); } }.getOwnPropertyDescriptor);
    replace(Reflect, "getOwnPropertyDescriptor", { getOwnPropertyDescriptor(target, key) { made(target, key); return getOwn(target, key); } }.getOwnPropertyDescriptor);
    replace(Object, "getOwnPropertyDescriptors", { getOwnPropertyDescriptors(target) {
      if (target === G) for (const name in getters) made(G, name);
      return ownDescriptors(target);
    } }.getOwnPropertyDescriptors);
  };
  // The global's interface, as in Deno: Window, an EventTarget that no code can construct.
  const makeWindow = (EventTarget) => {
    const Window = function Window() { throw new G.TypeError("Illegal constructor"); };
    const prototype = Object.create(EventTarget.prototype);
    defineProperty(prototype, "constructor", { value: Window, writable: true, configurable: true, enumerable: false });
    defineProperty(prototype, G.Symbol.toStringTag, { value: "Window", configurable: true });
    defineProperty(Window, "prototype", { value: prototype, writable: false });
    Reflect.setPrototypeOf(Window, EventTarget);
    return Window;
  };
  // What MessageChannel's code is made from (see makeChannels): the realm's own intrinsics, taken
  // now, before user code could replace them, plus the realm's pristine Web API classes.
  // (Methods, not just their holders: user code may replace WeakMap.prototype.get before the channel is first used.)
  const RealWeakMap = G.WeakMap;
  const PristineWeakMap = function () { return new RealWeakMap(); };
  PristineWeakMap.prototype = { __proto__: null, get: G.WeakMap.prototype.get, set: G.WeakMap.prototype.set };
  const pristine = {
    Reflect: { __proto__: null, apply: G.Reflect.apply, construct: G.Reflect.construct },
    Object: { __proto__: null, defineProperty: G.Object.defineProperty, setPrototypeOf: G.Object.setPrototypeOf },
    Symbol: { __proto__: null, iterator: G.Symbol.iterator, toStringTag: G.Symbol.toStringTag },
    TypeError: G.TypeError,
    WeakMap: PristineWeakMap,
  };
  const channelScope = (apis) => {
    const scope = { __proto__: null };
    for (const key of keys(pristine)) defineProperty(scope, key, { __proto__: null, value: pristine[key], enumerable: true, writable: true });
    for (const key of keys(apis)) defineProperty(scope, key, { __proto__: null, value: apis[key], enumerable: true, writable: true });
    return scope;
  };
  return { makeError, errorClass, adopt, makeQueueMicrotask, defineLazy, makeWindow, channelScope, objectPrototype: G.Object.prototype };
})()`;

/** What HELPERS_SOURCE gives the carrier. */
interface RealmSide extends Pick<RealmHelpers, "makeError" | "errorClass" | "adopt" | "makeQueueMicrotask"> {
  defineLazy(names: readonly string[], resolve: (name: string) => unknown): void;
  makeWindow(eventTarget: unknown): { prototype: object };
  channelScope(apis: Record<string, unknown>): Record<string, unknown>;
  objectPrototype: object;
}

const outerDispatchEvent = EventTarget.prototype.dispatchEvent;
const outerDefaultPrevented = Object.getOwnPropertyDescriptor(Event.prototype, "defaultPrevented")!.get!;

const CHANNEL_APIS = ["MessageChannel", "MessagePort"];

/**
 * MessageChannel and MessagePort, made when first used from the realm's own (pristine) Web API
 * classes; messages are delivered as timer tasks of the eval, so they end with it.
 */
function makeChannels(
  realmSide: RealmSide,
  web: RealmWeb,
  install: typeof installRealmExtras,
  makeSetTimeout: (() => unknown) | undefined,
): Record<string, unknown> {
  const apis: Record<string, unknown> = {};
  for (const name of ["EventTarget", "Event", "MessageEvent", "DOMException", "structuredClone"]) apis[name] = web.resolve(name);
  const scope = realmSide.channelScope(apis);
  const setTimeout = makeSetTimeout?.() as ((task: () => void, ms: number) => unknown) | undefined;
  // (A function of the realm's own, like everything the channel's code holds.)
  install(scope, web.membrane.hostFunction((task) => void setTimeout?.(task as () => void, 0)) as (task: () => void) => void);
  return scope;
}

/** The EventTarget methods the global object inherits once it is an EventTarget. */
const GLOBAL_EVENT_METHODS = ["addEventListener", "removeEventListener", "dispatchEvent"];

export interface Realm {
  readonly context: vm.Context;
  readonly global: Record<string, unknown>;
  readonly helpers: RealmHelpers;
  /** The eval this realm serves; set when an eval takes the realm. */
  readonly slot: ScopeSlot;
}

/** Installs the per-eval capabilities (console, timers, fetch…) into a new realm. */
export type CapabilityInstaller = (global: object, slot: ScopeSlot, helpers: RealmHelpers) => void;

export class RealmFactory {
  private readonly spares: Realm[] = [];
  /** Each realm by its Object.prototype: what tells which realm made an object. */
  private readonly byRoot = new WeakMap<object, Realm>();
  private readonly helpersScript = new vm.Script(`[${HELPERS_SOURCE}, (${installRealmExtras.toString()})]`, { filename: "paddock:realm" });
  private refillScheduled = false;

  constructor(
    private readonly bindings: WebBindings,
    private readonly performanceApi: object,
    private readonly installCapabilities: CapabilityInstaller,
    private readonly spareTarget: number,
  ) {}

  /** The realm that made `value` (an error or promise it reported), if one did. */
  owner(value: unknown): Realm | undefined {
    if ((typeof value !== "object" && typeof value !== "function") || value === null) return undefined;
    let current: object = value;
    for (let depth = 0; depth < 1000; depth++) {
      if (types.isProxy(current)) return undefined;
      const next = Object.getPrototypeOf(current) as object | null;
      if (next === null) return this.byRoot.get(current);
      current = next;
    }
    return undefined;
  }

  /** Tops up the spares synchronously: the carrier is idle and about to block on its input. */
  fillNow(): void {
    while (this.spares.length < this.spareTarget) this.spares.push(this.create());
  }

  /** Drops the spare realms: what their capabilities were installed with has changed (the sandbox's tools). */
  discardSpares(): void {
    this.spares.length = 0;
  }

  take(): Realm {
    const realm = this.spares.pop() ?? this.create();
    // A burst used every spare: make more between its evals.
    if (this.spares.length === 0) this.refillSoon(() => true);
    return realm;
  }

  /**
   * Makes spare realms one at a time, each in its own macrotask so incoming evals interleave, and
   * only after a short pause (right after a reply the host needs the CPU to read it), while
   * `mayWork()` says so (not while an eval waits for a host reply that should be read at once).
   */
  refillSoon(mayWork: () => boolean): void {
    if (this.refillScheduled || this.spares.length >= this.spareTarget) return;
    this.refillScheduled = true;
    setTimeout(() => {
      this.refillScheduled = false;
      if (!mayWork()) return;
      this.spares.push(this.create());
      this.refillSoon(mayWork);
    }, 1);
  }

  private create(): Realm {
    // An ordinary global object (no interceptors): cheaper to make, and global lookups in user
    // code run several times faster than on a "contextified" sandbox object.
    // Its own microtask queue: see pump.ts.
    const context = vm.createContext(vm.constants.DONT_CONTEXTIFY, { codeGeneration: { strings: true, wasm: true }, microtaskMode: "afterEvaluate" });
    const global = context as Record<string, unknown>;
    const makers = new Map<string, () => unknown>();
    const whenBuilt = new Map<string, (value: unknown) => void>();
    let window: { prototype: object } | undefined;
    const slot: ScopeSlot = { scope: undefined };
    let checkpointQueued = false;
    const web = this.bindings.attach(
      context,
      (name, value) => {
        if (name === "EventTarget") window = becomeEventTarget(global, realmSide.makeWindow(value), web.membrane);
        whenBuilt.get(name)?.(value);
      },
      // The realm's microtasks run as a microtask of the carrier's own queue: after what Deno queued
      // before, before what it queues after. Never for an eval that has ended.
      () => {
        if (checkpointQueued) return;
        checkpointQueued = true;
        queueMicrotask(() => {
          checkpointQueued = false;
          if (liveScope(slot)) runMicrotasks(context);
        });
      },
    );
    for (const name of this.bindings.names) makers.set(name, () => web.resolve(name));
    makers.set("performance", () => web.membrane.toRealm(this.performanceApi));
    makers.set("Window", () => {
      web.resolve("EventTarget");
      return window;
    });
    for (const name of GLOBAL_EVENT_METHODS) {
      makers.set(name, () => {
        web.resolve("EventTarget");
        return global[name];
      });
    }
    const [realmSide, installChannels] = this.helpersScript.runInContext(context) as [RealmSide, typeof installRealmExtras];
    let channels: Record<string, unknown> | undefined;
    for (const name of CHANNEL_APIS) {
      makers.set(name, () => {
        channels ??= makeChannels(realmSide, web, installChannels, makers.get("setTimeout"));
        return channels[name];
      });
    }
    let reporting = false;
    /** Dispatches a cancelable event of the realm's own on its global; true if a listener cancelled it. */
    const dispatch = (type: "error" | "unhandledrejection", init: Record<string, unknown>): boolean => {
      const Ctor = web.resolve(type === "error" ? "ErrorEvent" : "PromiseRejectionEvent") as new (type: string, init: unknown) => object;
      web.resolve("EventTarget");
      const event = new Ctor(type, web.membrane.toRealm({ ...init, cancelable: true }));
      const outerEvent = web.membrane.toOuter(event);
      Reflect.apply(outerDispatchEvent, web.membrane.toOuter(global), [outerEvent]);
      return Reflect.apply(outerDefaultPrevented, outerEvent, []) === true;
    };
    const helpers: RealmHelpers = {
      makeError: realmSide.makeError,
      errorClass: realmSide.errorClass,
      adopt: realmSide.adopt,
      makeQueueMicrotask: realmSide.makeQueueMicrotask,
      get membrane() {
        return web.membrane;
      },
      outerOf: (value) => (web.hasMembrane ? web.membrane.outerOf(value) : undefined),
      lazyGlobal: (name, make) => void makers.set(name, make),
      onBuilt: (name, callback) => void whenBuilt.set(name, callback),
      runMicrotasks: () => runMicrotasks(context),
      reportError(error) {
        const scope = liveScope(slot);
        if (!scope) return;
        // An error listener that throws is not reported again: the error ends the eval.
        if (!reporting) {
          reporting = true;
          try {
            if (dispatch("error", { error, message: uncaughtMessage(error, helpers.outerOf(error)) })) return;
          } catch {
            // The error event could not be made: the error itself ends the eval.
          } finally {
            reporting = false;
          }
        }
        scope.fail(describeThrown(helpers.outerOf(error) ?? error, scope, scope.filename));
      },
      rejectionUnhandled(promise, reason) {
        if (!liveScope(slot)) return;
        try {
          dispatch("unhandledrejection", { promise, reason });
        } catch {
          // Nothing to report to: the rejection stays unhandled, as before.
        }
      },
    };
    lazyReportError(makers, helpers);
    defineGlobal(global, "self", global);
    this.installCapabilities(global, slot, helpers);
    realmSide.defineLazy([...makers.keys()], (name) => {
      const value = makers.get(name)?.();
      if (!GLOBAL_EVENT_METHODS.includes(name)) defineGlobal(global, name, value);
      return value;
    });
    const realm = { context, global, helpers, slot };
    this.byRoot.set(realmSide.objectPrototype, realm);
    return realm;
  }
}

/**
 * The global object is an EventTarget, as in browsers, workers and Deno: once the realm's
 * EventTarget exists, the global's prototype becomes Window.prototype (whose inherited
 * EventTarget methods then replace the global's lazy ones) and it stands for an outer EventTarget
 * of its own.
 */
function becomeEventTarget(global: Record<string, unknown>, window: { prototype: object }, membrane: Membrane): { prototype: object } {
  membrane.pair(global, new EventTarget());
  for (const name of GLOBAL_EVENT_METHODS) {
    if (Object.getOwnPropertyDescriptor(global, name)?.get) delete global[name];
  }
  Object.setPrototypeOf(global, window.prototype);
  return window;
}

/** `reportError(e)`: the standard global that reports an error as if it were uncaught. */
function lazyReportError(makers: Map<string, () => unknown>, helpers: RealmHelpers): void {
  const reportError = (error: unknown): void => helpers.reportError(error);
  Object.defineProperty(reportError, "name", { value: "reportError" });
  makers.set("reportError", () => helpers.membrane.hostFunction(reportError));
}

/** An error event's message, as Deno words it: "Uncaught TypeError: …". */
function uncaughtMessage(error: unknown, outer: unknown): string {
  const shown = outer ?? error;
  try {
    return types.isNativeError(shown) || shown instanceof DOMException ? `Uncaught ${String(shown)}` : "Uncaught";
  } catch {
    return "Uncaught";
  }
}
