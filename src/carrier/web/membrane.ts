/**
 * The membrane between a realm and the carrier's outer realm, where Deno's Web APIs live.
 *
 * `createMembrane` is not run by the carrier: its source text is compiled into every realm and run
 * there (see bindings.ts), so every object it makes — wrappers, copies, errors, promises,
 * functions — is the realm's own. It must therefore be self-contained (no module-level names) and
 * capture the realm's intrinsics before any user code runs.
 *
 * The rules:
 * - Outer → realm (`toRealm`): results, thrown errors, promise values and callback arguments.
 *   Platform objects (a URL, a ReadableStream, a DOMException) become realm wrappers whose
 *   prototype is the realm's interface prototype; errors become the realm's TypeError/RangeError…;
 *   promises become realm promises; ArrayBuffers move into the realm (transferred, no copy) and
 *   views are rebuilt over them; arrays, plain objects, Maps… are copied. The same outer object
 *   always gives the same realm object. Nothing outer ever reaches user code.
 * - Realm → outer (`toOuter`): arguments. Wrappers give back their outer object; functions become
 *   callbacks that re-home what outer code passes them; ordinary objects (dictionaries, arrays,
 *   class instances) are seen through a read-only proxy that does the same to their members;
 *   buffers, promises and errors pass as they are. The same realm object always gives the same
 *   outer view, and an outer view always maps back to its realm object.
 */

/** Everything a membrane needs from the outer realm. Handed to realm setup code, never to user code. */
export interface OuterFacts {
  /** The outer realm's intrinsics, as `intrinsicsOf` lists them: each stands for the realm's own. */
  readonly intrinsics: readonly object[];
  readonly objectPrototype: object;
  readonly isProxy: (value: unknown) => boolean;
  /** Realm values handed to outer code as they are (buffers, promises, errors…): outer code needs their internal slots. */
  readonly isPassThrough: (value: unknown) => boolean;
  /**
   * What an outer object whose prototype is `prototype` is: "interface", "plain", "array", "Map",
   * "Set", "promise", "error", "ArrayBuffer", "DataView", a typed array's or a boxed primitive's
   * class name, "Date", "RegExp"; undefined for any other prototype (the realm's, say).
   */
  readonly kindOf: (prototype: object) => string | undefined;
  /** Copies of Date, RegExp, Map, Set and boxed primitives (what structuredClone makes) need their kind. */
  readonly cloneKind: (value: unknown) => string;
  /** Outer `promise.then`, its reactions running on the carrier's own queue (in order with Deno's). */
  readonly then: (promise: unknown, onValue: (value: unknown) => void, onError: (error: unknown) => void) => void;
  /** The name of the Web API interface whose prototype this is, if it is one. */
  readonly interfaceOf: (prototype: unknown) => string | undefined;
}

/** One realm's membrane. Only the carrier and the realm's binding code hold it. */
export interface Membrane {
  toRealm(value: unknown): unknown;
  toOuter(value: unknown): unknown;
  /** The outer object a realm wrapper stands for, if it is one. */
  outerOf(value: unknown): unknown;
  /** Makes `realmObject` stand for `outerObject` (a wrapper made by a realm constructor, the realm's global). */
  pair(realmObject: object, outerObject: object): void;
  /** Registers a realm prototype as the mirror of an outer one (for the realm's interface objects). */
  mirrorAs(outerPrototype: object, realmPrototype: object): void;
  /** Calls an outer function on behalf of realm code: arguments to outer, result and errors to the realm. */
  call(fn: unknown, self: unknown, args: ArrayLike<unknown>): unknown;
  /**
   * A realm function that hands its arguments to the carrier's `fn` as they are (the console
   * formats user values itself); its result and errors still cross to the realm.
   */
  hostFunction(fn: (...args: unknown[]) => unknown): unknown;
  /** Calls an outer method on the outer object a realm wrapper `self` stands for. */
  method(fn: unknown, self: unknown, args: ArrayLike<unknown>): unknown;
  /** Calls an outer function with an outer `this` (a static method's class). */
  invoke(fn: unknown, outerSelf: unknown, args: ArrayLike<unknown>): unknown;
  /** Calls structuredClone: wrappers inside the value become their outer objects, nothing else is touched. */
  clone(fn: unknown, args: ArrayLike<unknown>): unknown;
  /**
   * A realm copy of an outer view that outer code keeps writing into (a BYOB request's view), and
   * the step that copies what realm code wrote back before outer code reads it.
   */
  lend(getter: unknown, self: unknown): unknown;
  giveBack(getter: unknown, respond: unknown, self: unknown, args: ArrayLike<unknown>): unknown;
  /** The realm prototype standing for an outer one. */
  realmPrototypeOf(outerPrototype: object): object | null;
  /** Constructs an outer object for a realm constructor call and pairs it with `self`. */
  construct(ctor: unknown, self: object, newTarget: unknown, args: ArrayLike<unknown>, name: string): object;
  /** What an outer method gets as `this` for the realm value `self` (see the function: wrappers give their outer object). */
  outerThis(self: unknown): unknown;
  /** Re-throws an outer error as the realm's. */
  rethrow(error: unknown): never;
}

/**
 * The intrinsics (prototypes and constructors) that both realms have, in a fixed order: run in the
 * outer realm and in each realm, the two lists pair up. Self-contained, like createMembrane.
 */
export function intrinsicsOf(G: typeof globalThis): object[] {
  "use strict";
  const proto = Reflect.getPrototypeOf;
  const found: object[] = [G.Object.prototype, G.Function.prototype, G.Array.prototype, G.Promise.prototype, G.Error.prototype,
    proto(G.Uint8Array.prototype) as object, G.ArrayBuffer.prototype];
  for (const name of ["TypeError", "RangeError", "SyntaxError", "ReferenceError", "EvalError", "URIError"]) {
    found.push((G as unknown as Record<string, { prototype: object }>)[name]!.prototype);
  }
  found.push(proto(proto([][Symbol.iterator]()) as object) as object);
  found.push(proto(proto((async function* () {}).prototype as object) as object) as object);
  found.push(proto([][Symbol.iterator]()) as object);
  return found;
}

/**
 * `demand(name)` makes the realm's interface `name` (which registers its prototype through
 * `mirrorAs`): interfaces are made when first needed, also when an object of one first crosses.
 * `checkpoint()` has the realm's microtasks run soon, in order with the carrier's: called when
 * outer code called into the realm (a callback) or settled one of its promises, as HTML's event
 * loop runs microtasks after each callback.
 */
export function createMembrane(
  G: typeof globalThis,
  facts: OuterFacts,
  intrinsics: readonly object[],
  demand: (name: string) => unknown,
  checkpoint: () => void,
): Membrane {
  "use strict";
  const { Reflect: R, Object: O, WeakMap: RealmWeakMap, Proxy: RealmProxy, Promise: RealmPromise, Array: RealmArray } = G;
  const apply = R.apply;
  const getPrototypeOf = R.getPrototypeOf;
  const setPrototypeOf = R.setPrototypeOf;
  const defineProperty = R.defineProperty;
  const getOwnPropertyDescriptor = R.getOwnPropertyDescriptor;
  const ownKeys = R.ownKeys;
  const getOwnPropertyNames = O.getOwnPropertyNames;
  const reflectGet = R.get;
  const construct = R.construct;
  const create = O.create;
  const weakGet = G.WeakMap.prototype.get;
  const weakSet = G.WeakMap.prototype.set;
  const transfer = G.ArrayBuffer.prototype.transfer;
  const uint8Slice = G.Uint8Array.prototype.slice;
  /** Buffers up to this size are copied into the realm rather than moved. */
  const COPY_LIMIT = 64 * 1024;
  const realmObjectPrototype = G.Object.prototype;
  const outerObjectPrototype = facts.objectPrototype;
  const { isProxy, isPassThrough, cloneKind, kindOf, then, interfaceOf } = facts;

  const errors: Record<string, ErrorConstructor> = {
    Error: G.Error, TypeError: G.TypeError, RangeError: G.RangeError, SyntaxError: G.SyntaxError,
    ReferenceError: G.ReferenceError, EvalError: G.EvalError, URIError: G.URIError,
  };
  const views: Record<string, new (...args: unknown[]) => object> = {};
  for (const name of ["Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array", "Uint32Array",
    "Float16Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array", "DataView"]) {
    const ctor = (G as unknown as Record<string, unknown>)[name];
    if (typeof ctor === "function") views[name] = ctor as (typeof views)[string];
  }
  const clones: Record<string, (value: { valueOf(): unknown }) => object> = {
    Date: (value) => new G.Date(value as unknown as number),
    RegExp: (value) => { const re = value as unknown as RegExp; return new G.RegExp(re.source, re.flags); },
    Boolean: (value) => G.Object(value.valueOf()),
    Number: (value) => G.Object(value.valueOf()),
    String: (value) => G.Object(value.valueOf()),
    BigInt: (value) => G.Object(value.valueOf()),
  };

  const notPlatformObject = O.freeze(create(null));
  /** outer → realm and realm → outer, both directions of every pairing. */
  const realmOf = new RealmWeakMap<object, unknown>();
  const outerOfMap = new RealmWeakMap<object, unknown>();
  /** outer prototype → realm prototype. */
  const mirrors = new RealmWeakMap<object, object>();

  const isObject = (value: unknown): value is object => (typeof value === "object" && value !== null) || typeof value === "function";

  function pair(realmObject: object, outerObject: object): void {
    apply(weakSet, realmOf, [outerObject, realmObject]);
    apply(weakSet, outerOfMap, [realmObject, outerObject]);
  }

  /**
   * For copies (arrays, plain objects, errors, moved buffers…): the same outer object gives the
   * same copy, but a copy passed back is seen as what it is now, not as its (stale or detached)
   * original.
   */
  function remember(copy: object, outerObject: object): void {
    apply(weakSet, realmOf, [outerObject, copy]);
  }

  /** The last object on `value`'s prototype chain: tells which realm made it. */
  function rootOf(value: object): object {
    let current = value;
    for (;;) {
      const next = getPrototypeOf(current) as object | null;
      if (next === null) return current;
      current = next;
    }
  }

  // Wrappers of outer functions: realm functions that call them across the membrane.
  function realmFunction(outer: (...args: unknown[]) => unknown): unknown {
    // A method, like the functions Web APIs hand out: no `prototype`, not a constructor.
    const wrapper = {
      wrapper(this: unknown, ...args: unknown[]) {
        return call(outer, this, args);
      },
    }.wrapper;
    copyNameAndLength(wrapper, outer);
    pair(wrapper, outer);
    return wrapper;
  }

  function copyNameAndLength(target: object, source: object): void {
    for (const key of ["length", "name"]) {
      let value: unknown;
      try {
        value = reflectGet(source, key);
      } catch {
        continue;
      }
      if (typeof value === "number" || typeof value === "string") defineProperty(target, key, { value, configurable: true });
    }
  }

  // Outer prototypes that no realm interface object names (iterators, internal classes) get a
  // mirror of their own when one of their objects first crosses.
  function mirrorOf(outerPrototype: object | null): object | null {
    if (outerPrototype === null) return null;
    const known = apply(weakGet, mirrors, [outerPrototype]) as object | undefined;
    if (known) return known;
    const name = interfaceOf(outerPrototype);
    if (name !== undefined) {
      demand(name);
      return apply(weakGet, mirrors, [outerPrototype]) as object;
    }
    const mirror = create(mirrorOf(getPrototypeOf(outerPrototype) as object | null));
    apply(weakSet, mirrors, [outerPrototype, mirror]);
    for (const key of ownKeys(outerPrototype)) {
      if (key === "constructor" || (typeof key === "symbol" && key !== G.Symbol.iterator && key !== G.Symbol.asyncIterator && key !== G.Symbol.toStringTag)) continue;
      const descriptor = getOwnPropertyDescriptor(outerPrototype, key)!;
      // The outer prototype is frozen; its mirror is the realm's to patch, as any prototype is.
      descriptor.configurable = true;
      if ("value" in descriptor) {
        descriptor.value = toRealm(descriptor.value);
        descriptor.writable = true;
      }
      else {
        if (descriptor.get) descriptor.get = toRealm(descriptor.get) as () => unknown;
        if (descriptor.set) descriptor.set = toRealm(descriptor.set) as (value: unknown) => void;
      }
      defineProperty(mirror, key, descriptor);
    }
    return mirror;
  }

  function realmError(outer: object): Error {
    let name = "Error";
    let message: string | undefined;
    try {
      name = String(reflectGet(outer, "name"));
      // (An error made without a message has no own `message`: neither has its copy.)
      if (getOwnPropertyDescriptor(outer, "message")) message = String(reflectGet(outer, "message"));
    } catch {
      // An outer error is Deno's own; if reading it fails, a plain Error still says something.
    }
    const Ctor = errors[name] ?? G.Error;
    const error = message === undefined ? new Ctor() : new Ctor(message);
    if (Ctor === G.Error && name !== "Error") defineProperty(error, "name", { value: name, writable: true, configurable: true });
    return error;
  }

  function adoptPromise(outer: unknown): Promise<unknown> {
    return new RealmPromise((resolve, reject) => {
      then(
        outer,
        (value) => {
          resolve(toRealm(value));
          checkpoint();
        },
        (error) => {
          reject(toRealm(error));
          checkpoint();
        },
      );
    });
  }

  /** A copy made by the realm's own Uint8Array (an outer buffer's slice() would make an outer one). */
  function copyBuffer(outer: ArrayBuffer): ArrayBuffer {
    if (!outer.resizable) return (apply(uint8Slice, new uint8(outer), []) as Uint8Array).buffer as ArrayBuffer;
    const copy = new G.ArrayBuffer(outer.byteLength, { maxByteLength: outer.maxByteLength });
    new uint8(copy).set(new uint8(outer));
    return copy;
  }

  function adoptBuffer(outer: ArrayBuffer): ArrayBuffer {
    // Transfer moves the bytes into a new ArrayBuffer of this realm without copying them; a buffer
    // that cannot be detached (Wasm memory, say) is copied instead, as is a small one.
    try {
      if (outer.byteLength <= COPY_LIMIT) return copyBuffer(outer);
      return apply(transfer, outer, []) as ArrayBuffer;
    } catch {
      try {
        return copyBuffer(outer);
      } catch {
        return new G.ArrayBuffer(0);
      }
    }
  }

  function toRealm(value: unknown): unknown {
    if (!isObject(value)) return value;
    const known = apply(weakGet, realmOf, [value]);
    if (known !== undefined) return known;
    if (isProxy(value)) return value;
    if (typeof value === "function") return rootOf(value) === outerObjectPrototype ? realmFunction(value as (...args: unknown[]) => unknown) : value;
    const prototype = getPrototypeOf(value) as object | null;
    // Outer objects are recognized by their prototype (outer code never changes one): one lookup.
    const kind = prototype === null ? undefined : kindOf(prototype);
    if (kind === undefined) {
      // The realm's own value (or one of no realm): it stays as it is. Else an object of a class
      // the carrier does not name (an iterator, say): a wrapper with a mirrored prototype.
      return prototype === null || rootOf(prototype) !== outerObjectPrototype ? value : wrap(value, prototype);
    }
    let copy: object;
    switch (kind) {
      case "interface":
        return wrap(value, prototype!);
      case "plain": {
        // A plain outer object (a read result, a JWK, an algorithm): copied, members re-homed.
        const plain: Record<PropertyKey, unknown> = {};
        remember(plain, value);
        for (const key of ownKeys(value)) {
          const descriptor = getOwnPropertyDescriptor(value, key);
          if (descriptor && "value" in descriptor && descriptor.enumerable) plain[key as string] = toRealm(descriptor.value);
        }
        return plain;
      }
      case "array": {
        const array = new RealmArray((value as unknown[]).length);
        remember(array, value);
        // Every own enumerable property, not only the elements (structuredClone keeps them all).
        for (const key of ownKeys(value)) {
          const descriptor = getOwnPropertyDescriptor(value, key)!;
          if ("value" in descriptor && descriptor.enumerable) (array as unknown as Record<PropertyKey, unknown>)[key] = toRealm(descriptor.value);
        }
        return array;
      }
      case "Map":
      case "Set": {
        const collection = kind === "Map" ? new G.Map() : new G.Set();
        remember(collection, value);
        for (const entry of value as Map<unknown, unknown> | Set<unknown>) {
          if (kind === "Map") (collection as Map<unknown, unknown>).set(toRealm((entry as [unknown, unknown])[0]), toRealm((entry as [unknown, unknown])[1]));
          else (collection as Set<unknown>).add(toRealm(entry));
        }
        return collection;
      }
      case "promise":
        copy = adoptPromise(value);
        break;
      case "error":
        copy = realmError(value);
        break;
      case "ArrayBuffer":
        copy = adoptBuffer(value as ArrayBuffer);
        break;
      case "DataView": {
        const view = value as DataView;
        return new views.DataView!(toRealm(view.buffer) as ArrayBuffer, view.byteOffset, view.byteLength);
      }
      default: {
        const clone = clones[kind];
        if (clone) {
          copy = clone(value as { valueOf(): unknown });
          break;
        }
        const Ctor = views[kind];
        if (!Ctor) return wrap(value, prototype!);
        const view = value as Uint8Array;
        return new Ctor(toRealm(view.buffer) as ArrayBuffer, view.byteOffset, view.length);
      }
    }
    remember(copy, value);
    return copy;
  }

  function wrap(value: object, prototype: object): object {
    const wrapper = create(mirrorOf(prototype));
    pair(wrapper, value);
    adoptOwnProperties(wrapper, value);
    return wrapper;
  }

  /**
   * A few platform objects carry standard attributes as own properties (a MessageEvent's `data`, a
   * ProgressEvent's `loaded`, a DOMException's `stack`): the wrapper gets them too, re-homed.
   */
  function adoptOwnProperties(wrapper: object, outer: object): void {
    for (const key of getOwnPropertyNames(outer)) {
      const descriptor = getOwnPropertyDescriptor(outer, key)!;
      let value: unknown;
      try {
        value = "value" in descriptor ? descriptor.value : reflectGet(outer, key);
      } catch {
        continue;
      }
      defineProperty(wrapper, key, {
        value: toRealm(value),
        writable: "value" in descriptor ? descriptor.writable : true,
        enumerable: descriptor.enumerable,
        configurable: true,
      });
    }
  }

  // What outer code sees of a realm object: reads re-homed for the outer side, writes refused (outer
  // code never writes into user objects; refusing makes sure no outer object is left in one).
  const readOnlyView: ProxyHandler<object> = {
    get(target, key) {
      const descriptor = getOwnPropertyDescriptor(target, key);
      const value = reflectGet(target, key, target);
      // A frozen data property must read as itself (a proxy invariant).
      if (descriptor && "value" in descriptor && !descriptor.writable && !descriptor.configurable) return value;
      return toOuter(value);
    },
    set: () => false,
    defineProperty: () => false,
    deleteProperty: () => false,
    setPrototypeOf: () => false,
  };

  function toOuter(value: unknown): unknown {
    if (!isObject(value)) return value;
    const known = apply(weakGet, outerOfMap, [value]);
    if (known !== undefined) return known;
    if (isProxy(value)) return value;
    let outer: object;
    if (typeof value === "function") {
      const callback = value as (...args: unknown[]) => unknown;
      outer = function (this: unknown, ...args: unknown[]) {
        const self = toRealm(this);
        for (let i = 0; i < args.length; i++) args[i] = toRealm(args[i]);
        try {
          return toOuter(apply(callback, self, args));
        } finally {
          checkpoint();
        }
      };
      // Outer code may show it (the console does): it should look like the user's function.
      copyNameAndLength(outer, callback);
    } else if (isPassThrough(value)) {
      return value;
    } else {
      outer = new RealmProxy(value, readOnlyView);
    }
    pair(value, outer);
    return outer;
  }

  function toOuterArgs(args: ArrayLike<unknown>): unknown[] {
    const outer: unknown[] = [];
    for (let i = 0; i < args.length; i++) outer[i] = toOuter(args[i]);
    return outer;
  }

  function rethrow(error: unknown): never {
    throw toRealm(error);
  }

  function invoke(fn: unknown, outerSelf: unknown, args: ArrayLike<unknown>): unknown {
    let result: unknown;
    try {
      result = apply(fn as (...a: unknown[]) => unknown, outerSelf, toOuterArgs(args));
    } catch (error) {
      rethrow(error);
    }
    return toRealm(result);
  }

  function call(fn: unknown, self: unknown, args: ArrayLike<unknown>): unknown {
    return invoke(fn, toOuter(self), args);
  }

  function forClone(value: unknown, seen = new RealmWeakMap<object, unknown>()): unknown {
    if (!isObject(value) || typeof value === "function" || isProxy(value)) return value;
    const outer = apply(weakGet, outerOfMap, [value]);
    if (outer !== undefined && typeof outer !== "function" && !isProxy(outer)) return outer;
    const done = apply(weakGet, seen, [value]);
    if (done !== undefined) return done;
    apply(weakSet, seen, [value, value]);
    const kind = cloneKind(value);
    if (kind === "Map" || kind === "Set") {
      const entries: unknown[][] = [];
      let changed = false;
      for (const entry of value as Map<unknown, unknown>) {
        const pairOf = kind === "Map" ? (entry as unknown as unknown[]) : [entry];
        const mapped = pairOf.map((item) => forClone(item, seen));
        changed ||= mapped.some((item, i) => item !== pairOf[i]);
        entries.push(mapped);
      }
      if (!changed) return value;
      const copy = kind === "Map" ? new G.Map(entries as [unknown, unknown][]) : new G.Set(entries.map((e) => e[0]));
      apply(weakSet, seen, [value, copy]);
      return copy;
    }
    if (isPassThrough(value)) return value;
    // Only own data properties are looked at (getters run once, by the serializer itself).
    let copy: Record<PropertyKey, unknown> | undefined;
    for (const key of ownKeys(value)) {
      const descriptor = getOwnPropertyDescriptor(value, key);
      if (!descriptor || !("value" in descriptor) || !descriptor.enumerable) continue;
      const mapped = forClone(descriptor.value, seen);
      if (mapped === descriptor.value) continue;
      if (!copy) {
        copy = G.Array.isArray(value) ? new RealmArray((value as unknown[]).length) as unknown as Record<PropertyKey, unknown> : {};
        for (const each of ownKeys(value)) {
          const d = getOwnPropertyDescriptor(value, each);
          if (d && "value" in d && d.enumerable) copy[each as string] = d.value;
        }
        apply(weakSet, seen, [value, copy]);
      }
      copy[key as string] = mapped;
    }
    return copy ?? value;
  }

  const lent = new RealmWeakMap<object, Uint8Array>();
  const uint8 = views.Uint8Array as unknown as new (...a: unknown[]) => Uint8Array;

  function rawRead(getter: unknown, self: unknown): unknown {
    try {
      return apply(getter as () => unknown, outerThis(self), []);
    } catch (error) {
      rethrow(error);
    }
  }

  function lend(getter: unknown, self: unknown): unknown {
    const outerView = rawRead(getter, self);
    if (!isObject(outerView)) return outerView;
    const known = apply(weakGet, lent, [outerView]);
    if (known) return known;
    const view = outerView as Uint8Array;
    // The whole buffer, so that offsets and the buffer's length read as Deno's do.
    const copy = new uint8(copyBuffer(view.buffer as ArrayBuffer), view.byteOffset, view.byteLength);
    apply(weakSet, lent, [outerView, copy]);
    apply(weakSet, outerOfMap, [copy, outerView]);
    return copy;
  }

  function giveBack(getter: unknown, respond: unknown, self: unknown, args: ArrayLike<unknown>): unknown {
    const outerView = rawRead(getter, self);
    const copy = isObject(outerView) ? (apply(weakGet, lent, [outerView]) as Uint8Array | undefined) : undefined;
    if (copy && copy.byteLength > 0) {
      const view = outerView as Uint8Array;
      new uint8(view.buffer, view.byteOffset, view.byteLength).set(copy);
    }
    const result = invoke(respond, outerThis(self), args);
    // Responding hands the buffer over, as Deno's own view is: the copy is detached too.
    if (copy && !(copy.buffer as ArrayBuffer).detached) apply(transfer, copy.buffer, []);
    return result;
  }

  /**
   * What Deno's method gets as `this`: the platform object behind a wrapper. Anything else is left
   * to Deno's own brand check (a TypeError, or a rejected promise for a promise-returning method,
   * as WebIDL says) on a stand-in that carries nothing: no realm object is handed over to be
   * written into.
   */
  function outerThis(self: unknown): unknown {
    // WebIDL: an operation called without a this value acts on the global object.
    if (self === undefined || self === null) self = G;
    if (!isObject(self)) return self;
    const outer = apply(weakGet, outerOfMap, [self]);
    return outer === undefined || typeof outer === "function" || isProxy(outer) ? notPlatformObject : outer;
  }

  for (let i = 0; i < intrinsics.length; i++) {
    const outer = facts.intrinsics[i];
    const own = intrinsics[i];
    if (outer === undefined || own === undefined) continue;
    apply(weakSet, mirrors, [outer, own]);
    pair(own, outer);
  }

  return {
    toRealm,
    toOuter,
    outerOf(value) {
      const outer = isObject(value) ? apply(weakGet, outerOfMap, [value]) : undefined;
      return outer === undefined || typeof outer === "function" || isProxy(outer) ? undefined : outer;
    },
    pair,
    mirrorAs(outerPrototype, realmPrototype) {
      apply(weakSet, mirrors, [outerPrototype, realmPrototype]);
    },
    call,
    method: (fn, self, args) => invoke(fn, outerThis(self), args),
    hostFunction(fn) {
      const wrapper = function (...args: unknown[]) {
        let result: unknown;
        try {
          result = apply(fn, undefined, args);
        } catch (error) {
          rethrow(error);
        }
        return toRealm(result);
      };
      copyNameAndLength(wrapper, fn);
      return wrapper;
    },
    invoke,
    clone(fn, args) {
      let result: unknown;
      try {
        result = apply(fn as (...a: unknown[]) => unknown, undefined, [forClone(args[0]), toOuter(args[1])]);
      } catch (error) {
        rethrow(error);
      }
      return toRealm(result);
    },
    lend,
    giveBack,
    realmPrototypeOf: (outerPrototype) => mirrorOf(outerPrototype),
    construct(ctor, self, newTarget, args, name) {
      if (newTarget === undefined) throw new G.TypeError(`Failed to construct '${name}': Please use the 'new' operator, this object constructor cannot be called as a function.`);
      let outer: object;
      try {
        outer = construct(ctor as new (...a: unknown[]) => object, toOuterArgs(args));
      } catch (error) {
        rethrow(error);
      }
      pair(self, outer);
      adoptOwnProperties(self, outer);
      return self;
    },
    outerThis,
    rethrow,
  };
}
