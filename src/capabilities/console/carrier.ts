/** `console` for realms: captured per eval, formatted like Deno's, capped in volume. */
import type { CarrierCapability } from "../../carrier/capability.js";
import { exposeNamespace, liveScope } from "../../carrier/capability.js";
import type { LogLevel } from "./messages.js";
import { logCost } from "./log-cost.js";
import { types } from "node:util";

const INSPECT_HOOKS = [Symbol.for("Deno.customInspect"), Symbol.for("nodejs.util.inspect.custom")];
/** As deep and as wide as the formatter looks (depth 4, 100 entries), and a little more. */
const HOOK_SEARCH_DEPTH = 6;
const HOOK_SEARCH_NODES = 5_000;

/**
 * Whether formatting `values` could call into user code: a custom-inspect method anywhere on what
 * the formatter would visit (own or inherited), or a Proxy (the formatter looks through proxies).
 * Reads descriptors only, so no getter of user code runs; a search too large to finish says yes.
 */
function hasInspectHooks(values: unknown[]): boolean {
  const seen = new Set<object>();
  const stack: Array<[unknown, number]> = values.map((value) => [value, 0]);
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if ((typeof value !== "object" && typeof value !== "function") || value === null || seen.has(value)) continue;
    if (types.isProxy(value) || seen.size >= HOOK_SEARCH_NODES) return true;
    seen.add(value);
    for (let proto: object | null = value; proto !== null; proto = Reflect.getPrototypeOf(proto)) {
      if (types.isProxy(proto)) return true;
      for (const hook of INSPECT_HOOKS) if (Reflect.getOwnPropertyDescriptor(proto, hook)) return true;
    }
    if (depth >= HOOK_SEARCH_DEPTH) continue;
    if (types.isMap(value) || types.isSet(value)) {
      for (const entry of value as Map<unknown, unknown>) stack.push([entry, depth + 1]);
    }
    if (ArrayBuffer.isView(value)) continue;
    // The formatter shows an array's first 100 entries; listing every key of a huge one would cost more than printing it.
    const keys = Array.isArray(value) ? Array.from({ length: Math.min(value.length, 101) }, (_, i) => String(i)) : Reflect.ownKeys(value);
    for (const key of keys) {
      const descriptor = Reflect.getOwnPropertyDescriptor(value, key);
      if (descriptor && "value" in descriptor) stack.push([descriptor.value, depth + 1]);
    }
  }
  return false;
}

export const consoleCapability: CarrierCapability = {
  install(global, slot, { hooks, realm }) {
    let indent = "";
    const counts = new Map<string, number>();
    const timers = new Map<string, number>();

    const emit = (level: LogLevel, args: unknown[], suffix = ""): void => {
      const scope = liveScope(slot);
      if (!scope) return;
      if (scope.recordedFailure?.kind === "output") throw scope.breach("output", "OutputLimitError", "console output limit exceeded");
      // Platform objects print as Deno prints them; a custom-inspect method of user code would be
      // called by the formatter with the carrier's own inspect function and options, so none runs.
      const shown = args.map((arg) => realm.membrane.outerOf(arg) ?? arg);
      let message = hooks.inspectArgs(shown, !hasInspectHooks(args)) + suffix;
      if (indent) message = indent + message.replaceAll("\n", "\n" + indent);
      const cost = logCost({ message });
      if (scope.logBytes + cost > scope.limits.maxLogBytes) {
        throw scope.breach("output", "OutputLimitError", `console output exceeded its limit of ${scope.limits.maxLogBytes} bytes`);
      }
      scope.logBytes += cost;
      scope.addLog({ level, message, time: Math.round(scope.elapsedMs() * 1000) / 1000 });
    };
    const label = (value: unknown): string => (value === undefined ? "default" : String(value));

    const console = {
      log: (...args: unknown[]) => emit("log", args),
      info: (...args: unknown[]) => emit("info", args),
      warn: (...args: unknown[]) => emit("warn", args),
      error: (...args: unknown[]) => emit("error", args),
      debug: (...args: unknown[]) => emit("debug", args),
      trace: (...args: unknown[]) => {
        // The stack shows the user's frames only (see the outer realm's prepareStackTrace).
        const frames = (new Error().stack ?? "").split("\n").slice(1);
        emit("trace", ["Trace" + (args.length ? ":" : ""), ...args], frames.length ? "\n" + frames.join("\n") : "");
      },
      dir: (value: unknown) => emit("log", [value]),
      dirxml: (...args: unknown[]) => emit("log", args),
      table: (...args: unknown[]) => emit("log", args),
      assert: (condition: unknown, ...args: unknown[]) => {
        if (!condition) emit("error", ["Assertion failed" + (args.length ? ":" : ""), ...args]);
      },
      count: (name?: unknown) => {
        const key = label(name);
        const next = (counts.get(key) ?? 0) + 1;
        counts.set(key, next);
        emit("info", [`${key}: ${next}`]);
      },
      countReset: (name?: unknown) => void counts.delete(label(name)),
      time: (name?: unknown) => void timers.set(label(name), performance.now()),
      timeLog: (name?: unknown, ...args: unknown[]) => {
        const start = timers.get(label(name));
        if (start !== undefined) emit("info", [`${label(name)}: ${Math.round(performance.now() - start)}ms`, ...args]);
      },
      timeEnd: (name?: unknown) => {
        const start = timers.get(label(name));
        timers.delete(label(name));
        if (start !== undefined) emit("info", [`${label(name)}: ${Math.round(performance.now() - start)}ms`]);
      },
      group: (...args: unknown[]) => {
        if (args.length) emit("log", args);
        indent += "  ";
      },
      groupCollapsed: (...args: unknown[]) => {
        if (args.length) emit("log", args);
        indent += "  ";
      },
      groupEnd: () => void (indent = indent.slice(2)),
      clear: () => {},
    };
    exposeNamespace(realm, "console", console);
  },
};
