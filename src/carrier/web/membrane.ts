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
  /** Outer `promise.then`, its reactions running on the carrier's own queue (in order with Deno's). */
  readonly then: (promise: unknown, onValue: (value: unknown) => void, onError: (error: unknown) => void) => void;
  /** The name of the Web API interface whose prototype this is, if it is one. */
  readonly interfaceOf: (prototype: unknown) => string | undefined;
  /** The outer realm's Reflect.getOwnPropertyDescriptor. */
  readonly describe: (target: object, key: PropertyKey) => PropertyDescriptor | undefined;
  /** Copies bytes between buffers of either realm, on the outer side (a realm view never holds an outer buffer). */
  readonly copyBytes: (target: ArrayBuffer, targetOffset: number, source: ArrayBuffer, sourceOffset: number, length: number) => void;
  /**
   * structuredClone's value as the outer serializer must see it: the same value if it holds no
   * platform object of the realm, else a copy (made on the outer side) with each one's outer object.
   */
  readonly forClone: (value: unknown, outerOf: (value: unknown) => unknown) => unknown;
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
export function createMembrane(G: typeof globalThis): MembraneFactory {
  "use strict";
  // Stage one, run when the realm is made, before any user code: everything the membrane uses of
  // the realm is taken now. (User code may replace Reflect, WeakMap.prototype.get or
  // Array.isArray before the membrane is first needed; it must never get to see what crosses.)
  const { Reflect: R, Object: O, WeakMap: RealmWeakMap, Proxy: RealmProxy, Promise: RealmPromise, Array: RealmArray } = G;
  const apply = R.apply;
  const getPrototypeOf = R.getPrototypeOf;
  const setPrototypeOf = R.setPrototypeOf;
  const defineProperty = R.defineProperty;
  const ownKeys = R.ownKeys;
  const getOwnPropertyNames = O.getOwnPropertyNames;
  const reflectGet = R.get;
  const construct = R.construct;
  const create = O.create;
  const weakGet = G.WeakMap.prototype.get;
  const weakSet = G.WeakMap.prototype.set;
  const transfer = G.ArrayBuffer.prototype.transfer;
  /** Buffers up to this size are copied into the realm rather than moved. */
  const COPY_LIMIT = 64 * 1024;
  const realmObjectPrototype = G.Object.prototype;
  const freeze = O.freeze;
  const isArray = G.Array.isArray;
  const { iterator: iteratorSymbol, asyncIterator: asyncIteratorSymbol, toStringTag: toStringTagSymbol } = G.Symbol;
  const { Error: RealmError, TypeError: RealmTypeError } = G;

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
  const { Date: RealmDate, RegExp: RealmRegExp, Object: toObject, Map: RealmMap, Set: RealmSet, ArrayBuffer: RealmArrayBuffer } = G;
  const mapSet = G.Map.prototype.set;
  const setAdd = G.Set.prototype.add;
  // (Outer values are read only through the outer realm's own, frozen, methods.)
  const clones: Record<string, (value: { valueOf(): unknown }) => object> = {
    Date: (value) => new RealmDate(value as unknown as number),
    RegExp: (value) => { const re = value as unknown as RegExp; return new RealmRegExp(re.source, re.flags); },
    Boolean: (value) => toObject(value.valueOf()),
    Number: (value) => toObject(value.valueOf()),
    String: (value) => toObject(value.valueOf()),
    BigInt: (value) => toObject(value.valueOf()),
  };
  /** Defines own data properties: no setter or prototype of the realm (user code's) takes part. */
  const put = (target: object, key: PropertyKey, value: unknown): void => {
    defineProperty(target, key, { __proto__: null, value, writable: true, enumerable: true, configurable: true } as PropertyDescriptor);
  };

  // Stage two, when the realm first needs its membrane.
  return (facts, intrinsics, demand, checkpoint) => {
  const outerObjectPrototype = facts.objectPrototype;
  // Descriptors are made by the outer realm: reading `value` or `get` from one never reaches user
  // code on the realm's Object.prototype (and needs no prototype surgery to be sure).
  const getOwnPropertyDescriptor = facts.describe;
  const { isProxy, isPassThrough, kindOf, then, interfaceOf, copyBytes, forClone } = facts;
  const notPlatformObject = freeze(create(null));
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
    const keys = ["length", "name"];
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      let value: unknown;
      try {
        value = reflectGet(source, key);
      } catch {
        continue;
      }
      if (typeof value === "number" || typeof value === "string") defineProperty(target, key, { __proto__: null, value, configurable: true } as PropertyDescriptor);
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
    const keys = ownKeys(outerPrototype);
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      if (key === "constructor" || (typeof key === "symbol" && key !== iteratorSymbol && key !== asyncIteratorSymbol && key !== toStringTagSymbol)) continue;
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
    const Ctor = errors[name] ?? RealmError;
    const error = message === undefined ? new Ctor() : new Ctor(message);
    if (Ctor === RealmError && name !== "Error") defineProperty(error, "name", { __proto__: null, value: name, writable: true, configurable: true } as PropertyDescriptor);
    return error;
  }

  function adoptPromise(outer: unknown): Promise<unknown> {
    return new RealmPromise((resolve, reject) => {
      then(
        outer,
        (value) => {
          try {
            resolve(toRealmResult(value));
          } catch (error) {
            reject(realmFailure(error));
          }
          checkpoint();
        },
        (error) => {
          reject(realmFailure(error));
          checkpoint();
        },
      );
    });
  }

  /** A realm copy of an outer buffer; the bytes are copied by the outer side (no realm view of an outer buffer ever exists). */
  function copyBuffer(outer: ArrayBuffer): ArrayBuffer {
    const length = outer.byteLength;
    const copy = outer.resizable ? new RealmArrayBuffer(length, { __proto__: null, maxByteLength: outer.maxByteLength } as { maxByteLength: number }) : new RealmArrayBuffer(length);
    copyBytes(copy, 0, outer, 0, length);
    return copy;
  }

  /**
   * A buffer is copied into the realm. One that is a Web API's whole result (`arrayBuffer()`, a
   * digest) is Deno's no longer and, if large, is moved without a copy instead; a buffer inside a
   * result may be shared with views there (a moved buffer leaves them detached, offsets unreadable).
   */
  function adoptBuffer(outer: ArrayBuffer, mayMove: boolean): ArrayBuffer {
    try {
      if (!mayMove || outer.byteLength <= COPY_LIMIT) return copyBuffer(outer);
      return apply(transfer, outer, []) as ArrayBuffer;
    } catch {
      try {
        return copyBuffer(outer);
      } catch {
        return new RealmArrayBuffer(0);
      }
    }
  }

  /** toRealm for a Web API's whole result (see adoptBuffer). */
  function toRealmResult(value: unknown): unknown {
    if (!isObject(value) || typeof value === "function" || isProxy(value) || apply(weakGet, realmOf, [value]) !== undefined) return toRealm(value);
    if (kindOf(getPrototypeOf(value) as object) !== "ArrayBuffer") return toRealm(value);
    const buffer = adoptBuffer(value as ArrayBuffer, true);
    remember(buffer, value);
    return buffer;
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
      // The realm's own values come back through the pairings or have the realm's Object.prototype
      // at the root; anything else is outer: an object of a class the carrier does not name (an
      // iterator, say) gets a wrapper with a mirrored prototype, one without a prototype a copy.
      if (prototype !== null) return rootOf(prototype) === realmObjectPrototype ? value : wrap(value, prototype);
      return copyInto(create(null) as object, value);
    }
    let copy: object;
    switch (kind) {
      case "interface":
        return wrap(value, prototype!);
      case "plain": {
        // A plain outer object (a read result, a JWK, an algorithm): copied, members re-homed.
        return copyInto({}, value);
      }
      case "array": {
        // Every own enumerable property, not only the elements (structuredClone keeps them all).
        return copyInto(new RealmArray((value as unknown[]).length), value);
      }
      case "Map":
      case "Set": {
        const collection = kind === "Map" ? new RealmMap() : new RealmSet();
        remember(collection, value);
        for (const entry of value as Map<unknown, unknown> | Set<unknown>) {
          if (kind === "Map") apply(mapSet, collection, [toRealm((entry as [unknown, unknown])[0]), toRealm((entry as [unknown, unknown])[1])]);
          else apply(setAdd, collection, [toRealm(entry)]);
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
        copy = adoptBuffer(value as ArrayBuffer, false);
        break;
      case "DataView": {
        const view = value as DataView;
        const { byteOffset, byteLength } = view;
        return new views.DataView!(toRealm(view.buffer) as ArrayBuffer, byteOffset, byteLength);
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
        const { byteOffset, length } = view;
        return new Ctor(toRealm(view.buffer) as ArrayBuffer, byteOffset, length);
      }
    }
    remember(copy, value);
    return copy;
  }

  /** Fills `copy` with `outer`'s own enumerable data properties, re-homed; the same outer object gives it again. */
  function copyInto(copy: object, outer: object): object {
    remember(copy, outer);
    const keys = ownKeys(outer);
    for (let i = 0; i < keys.length; i++) {
      const descriptor = getOwnPropertyDescriptor(outer, keys[i]!);
      if (descriptor && "value" in descriptor && descriptor.enumerable) put(copy, keys[i]!, toRealm(descriptor.value));
    }
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
    const keys = getOwnPropertyNames(outer);
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const descriptor = getOwnPropertyDescriptor(outer, key)!;
      let value: unknown;
      try {
        value = "value" in descriptor ? descriptor.value : reflectGet(outer, key);
      } catch {
        continue;
      }
      defineProperty(wrapper, key, {
        __proto__: null,
        value: toRealm(value),
        writable: "value" in descriptor ? descriptor.writable : true,
        enumerable: descriptor.enumerable,
        configurable: true,
      } as PropertyDescriptor);
    }
  }

  /**
   * What outer code sees of a realm object or function: a stand-in, a Proxy over a shadow (an
   * empty object, array or arrow function), so that no invariant of the user's own object (a frozen
   * property, say) binds what it answers. Reads are re-homed for the outer side (a member that is
   * a function becomes a stand-in too), a call re-homes its `this` and arguments for the realm,
   * and writes are refused: Deno's code never writes into user objects, and no outer object is
   * ever left in one.
   */
  const targets = new RealmWeakMap<object, object>();
  const targetOf = (shadow: object): object => apply(weakGet, targets, [shadow]) as object;
  const standIn: ProxyHandler<object> = {
    __proto__: null,
    get(shadow, key) {
      const target = targetOf(shadow);
      return toOuter(reflectGet(target, key, target));
    },
    has: (shadow, key) => R.has(targetOf(shadow), key),
    ownKeys: (shadow) => ownKeys(targetOf(shadow)),
    getOwnPropertyDescriptor(shadow, key) {
      const descriptor = getOwnPropertyDescriptor(targetOf(shadow), key);
      if (!descriptor) return undefined;
      if ("value" in descriptor) descriptor.value = toOuter(descriptor.value);
      else {
        descriptor.get = toOuter(descriptor.get) as () => unknown;
        descriptor.set = toOuter(descriptor.set) as (value: unknown) => void;
      }
      // Only what the shadow itself holds fixed (an array's length) may be reported as fixed.
      const own = getOwnPropertyDescriptor(shadow, key);
      descriptor.configurable = own === undefined || own.configurable === true;
      return descriptor;
    },
    getPrototypeOf: (shadow) => getPrototypeOf(targetOf(shadow)),
    apply(shadow, self, args) {
      const callback = targetOf(shadow) as (...a: unknown[]) => unknown;
      const realmArgs = new RealmArray(args.length);
      for (let i = 0; i < args.length; i++) put(realmArgs, i, toRealm(args[i]));
      try {
        return toOuter(apply(callback, toRealm(self), realmArgs));
      } finally {
        checkpoint();
      }
    },
    set: () => false,
    defineProperty: () => false,
    deleteProperty: () => false,
    setPrototypeOf: () => false,
    preventExtensions: () => false,
  } as ProxyHandler<object>;

  function toOuter(value: unknown): unknown {
    if (!isObject(value)) return value;
    const known = apply(weakGet, outerOfMap, [value]);
    if (known !== undefined) return known;
    // Buffers, promises, errors, dates and collections of the realm pass as they are: Deno's code
    // needs their internal slots, and they hold no outer object.
    if (typeof value !== "function" && !isProxy(value) && isPassThrough(value)) return value;
    const shadow = typeof value === "function" ? () => {} : isArray(value) ? [] : create(null);
    apply(weakSet, targets, [shadow, value]);
    const outer = new RealmProxy(shadow, standIn);
    pair(value, outer);
    return outer;
  }

  function toOuterArgs(args: ArrayLike<unknown>): unknown[] {
    const outer = new RealmArray(args.length);
    for (let i = 0; i < args.length; i++) put(outer, i, toOuter(args[i]));
    return outer;
  }

  /** The platform object a realm wrapper stands for (not a stand-in of a realm object). */
  function outerOfWrapper(value: unknown): unknown {
    const outer = isObject(value) ? apply(weakGet, outerOfMap, [value]) : undefined;
    return outer === undefined || typeof outer === "function" || isProxy(outer) ? undefined : outer;
  }

  /** The realm's error for anything thrown across the membrane, even if re-homing it fails. */
  function realmFailure(error: unknown): unknown {
    try {
      return toRealm(error);
    } catch {
      return new RealmTypeError("a Web API failed in a way that cannot be shown to this realm");
    }
  }

  function rethrow(error: unknown): never {
    throw realmFailure(error);
  }

  function invoke(fn: unknown, outerSelf: unknown, args: ArrayLike<unknown>): unknown {
    try {
      return toRealmResult(apply(fn as (...a: unknown[]) => unknown, outerSelf, toOuterArgs(args)));
    } catch (error) {
      rethrow(error);
    }
  }

  function call(fn: unknown, self: unknown, args: ArrayLike<unknown>): unknown {
    return invoke(fn, toOuter(self), args);
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
    const { byteOffset, byteLength } = outerView as Uint8Array;
    let copy: Uint8Array;
    try {
      // The whole buffer, so that offsets and the buffer's length read as Deno's do.
      copy = new uint8(copyBuffer((outerView as Uint8Array).buffer as ArrayBuffer), byteOffset, byteLength);
    } catch (error) {
      rethrow(error);
    }
    apply(weakSet, lent, [outerView, copy]);
    apply(weakSet, outerOfMap, [copy, outerView]);
    return copy;
  }

  function giveBack(getter: unknown, respond: unknown, self: unknown, args: ArrayLike<unknown>): unknown {
    const outerView = rawRead(getter, self);
    const copy = isObject(outerView) ? (apply(weakGet, lent, [outerView]) as Uint8Array | undefined) : undefined;
    const view = outerView as Uint8Array;
    // (A detached buffer on either side has nothing to give back: Deno's own respond() says what is wrong.)
    if (copy && !(copy.buffer as ArrayBuffer).detached && !(view.buffer as ArrayBuffer).detached) {
      try {
        copyBytes(view.buffer as ArrayBuffer, view.byteOffset, copy.buffer as ArrayBuffer, copy.byteOffset, view.byteLength);
      } catch (error) {
        rethrow(error);
      }
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
    outerOf: outerOfWrapper,
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
      try {
        // (With no argument at all, Deno's own check says so.)
        const outerArgs = args.length === 0 ? [] : [forClone(args[0], outerOfWrapper), toOuter(args[1])];
        return toRealm(apply(fn as (...a: unknown[]) => unknown, undefined, outerArgs));
      } catch (error) {
        rethrow(error);
      }
    },
    lend,
    giveBack,
    realmPrototypeOf: (outerPrototype) => mirrorOf(outerPrototype),
    construct(ctor, self, newTarget, args, name) {
      if (newTarget === undefined) throw new RealmTypeError(`Failed to construct '${name}': Please use the 'new' operator, this object constructor cannot be called as a function.`);
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
  };
}

/** Stage two of createMembrane: the membrane itself, made when the realm first needs it. */
export type MembraneFactory = (
  facts: OuterFacts,
  intrinsics: readonly object[],
  demand: (name: string) => unknown,
  checkpoint: () => void,
) => Membrane;
