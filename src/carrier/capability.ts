import type { EvalScope } from "./scope.js";
import type { OuterHooks } from "./harden.js";
import type { Membrane } from "./web/membrane.js";

/** Helpers compiled inside each realm, so what they create has the realm's own prototypes. */
export interface RealmHelpers {
  makeError(name: string, message: string): Error;
  /** The realm's own error class `name` (a subclass of its Error), made on first use; makeError then makes its instances. */
  errorClass(name: string): unknown;
  adopt(value: unknown): unknown;
  /** A queueMicrotask for the realm's own queue; errors thrown by callbacks go to `report`. */
  makeQueueMicrotask(report: (error: unknown) => void): (callback: unknown) => void;
  /** The realm's side of the membrane to the carrier's Web APIs (see web/membrane.ts), made on first use. */
  readonly membrane: Membrane;
  /** The outer object a realm wrapper stands for (undefined if none, or if no membrane was ever made). */
  outerOf(value: unknown): unknown;
  /** Defines the global `name`, made by `make` when code first reads it. */
  lazyGlobal(name: string, make: () => unknown): void;
  /** Runs `callback` with the realm's interface object `name` when it is made (to adjust it). */
  onBuilt(name: string, callback: (value: unknown) => void): void;
  /**
   * Reports an uncaught error of the realm's code (a timer callback, a listener): an `error` event
   * on the realm's global, and unless a listener cancels it, the end of the eval with that error.
   */
  reportError(error: unknown): void;
  /** Runs the realm's queued microtasks (after a task the carrier ran for it, such as a timer's callback). */
  runMicrotasks(): void;
  /** Tells the realm's global of a promise of its own rejected with no handler (`unhandledrejection`). */
  rejectionUnhandled(promise: unknown, reason: unknown): void;
}

/**
 * The eval a realm is serving right now. Capabilities are installed once, when the realm is made
 * (off the hot path), and look up their eval here on every call: a call from code left over after
 * its eval ended finds no live scope and does nothing.
 */
export interface ScopeSlot {
  scope: EvalScope | undefined;
}

export function liveScope(slot: ScopeSlot): EvalScope | undefined {
  const scope = slot.scope;
  return scope?.isAlive ? scope : undefined;
}

export interface CapabilityTools {
  hooks: OuterHooks;
  realm: RealmHelpers;
}

/** The carrier half of a capability: installs the API user code sees into a new realm. */
export interface CarrierCapability {
  install(global: object, slot: ScopeSlot, tools: CapabilityTools): void;
}

export function defineGlobal(global: object, name: string, value: unknown): void {
  Object.defineProperty(global, name, { value, writable: true, configurable: true, enumerable: false });
}

/**
 * Gives a realm one of the carrier's functions or objects as a global: through the membrane, so
 * that the realm sees a function of its own (named `name`), never the carrier's.
 */
export function exposeGlobal(realm: RealmHelpers, name: string, value: unknown): void {
  if (typeof value === "function") Object.defineProperty(value, "name", { value: name, configurable: true });
  realm.lazyGlobal(name, () => realm.membrane.toRealm(value));
}

/** Like exposeGlobal, for an object of functions that take user values as they are (see Membrane.hostFunction). */
export function exposeNamespace(realm: RealmHelpers, name: string, functions: Record<string, (...args: unknown[]) => unknown>): void {
  for (const [key, fn] of Object.entries(functions)) Object.defineProperty(fn, "name", { value: key, configurable: true });
  realm.lazyGlobal(name, () => {
    const namespace = realm.membrane.toRealm({}) as Record<string, unknown>;
    for (const [key, fn] of Object.entries(functions)) namespace[key] = realm.membrane.hostFunction(fn);
    return namespace;
  });
}
