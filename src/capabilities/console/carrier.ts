/** `console` for realms: captured per eval, formatted like Deno's, capped in volume. */
import type { CarrierCapability } from "../../carrier/capability.js";
import { exposeNamespace, liveScope } from "../../carrier/capability.js";
import type { LogLevel } from "./messages.js";
import { logCost } from "./log-cost.js";

/**
 * Deno's classes whose objects hold no user value: printed as Deno prints them (their own
 * custom inspect runs, on Deno's side). Any other value is formatted without custom inspect.
 */
const SELF_CONTAINED = ["URL", "URLSearchParams", "URLPattern", "Headers", "Blob", "DOMException", "TextEncoder", "TextDecoder", "CryptoKey"]
  .map((name) => (globalThis as Record<string, unknown>)[name])
  .filter((ctor): ctor is abstract new (...args: never[]) => object => typeof ctor === "function");

export const consoleCapability: CarrierCapability = {
  install(global, slot, { hooks, realm }) {
    let indent = "";
    const counts = new Map<string, number>();
    const timers = new Map<string, number>();

    const emit = (level: LogLevel, args: unknown[], suffix = ""): void => {
      const scope = liveScope(slot);
      if (!scope) return;
      if (scope.recordedFailure?.kind === "output") throw scope.breach("output", "OutputLimitError", "console output limit exceeded");
      // A few platform objects print as Deno prints them; for everything else, a custom-inspect
      // method of user code would get the carrier's own inspect function and options: none runs.
      const shown = args.map((arg) => {
        const outer = realm.outerOf(arg);
        return outer !== undefined && SELF_CONTAINED.some((ctor) => outer instanceof ctor) ? hooks.inspectPlatform(outer) : arg;
      });
      let message = hooks.inspectArgs(shown) + suffix;
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
