/**
 * The carrier half of modules. Units arrive from the host once per carrier and are compiled once
 * (a compiled script serves every realm); each realm evaluates the units it imports itself, so a
 * module's instance — its state, its exports — belongs to one realm, and a fresh realm per eval
 * means fresh modules per eval.
 */
import vm from "node:vm";
import type { Realm } from "../../carrier/realm.js";
import type { EvalScope } from "../../carrier/scope.js";
import { capabilityError } from "../../carrier/values.js";
import type { CallError, FailureKind } from "../../protocol/messages.js";
import type { ModuleLink, ModuleUnit, ModulesMessage } from "./messages.js";

interface KeptUnit {
  unit: ModuleUnit;
  script: vm.Script | undefined;
}

const units = new Map<string, KeptUnit>();
/** Each eval's own imports (what the specifiers in its code reach). */
const evalImports = new WeakMap<EvalScope, Record<string, ModuleLink>>();
/** Each realm's loader, made at its first import. */
const loaders = new WeakMap<Realm, (key: string) => unknown>();

export function receiveModules(message: ModulesMessage): void {
  for (const key of message.forget) units.delete(key);
  for (const unit of message.units) units.set(unit.key, { unit, script: undefined });
}

export function bindImports(scope: EvalScope, imports: Record<string, ModuleLink> | undefined): void {
  if (imports) evalImports.set(scope, imports);
}

/** Realm-side: the loader (CommonJS semantics between units, cycles included) and the namespaces it gives import(). */
const LOADER = new vm.Script(`(factoryOf, linkOf, makeError) => {
  "use strict";
  const { Object, Map, Reflect, Symbol, JSON } = globalThis;
  const { create, defineProperty, keys, freeze } = Object;
  const apply = Reflect.apply;
  const parse = JSON.parse;
  const toStringTag = Symbol.toStringTag;
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
    const factory = factoryOf(key);
    if (typeof factory !== "function") throw makeError("Error", factory);
    const module = { exports: {}, id: key, loaded: false };
    records.set(key, module);
    const require = function require(specifier) {
      const target = linkOf(key, "" + specifier);
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
  return (key) => {
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
}`, { filename: "paddock:modules" });

type MakeLoader = (factoryOf: (key: string) => unknown, linkOf: (from: string, specifier: string) => string, makeError: unknown) => (key: string) => unknown;

function loaderOf(realm: Realm): (key: string) => unknown {
  let loader = loaders.get(realm);
  if (!loader) {
    const make = LOADER.runInContext(realm.context) as MakeLoader;
    // Both answer with what the realm may hold (a function the realm made, or a string): never
    // with an object or an error of the carrier's own.
    const factoryOf = (key: string): unknown => {
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
    loader = make(factoryOf, linkOf, realm.helpers.makeError);
    loaders.set(realm, loader);
  }
  return loader;
}

function compiled(key: string): vm.Script {
  const kept = units.get(key);
  // The host sends every unit an eval needs before the eval; a missing one is a host bug.
  if (!kept) throw new Error(`paddock: module ${key} was never sent to this carrier`);
  kept.script ??= new vm.Script(`(function (module, exports, require) {\n${kept.unit.code}\n})`, {
    filename: key,
    lineOffset: -1,
    importModuleDynamically: ((specifier: string) => {
      const link = own(kept.unit.links, specifier);
      return linkTarget(specifier, link, `a computed import() inside ${key}`);
    }) as unknown as vm.ScriptOptions["importModuleDynamically"],
  });
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

/** How the carrier tells which realm is running (for imports made from units' code). */
export function trackRealm(lookup: () => Realm | undefined): void {
  currentRealm = lookup;
}

function linkTarget(specifier: string, link: ModuleLink | undefined, where: string): unknown {
  const realm = currentRealm?.();
  if (!realm) throw new Error(`import of "${specifier}" outside an eval`);
  if (link === undefined) return refuse(realm, { name: "PolicyError", message: `import of "${specifier}" refused: ${where} was not known before the eval ran`, kind: "policy" });
  return resolveLink(realm, specifier, link);
}

function resolveLink(realm: Realm, specifier: string, link: ModuleLink | undefined): unknown {
  if (link === undefined) {
    return refuse(realm, {
      name: "PolicyError",
      message: `import of "${specifier}" refused: import() needs a string literal, so that the host can check and prepare the module before the eval runs`,
      kind: "policy",
    });
  }
  if (typeof link !== "string") return refuse(realm, { ...link.error, kind: kindOf(link.error.name) });
  return loaderOf(realm)(link);
}

function kindOf(name: string): FailureKind {
  return name === "PolicyError" ? "policy" : name === "ModuleError" ? "module" : "script";
}

function refuse(realm: Realm, error: CallError): never {
  throw capabilityError(realm.helpers, error);
}
