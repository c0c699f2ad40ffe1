/**
 * The carrier half of modules. Units arrive from the host once per carrier and are compiled once
 * (a compiled script serves every realm); each realm evaluates the units it imports itself, so a
 * module's instance — its state, its exports — belongs to one realm, and a fresh realm per eval
 * means fresh modules per eval.
 */
import vm from "node:vm";
import type { Realm } from "../../carrier/realm.js";
import type { EvalScope } from "../../carrier/scope.js";
import { realmError } from "../../carrier/values.js";
import type { CallError, FailureKind } from "../../protocol/messages.js";
import type { ModuleLink, ModuleUnit, ModulesMessage } from "./messages.js";
import { FILE_CALL_KEY } from "../files/call.js";
import { fileCallFor } from "../files/carrier.js";

interface KeptUnit {
  unit: ModuleUnit;
  script: vm.Script | undefined;
}

const units = new Map<string, KeptUnit>();
/** Each eval's own imports (what the specifiers in its code reach). */
const evalImports = new WeakMap<EvalScope, Record<string, ModuleLink>>();
/** Each realm's loader, made at its first import. */
const loaders = new WeakMap<Realm, Loader>();

export function receiveModules(message: ModulesMessage): void {
  for (const key of message.forget) units.delete(key);
  for (const unit of message.units) units.set(unit.key, { unit, script: undefined });
}

export function bindImports(scope: EvalScope, imports: Record<string, ModuleLink> | undefined): void {
  if (imports) evalImports.set(scope, imports);
}

/** Realm-side: the loader (CommonJS semantics between units, cycles included) and the namespaces it gives import(). */
const LOADER = new vm.Script(`(factoryOf, linkOf, makeError, linkOfEval) => {
  "use strict";
  const { Object, Map, Reflect, Symbol, JSON } = globalThis;
  const { create, defineProperty, keys, freeze } = Object;
  const apply = Reflect.apply;
  const parse = JSON.parse;
  const toStringTag = Symbol.toStringTag;
  const RangeError = globalThis.RangeError;
  // The carrier's functions are called through this: whatever they throw (a stack overflow inside
  // one is the carrier's own RangeError) never reaches the realm; an error of the realm's does.
  const outer = (fn, a, b) => {
    try {
      return fn(a, b);
    } catch {
      throw new RangeError("the import could not be completed (the call stack may be exhausted)");
    }
  };
  const records = new Map();
  const namespaces = new Map();
  const failure = (text) => {
    const { name, message } = parse(text.slice(1));
    const error = makeError(name, message);
    defineProperty(error, "code", { value: name === "Error" ? "MODULE_NOT_FOUND" : "ERR_MODULE_REFUSED", configurable: true, writable: true });
    return error;
  };
  const load = (key) => {
    const known = records.get(key);
    if (known !== undefined) return known.exports;
    const factory = outer(factoryOf, key);
    if (typeof factory !== "function") throw makeError("Error", factory);
    const module = { exports: {}, id: key, loaded: false };
    records.set(key, module);
    const require = function require(specifier) {
      const target = outer(linkOf, key, "" + specifier);
      if (target[0] === "!") throw failure(target);
      return load(target);
    };
    try {
      apply(factory, module.exports, [module, module.exports, require]);
    } catch (error) {
      records.delete(key);
      throw error;
    }
    module.loaded = true;
    return module.exports;
  };
  const namespaceOf = (key) => {
    const known = namespaces.get(key);
    if (known !== undefined) return known;
    const exports = load(key);
    const namespace = create(null);
    const isObject = exports !== null && (typeof exports === "object" || typeof exports === "function");
    const esm = isObject && exports.__esModule === true;
    if (!esm) defineProperty(namespace, "default", { value: exports, enumerable: true });
    if (isObject) {
      for (const name of keys(exports)) {
        if (name === "__esModule" || (!esm && name === "default")) continue;
        defineProperty(namespace, name, { get: () => exports[name], enumerable: true });
      }
    }
    defineProperty(namespace, toStringTag, { value: "Module" });
    freeze(namespace);
    namespaces.set(key, namespace);
    return namespace;
  };
  // The eval's static imports, run before its first line (see source.ts on the host).
  const importSync = (specifier) => {
    const target = outer(linkOfEval, "" + specifier);
    if (typeof target !== "string") throw target;
    return namespaceOf(target);
  };
  return { namespaceOf, importSync };
}`, { filename: "paddock:modules" });

interface Loader {
  namespaceOf(key: string): unknown;
  importSync(specifier: string): unknown;
}
type MakeLoader = (
  factoryOf: (key: string) => unknown,
  linkOf: (from: string, specifier: string) => string,
  makeError: unknown,
  linkOfEval: (specifier: string) => unknown,
) => Loader;

function loaderOf(realm: Realm): Loader {
  let loader = loaders.get(realm);
  if (!loader) {
    const make = LOADER.runInContext(realm.context) as MakeLoader;
    // Both answer with what the realm may hold (a function the realm made, or a string): never
    // with an object or an error of the carrier's own.
    const factoryOf = (key: string): unknown => {
      // The one module the carrier makes itself: the function the realm's node:fs calls.
      if (key === FILE_CALL_KEY) return (module: { exports: unknown }) => void (module.exports = fileCallFor(realm));
      try {
        return compiled(key).runInContext(realm.context);
      } catch (error) {
        return `module ${key} could not be loaded: ${error instanceof Error ? error.message : "unknown error"}`;
      }
    };
    const linkOf = (from: string, specifier: string) => {
      const link = own(units.get(from)?.unit.links, specifier);
      if (link === undefined) return "!" + JSON.stringify({ name: "Error", message: `Cannot find module "${specifier}" (required by ${from})` });
      return typeof link === "string" ? link : "!" + JSON.stringify(link.error);
    };
    // The unit the running eval's import of `specifier` reaches, or the error it fails with (the realm's own).
    const linkOfEval = (specifier: string): unknown => {
      const scope = realm.slot.scope;
      const link = own(scope ? evalImports.get(scope) : undefined, specifier);
      if (typeof link === "string") return link;
      return realmError(realm.helpers, link === undefined ? notPrepared(specifier) : { ...link.error, kind: kindOf(link.error.name) });
    };
    loader = make(factoryOf, linkOf, realm.helpers.makeError, linkOfEval);
    loaders.set(realm, loader);
  }
  return loader;
}

function compiled(key: string): vm.Script {
  const kept = units.get(key);
  // The host sends every unit an eval needs before the eval; a missing one is a host bug.
  if (!kept) throw new Error(`paddock: module ${key} was never sent to this carrier`);
  if (kept.script) return kept.script;
  kept.script = new vm.Script(`(function (module, exports, require) {\n${kept.unit.code}\n})`, {
    filename: key,
    lineOffset: -1,
    importModuleDynamically: ((specifier: string) => {
      const link = own(kept.unit.links, specifier);
      return linkTarget(specifier, link, `a computed import() inside ${key}`);
    }) as unknown as vm.ScriptOptions["importModuleDynamically"],
  });
  // The compiled script holds the source; the text need not be kept twice.
  kept.unit = { ...kept.unit, code: "" };
  return kept.script;
}

/** The namespace the import of `specifier` by the eval running in `realm` gets. */
export function importInRealm(realm: Realm, scope: EvalScope | undefined, specifier: string): unknown {
  const imports = scope ? evalImports.get(scope) : undefined;
  if (!imports) return refuse(realm, { name: "PolicyError", message: `import of "${specifier}" refused: no module policy grants imports in this sandbox`, kind: "policy" });
  return resolveLink(realm, specifier, own(imports, specifier));
}

/** A link by specifier: the records came from JSON, and "__proto__" is a specifier too. */
function own(links: Record<string, ModuleLink> | undefined, specifier: string): ModuleLink | undefined {
  return links && Object.hasOwn(links, specifier) ? links[specifier] : undefined;
}

let currentRealm: (() => Realm | undefined) | undefined;
let ownerOf: ((value: unknown) => Realm | undefined) | undefined;

/** How the carrier tells which realm is running, and which realm made a value. */
export function trackRealm(lookup: () => Realm | undefined, owner: (value: unknown) => Realm | undefined): void {
  currentRealm = lookup;
  ownerOf = owner;
}

/**
 * An import() hook's body: what it throws becomes the import's rejection inside the realm, so it
 * throws only the realm's own errors — or a string, when even making one failed (an exhausted
 * stack) or no eval is running (a finalizer's callback): never an object of the carrier's.
 */
export function guardedImport(specifier: string, load: (realm: Realm) => unknown): unknown {
  const realm = currentRealm?.();
  if (!realm) throw `import of "${specifier}" outside an eval`;
  try {
    return load(realm);
  } catch (error) {
    if (ownerOf?.(error) === realm) throw error;
    let replacement: unknown = "the import could not be completed";
    try {
      const made = realmError(realm.helpers, { name: "RangeError", message: "the import could not be completed (the call stack may be exhausted)" });
      if (ownerOf?.(made) === realm) replacement = made;
    } catch {
      // the string, then
    }
    throw replacement;
  }
}

function linkTarget(specifier: string, link: ModuleLink | undefined, where: string): unknown {
  return guardedImport(specifier, (realm) => {
    if (link === undefined) return refuse(realm, { name: "PolicyError", message: `import of "${specifier}" refused: ${where} was not known before the eval ran`, kind: "policy" });
    return resolveLink(realm, specifier, link);
  });
}

function notPrepared(specifier: string): CallError {
  return {
    name: "PolicyError",
    message: `import of "${specifier}" refused: import() needs a string literal, so that the host can check and prepare the module before the eval runs`,
    kind: "policy",
  };
}

function resolveLink(realm: Realm, specifier: string, link: ModuleLink | undefined): unknown {
  if (link === undefined) return refuse(realm, notPrepared(specifier));
  if (typeof link !== "string") return refuse(realm, { ...link.error, kind: kindOf(link.error.name) });
  return loaderOf(realm).namespaceOf(link);
}

/** The eval's static imports, as a function of its realm's own (`$paddock$import`, see source.ts). */
export function staticImporter(realm: Realm): unknown {
  return loaderOf(realm).importSync;
}

function kindOf(name: string): FailureKind {
  return name === "PolicyError" ? "policy" : name === "ModuleError" ? "module" : "script";
}

function refuse(realm: Realm, error: CallError): never {
  throw realmError(realm.helpers, error);
}
