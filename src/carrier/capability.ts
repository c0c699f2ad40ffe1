import type { EvalScope } from "./scope.js";
import type { OuterHooks } from "./harden.js";

/** Helpers compiled inside each realm, so what they create has the realm's own prototypes. */
export interface RealmHelpers {
  makeError(name: string, message: string): Error;
  adopt(value: unknown): unknown;
  /** A queueMicrotask for the realm's own queue; errors thrown by callbacks go to `report`. */
  makeQueueMicrotask(report: (error: unknown) => void): (callback: unknown) => void;
  /** A promise of the realm's own that settles as `outer` (a promise of the carrier) does. */
  adoptPromise<T>(outer: Promise<T>): Promise<T>;
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
