/**
 * Timers for realms. Each timer belongs to the eval that set it: it is counted against that eval's
 * limit, its callback runs only while that eval is alive, and it is cancelled when the eval ends.
 */
import type { CarrierCapability } from "../../carrier/capability.js";
import { defineGlobal, exposeGlobal, liveScope } from "../../carrier/capability.js";
import type { EvalScope } from "../../carrier/scope.js";
import { wake } from "../../carrier/pump.js";

type Callback = (...args: unknown[]) => unknown;

export const timersCapability: CarrierCapability = {
  install(global, slot, { realm }) {
    const active = new Map<number, () => void>();
    let nextId = 1;

    const guard = (scope: EvalScope, callback: unknown, args: unknown[]) => () => {
      if (!scope.isAlive) return;
      try {
        if (typeof callback === "function") (callback as Callback)(...args);
      } catch (error) {
        realm.reportError(error);
      }
      // A microtask checkpoint after each task, as HTML's event loop does: two timers due together
      // see each other's microtasks in order.
      if (scope.isAlive) realm.runMicrotasks();
      wake();
    };

    const schedule = (repeat: boolean, callback: unknown, delay: unknown, args: unknown[]): number => {
      const scope = liveScope(slot);
      if (!scope) return 0;
      if (active.size >= scope.limits.maxTimers) {
        throw scope.breach("resource", "ResourceLimitError", `more than ${scope.limits.maxTimers} timers pending`);
      }
      const id = nextId++;
      const ms = Math.max(0, Math.min(Number(delay) || 0, 2 ** 31 - 1));
      const run = guard(scope, callback, args);
      const handle = repeat ? setInterval(run, ms) : setTimeout(() => {
        forget();
        run();
      }, ms);
      const cancel = () => (repeat ? clearInterval(handle) : clearTimeout(handle));
      const unregister = scope.onEnd(() => {
        cancel();
        active.delete(id);
      });
      const forget = () => {
        active.delete(id);
        unregister();
      };
      active.set(id, () => {
        cancel();
        forget();
      });
      return id;
    };
    const clear = (id: unknown) => active.get(Number(id))?.();

    exposeGlobal(realm, "setTimeout", (callback: unknown, delay?: unknown, ...args: unknown[]) => schedule(false, callback, delay, args));
    exposeGlobal(realm, "setInterval", (callback: unknown, delay?: unknown, ...args: unknown[]) => schedule(true, callback, delay, args));
    exposeGlobal(realm, "clearTimeout", (id: unknown) => clear(id));
    exposeGlobal(realm, "clearInterval", (id: unknown) => clear(id));
    // AbortSignal.timeout() made on the carrier's own timers would outlive the eval and escape
    // maxTimers: this realm's AbortSignal makes it from the eval's timers instead.
    const timeout = (ms: number): AbortSignal => {
      // WebIDL [EnforceRange] unsigned long long, as Deno's own AbortSignal.timeout checks it.
      const milliseconds = Number(ms);
      if (!Number.isFinite(milliseconds) || Math.trunc(milliseconds) < 0 || Math.trunc(milliseconds) > Number.MAX_SAFE_INTEGER) {
        throw new TypeError(`Failed to execute 'AbortSignal.timeout': ${String(milliseconds)} is outside the accepted range of 0 to ${Number.MAX_SAFE_INTEGER}, inclusive.`);
      }
      const controller = new AbortController();
      schedule(false, () => controller.abort(new DOMException("The signal timed out.", "TimeoutError")), Math.trunc(milliseconds), []);
      return controller.signal;
    };
    Object.defineProperty(timeout, "name", { value: "timeout" });
    realm.onBuilt("AbortSignal", (realmAbortSignal) => {
      Object.defineProperty(realmAbortSignal, "timeout", { value: realm.membrane.toRealm(timeout), writable: true, enumerable: true, configurable: true });
    });
    defineGlobal(
      global,
      "queueMicrotask",
      realm.makeQueueMicrotask((error) => realm.reportError(error)),
    );
  },
};
