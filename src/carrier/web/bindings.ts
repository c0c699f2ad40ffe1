/**
 * The realm's Web API globals: for every class and function Deno provides in the outer realm, a
 * realm-owned counterpart (its own constructor, prototype and methods, patchable by the realm's
 * code without touching any other realm) that calls Deno's implementation through the membrane.
 *
 * At carrier start the outer classes are described once and turned into one script of source
 * text: object literals give members WebIDL's shape (enumerable, the right `name` and `length`,
 * methods that are not constructors) at the cost of a literal per realm instead of a
 * defineProperty per member. The script is compiled once and run in each new realm.
 */
import vm from "node:vm";
import { types } from "node:util";
import { createMembrane, intrinsicsOf, type Membrane, type OuterFacts } from "./membrane.js";

/** Global functions that are not interfaces. */
const FUNCTIONS = ["atob", "btoa", "structuredClone"] as const;

/** Static members some outer classes carry that are no part of any standard (Node compatibility). */
const NON_STANDARD_STATICS = new Set(["Crypto.create", "Crypto.registerSymbols", "SubtleCrypto.create", "SubtleCrypto.supports"]);

/** Members whose values the membrane must treat specially: see Membrane.lend. */
const LENT_VIEW = "ReadableStreamBYOBRequest.view";
const GIVE_BACK = new Set(["ReadableStreamBYOBRequest.respond", "ReadableStreamBYOBRequest.respondWithNewView"]);

type Member =
  | { kind: "method"; key: PropertyKey; fn: unknown; length: number }
  | { kind: "accessor"; key: PropertyKey; get: unknown; set: unknown }
  | { kind: "constant"; key: string; value: unknown }
  | { kind: "alias"; key: symbol; of: string };

interface Interface {
  name: string;
  ctor: { prototype: object; length: number };
  parent: string | undefined;
  prototypeMembers: Member[];
  staticMembers: Member[];
  tag: string | undefined;
}

const WELL_KNOWN: ReadonlyMap<symbol, string> = new Map([
  [Symbol.iterator, "Symbol.iterator"],
  [Symbol.asyncIterator, "Symbol.asyncIterator"],
]);

function describeMembers(owner: string, target: object, isStatic: boolean): Member[] {
  const members: Member[] = [];
  const byFunction = new Map<unknown, string>();
  for (const key of Reflect.ownKeys(target)) {
    if (key === "constructor" || (isStatic && (key === "prototype" || key === "length" || key === "name"))) continue;
    if (typeof key === "symbol" && !WELL_KNOWN.has(key)) continue;
    if (isStatic && NON_STANDARD_STATICS.has(`${owner}.${String(key)}`)) continue;
    const descriptor = Reflect.getOwnPropertyDescriptor(target, key)!;
    if ("value" in descriptor) {
      if (typeof descriptor.value === "function") {
        const alias = typeof key === "symbol" ? byFunction.get(descriptor.value) : undefined;
        if (alias !== undefined && typeof key === "symbol") members.push({ kind: "alias", key, of: alias });
        else members.push({ kind: "method", key, fn: descriptor.value, length: (descriptor.value as () => void).length });
        if (typeof key === "string") byFunction.set(descriptor.value, key);
      } else if (typeof key === "string" && (typeof descriptor.value === "number" || typeof descriptor.value === "string")) {
        members.push({ kind: "constant", key, value: descriptor.value });
      }
    } else if (typeof key === "string") {
      // Deno defines Event's phase constants as prototype getters; WebIDL has them as values.
      if (/^[A-Z_]+$/.test(key) && descriptor.get && !descriptor.set) {
        members.push({ kind: "constant", key, value: Reflect.apply(descriptor.get, (target as { constructor: object }).constructor, []) });
      } else {
        members.push({ kind: "accessor", key, get: descriptor.get, set: descriptor.set });
      }
    }
  }
  // Symbol-keyed aliases may come before the member they repeat.
  for (const member of members) {
    if (member.kind === "method" && typeof member.key === "symbol") {
      const alias = [...byFunction].find(([fn]) => fn === member.fn)?.[1];
      if (alias !== undefined) Object.assign(member, { kind: "alias", of: alias });
    }
  }
  return members;
}

function describeInterfaces(names: readonly string[]): Interface[] {
  const outer = globalThis as unknown as Record<string, unknown>;
  const found = new Map<object, string>();
  for (const name of names) {
    const ctor = outer[name];
    if (typeof ctor === "function" && typeof (ctor as { prototype?: unknown }).prototype === "object") found.set((ctor as { prototype: object }).prototype, name);
  }
  const interfaces: Interface[] = [];
  const placed = new Set<string>();
  const place = (name: string): void => {
    if (placed.has(name)) return;
    const ctor = outer[name] as Interface["ctor"];
    const parent = found.get(Object.getPrototypeOf(ctor.prototype) as object);
    if (parent) place(parent);
    placed.add(name);
    const tag = Object.getOwnPropertyDescriptor(ctor.prototype, Symbol.toStringTag)?.value;
    interfaces.push({
      name,
      ctor,
      parent,
      prototypeMembers: describeMembers(name, ctor.prototype, false),
      staticMembers: describeMembers(name, ctor, true),
      tag: typeof tag === "string" ? tag : undefined,
    });
  };
  for (const name of found.values()) place(name);
  return interfaces;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

function keySource(key: PropertyKey): string {
  if (typeof key === "symbol") return `[${WELL_KNOWN.get(key)}]`;
  const name = String(key);
  return IDENTIFIER.test(name) ? name : JSON.stringify(name);
}

function params(length: number): string {
  return Array.from({ length }, (_, i) => `a${i}`).join(", ");
}

/** Source for one interface, its members calling `M[index]` (the outer functions) through the membrane. */
function interfaceSource(index: number, api: Interface, table: unknown[]): string {
  const slot = (fn: unknown): number => table.push(fn) - 1;
  const literal = (members: Member[], isStatic: boolean): string =>
    members
      .map((member) => {
        const path = `${api.name}.${String(member.key)}`;
        if (member.kind === "method") {
          const target = isStatic ? `C${index}` : "";
          const call = isStatic
            ? `$.invoke(M[${slot(member.fn)}], ${target}, arguments)`
            : GIVE_BACK.has(path)
              ? `$.giveBack(M[${slot(findGetter(api, "view"))}], M[${slot(member.fn)}], this, arguments)`
              : `$.method(M[${slot(member.fn)}], this, arguments)`;
          return `${keySource(member.key)}(${params(member.length)}) { return ${call}; }`;
        }
        if (member.kind === "accessor") {
          const parts: string[] = [];
          if (member.get) {
            const read = path === LENT_VIEW ? `$.lend(M[${slot(member.get)}], this)` : `$.method(M[${slot(member.get)}], this, [])`;
            parts.push(`get ${keySource(member.key)}() { return ${read}; }`);
          }
          if (member.set) parts.push(`set ${keySource(member.key)}(v) { $.method(M[${slot(member.set)}], this, [v]); }`);
          return parts.join(", ");
        }
        return "";
      })
      .filter(Boolean)
      .join(",\n    ");
  const constants = (members: Member[]): string =>
    JSON.stringify(members.filter((m): m is Extract<Member, { kind: "constant" }> => m.kind === "constant").map((m) => [m.key, m.value]));
  const aliases = JSON.stringify(api.prototypeMembers.filter((m): m is Extract<Member, { kind: "alias" }> => m.kind === "alias").map((m) => [WELL_KNOWN.get(m.key), m.of]));
  const ctorSlot = slot(api.ctor);
  return `case ${JSON.stringify(api.name)}: {
  ${api.parent ? `need(${JSON.stringify(api.parent)});` : ""}
  const C${index} = M[${ctorSlot}];
  const P = {
    ${literal(api.prototypeMembers, false)}
  };
  const S = {
    ${literal(api.staticMembers, true)}
  };
  const F = function ${api.name}(${params(api.ctor.length)}) { return $.construct(C${index}, this, new.target, arguments, ${JSON.stringify(api.name)}); };
  define(F, P, S, C${index}, ${constants([...api.prototypeMembers])}, ${constants(api.staticMembers)}, ${JSON.stringify(api.tag ?? null)}, ${aliases});
  return F;
}`;
}

function findGetter(api: Interface, key: string): unknown {
  const member = api.prototypeMembers.find((m) => m.kind === "accessor" && m.key === key);
  return member && member.kind === "accessor" ? member.get : undefined;
}

/**
 * The per-realm builder, made the first time a realm needs one: build(name) makes one interface
 * (its parent first, through need) or global function and returns it.
 */
const PROLOGUE = `(function () {
"use strict";
// Taken when the realm is made, before user code could replace any of it.
const defineProperty = Reflect.defineProperty, setPrototypeOf = Reflect.setPrototypeOf, getPrototypeOf = Reflect.getPrototypeOf;
const getOwnPropertyDescriptors = Object.getOwnPropertyDescriptors, ownKeys = Reflect.ownKeys;
const symbols = { __proto__: null, "Symbol.iterator": Symbol.iterator, "Symbol.asyncIterator": Symbol.asyncIterator };
const toStringTag = Symbol.toStringTag;
const data = (value, writable, enumerable, configurable) => ({ __proto__: null, value, writable, enumerable, configurable });
return function (G, $, M, need) {
function define(F, P, S, outerCtor, protoConstants, staticConstants, tag, aliases) {
  const outerPrototype = outerCtor.prototype;
  setPrototypeOf(P, $.realmPrototypeOf(getPrototypeOf(outerPrototype)));
  setPrototypeOf(F, $.toRealm(getPrototypeOf(outerCtor)));
  defineProperty(F, "prototype", data(P, false, false, false));
  defineProperty(P, "constructor", data(F, true, false, true));
  for (let i = 0; i < aliases.length; i++) defineProperty(P, symbols[aliases[i][0]], data(P[aliases[i][1]], true, false, true));
  const statics = getOwnPropertyDescriptors(S);
  const keys = ownKeys(statics);
  for (let i = 0; i < keys.length; i++) {
    const descriptor = statics[keys[i]];
    setPrototypeOf(descriptor, null);
    defineProperty(F, keys[i], descriptor);
  }
  for (let i = 0; i < protoConstants.length; i++) defineProperty(P, protoConstants[i][0], data(protoConstants[i][1], false, true, false));
  for (let i = 0; i < staticConstants.length; i++) defineProperty(F, staticConstants[i][0], data(staticConstants[i][1], false, true, false));
  if (tag !== null) defineProperty(P, toStringTag, data(tag, false, false, true));
  $.mirrorAs(outerPrototype, P);
  $.pair(F, outerCtor);
}
return function build(name) {
switch (name) {
`;

function functionSource(name: string, fn: unknown, table: unknown[]): string {
  const index = table.push(fn) - 1;
  const call = name === "structuredClone" ? `$.clone(M[${index}], arguments)` : `$.invoke(M[${index}], undefined, arguments)`;
  return `case ${JSON.stringify(name)}: return ({ ${name}(${params((fn as () => void).length)}) { return ${call}; } }).${name};`;
}

/**
 * One realm's Web APIs, made on demand: a realm that never touches a Web API never pays for one
 * (most evals touch none, and a realm is made per eval).
 */
export interface RealmWeb {
  /** The realm's membrane, made on first use. */
  readonly membrane: Membrane;
  /** Whether the membrane exists yet (an object it never saw cannot be one of its wrappers). */
  readonly hasMembrane: boolean;
  /** The realm's own counterpart of the Web API global `name`, made on first use. */
  resolve(name: string): unknown;
}

export interface WebBindings {
  /** The globals a realm gets (interfaces, functions and objects such as `crypto`). */
  readonly names: readonly string[];
  /** Sets up a realm's Web APIs; `built` hears of each interface as it is made. */
  attach(context: vm.Context, built: (name: string, value: unknown) => void, checkpoint: () => void): RealmWeb;
}

/**
 * Describes the outer Web API classes named in `names` (and the global functions), and compiles
 * the script that builds their realm counterparts. Call once, after hardening the outer realm.
 */
export function prepareWebBindings(names: readonly string[]): WebBindings {
  const outer = globalThis as unknown as Record<string, unknown>;
  const interfaces = describeInterfaces(names.filter((name) => typeof outer[name] === "function" && !FUNCTIONS.includes(name as (typeof FUNCTIONS)[number])));
  const table: unknown[] = [];
  const objects = names.filter((name) => typeof outer[name] === "object" && outer[name] !== null);
  const functions = FUNCTIONS.filter((name) => typeof outer[name] === "function");
  const source = [
    PROLOGUE,
    ...interfaces.map((api, i) => interfaceSource(i, api, table)),
    ...functions.map((name) => functionSource(name, outer[name], table)),
    ...objects.map((name) => `case ${JSON.stringify(name)}: return $.toRealm(M[${table.push(outer[name]) - 1}]);`),
    "}\n};\n};\n})",
  ].join("\n");
  const interfaceOf = new Map<object, string>(interfaces.map((api) => [api.ctor.prototype, api.name]));
  const kinds = outerKinds(interfaces);
  // One script per realm, run when the realm is made: running a script in a realm later, while its
  // code runs, would also run the realm's pending microtasks then (node:vm's "afterEvaluate").
  const setup = new vm.Script(`[(${createMembrane.toString()}), (${intrinsicsOf.toString()}), ${source}]`, { filename: "paddock:web" });
  Object.freeze(table);
  const facts: OuterFacts = Object.freeze({
    intrinsics: Object.freeze(intrinsicsOf(globalThis)),
    objectPrototype: Object.prototype,
    isProxy: (value: unknown) => types.isProxy(value),
    isPassThrough,
    kindOf: (prototype: object) => kinds.get(prototype),
    then: (promise: unknown, onValue: (value: unknown) => void, onError: (error: unknown) => void) => {
      Reflect.apply(promiseThen, promise, [(value: unknown) => onValue(value), (error: unknown) => onError(error)]);
    },
    interfaceOf: (prototype: unknown) => interfaceOf.get(prototype as object),
    describe: (target: object, key: PropertyKey) => Reflect.getOwnPropertyDescriptor(target, key),
    copyBytes: (target: ArrayBuffer, targetOffset: number, source: ArrayBuffer, sourceOffset: number, length: number) => {
      new Uint8Array(target, targetOffset, length).set(new Uint8Array(source, sourceOffset, length));
    },
    forClone,
  });
  return {
    names: [...interfaces.map((api) => api.name), ...functions, ...objects],
    attach(context, built, checkpoint) {
      let membrane: Membrane | undefined;
      let build: ((name: string) => unknown) | undefined;
      const made = new Map<string, unknown>();
      const global = context as typeof globalThis;
      const [membraneOf, realmIntrinsicsOf, buildersOf] = setup.runInContext(context) as [
        typeof createMembrane,
        typeof intrinsicsOf,
        () => (G: object, $: Membrane, M: readonly unknown[], need: (name: string) => unknown) => (name: string) => unknown,
      ];
      // Stage one of each, now, while the realm is pristine (see createMembrane).
      const makeMembrane = membraneOf(global);
      const realmIntrinsics = realmIntrinsicsOf(global);
      const makeBuilders = buildersOf();
      const resolve = (name: string): unknown => {
        if (made.has(name)) return made.get(name);
        build ??= makeBuilders(global, web.membrane, table, resolve);
        const value = build(name);
        made.set(name, value);
        built(name, value);
        return value;
      };
      const web: RealmWeb = {
        get membrane() {
          membrane ??= makeMembrane(facts, realmIntrinsics, resolve, checkpoint);
          return membrane;
        },
        get hasMembrane() {
          return membrane !== undefined;
        },
        resolve,
      };
      return web;
    },
  };
}

const promiseThen = Promise.prototype.then;
const mapEntries = Map.prototype.entries;
const setValues = Set.prototype.values;

/**
 * Realm values the outer side passes to Deno as they are (Deno's code needs their internal slots,
 * and they hold no outer object).
 */
function isPassThrough(value: unknown): boolean {
  return types.isPromise(value) || ArrayBuffer.isView(value) || types.isAnyArrayBuffer(value) || types.isNativeError(value) ||
    types.isDate(value) || types.isRegExp(value) || types.isMap(value) || types.isSet(value) || types.isBoxedPrimitive(value) ||
    types.isWeakMap(value) || types.isWeakSet(value);
}

type OuterOf = (value: unknown) => unknown;
const isObjectLike = (value: unknown): value is object => typeof value === "object" && value !== null;

/**
 * structuredClone's value for the outer serializer (see OuterFacts.forClone). Runs on the outer
 * side, reading realm objects through their descriptors and the outer realm's own collection
 * methods, so no realm object ever holds an outer one and no user code runs but getters (which the
 * serializer would run anyway).
 */
function forClone(value: unknown, outerOf: OuterOf): unknown {
  return holdsPlatformObject(value, outerOf, new Set()) ? cloneCopy(value, outerOf, new Map()) : value;
}

/** Whether a platform object may be inside (an accessor may return one: it counts as a yes). */
function holdsPlatformObject(value: unknown, outerOf: OuterOf, seen: Set<object>): boolean {
  if (!isObjectLike(value) || seen.has(value)) return false;
  if (outerOf(value) !== undefined) return true;
  if (types.isProxy(value)) return false;
  seen.add(value);
  if (types.isMap(value)) {
    for (const [key, entry] of Reflect.apply(mapEntries, value, []) as Iterable<[unknown, unknown]>) {
      if (holdsPlatformObject(key, outerOf, seen) || holdsPlatformObject(entry, outerOf, seen)) return true;
    }
    return false;
  }
  if (types.isSet(value)) {
    for (const entry of Reflect.apply(setValues, value, []) as Iterable<unknown>) if (holdsPlatformObject(entry, outerOf, seen)) return true;
    return false;
  }
  if (isPassThrough(value)) return false;
  for (const key of Reflect.ownKeys(value)) {
    const descriptor = Reflect.getOwnPropertyDescriptor(value, key);
    if (!descriptor?.enumerable) continue;
    if (!("value" in descriptor) || holdsPlatformObject(descriptor.value, outerOf, seen)) return true;
  }
  return false;
}

function cloneCopy(value: unknown, outerOf: OuterOf, copies: Map<object, unknown>): unknown {
  if (!isObjectLike(value)) return value;
  const outer = outerOf(value);
  if (outer !== undefined) return outer;
  if (copies.has(value)) return copies.get(value);
  if (types.isProxy(value)) return value;
  if (types.isMap(value)) {
    const map = new Map<unknown, unknown>();
    copies.set(value, map);
    for (const [key, entry] of Reflect.apply(mapEntries, value, []) as Iterable<[unknown, unknown]>) map.set(cloneCopy(key, outerOf, copies), cloneCopy(entry, outerOf, copies));
    return map;
  }
  if (types.isSet(value)) {
    const set = new Set<unknown>();
    copies.set(value, set);
    for (const entry of Reflect.apply(setValues, value, []) as Iterable<unknown>) set.add(cloneCopy(entry, outerOf, copies));
    return set;
  }
  if (isPassThrough(value)) return value;
  const copy: object = Array.isArray(value) ? new Array<unknown>((value as unknown[]).length) : {};
  copies.set(value, copy);
  for (const key of Reflect.ownKeys(value)) {
    const descriptor = Reflect.getOwnPropertyDescriptor(value, key);
    if (!descriptor?.enumerable || typeof key === "symbol") continue;
    const member = "value" in descriptor ? descriptor.value : Reflect.get(value, key);
    Object.defineProperty(copy, key, { value: cloneCopy(member, outerOf, copies), writable: true, enumerable: true, configurable: true });
  }
  return copy;
}

/** Outer prototypes by what their objects are (see OuterFacts.kindOf). */
function outerKinds(interfaces: readonly Interface[]): Map<object, string> {
  const outer = globalThis as unknown as Record<string, { prototype: object } | undefined>;
  const kinds = new Map<object, string>([
    [Object.prototype, "plain"], [Array.prototype, "array"], [Map.prototype, "Map"], [Set.prototype, "Set"],
    [Promise.prototype, "promise"], [ArrayBuffer.prototype, "ArrayBuffer"], [DataView.prototype, "DataView"],
  ]);
  for (const name of ["Error", "TypeError", "RangeError", "SyntaxError", "ReferenceError", "EvalError", "URIError"]) kinds.set(outer[name]!.prototype, "error");
  for (const name of ["Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array", "Uint32Array",
    "Float16Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array", "Date", "RegExp", "Boolean", "Number", "String", "BigInt"]) {
    const ctor = outer[name];
    if (ctor) kinds.set(ctor.prototype, name);
  }
  for (const api of interfaces) kinds.set(api.ctor.prototype, "interface");
  return kinds;
}
