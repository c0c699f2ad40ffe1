import type { EvalScope } from "./scope.js";
import type { OuterHooks } from "./harden.js";

/** Helpers compiled inside each realm, so what they create has the realm's own prototypes. */
export interface RealmHelpers {
  makeError(name: string, message: string): Error;
  adopt(value: unknown): unknown;
}

/** The carrier half of a capability: installs the API user code sees into a realm, per eval. */
export interface CarrierCapability {
  install(global: Record<string, unknown>, scope: EvalScope, tools: { hooks: OuterHooks; realm: RealmHelpers }): void;
}

export function defineGlobal(global: object, name: string, value: unknown): void {
  Object.defineProperty(global, name, { value, writable: true, configurable: true, enumerable: false });
}
