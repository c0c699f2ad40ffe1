/** `console` for realms: captured per eval, formatted like Deno's, capped in volume. */
import type { CarrierCapability } from "../../carrier/capability.js";
import { defineGlobal, liveScope } from "../../carrier/capability.js";
import type { LogLevel } from "./messages.js";
import { logCost } from "./log-cost.js";

export const consoleCapability: CarrierCapability = {
  install(global, slot, { hooks }) {
    let indent = "";
    const counts = new Map<string, number>();
    const timers = new Map<string, number>();

    const emit = (level: LogLevel, args: unknown[], suffix = ""): void => {
      const scope = liveScope(slot);
      if (!scope) return;
      if (scope.recordedFailure?.kind === "output") throw scope.breach("output", "OutputLimitError", "console output limit exceeded");
      let message = hooks.inspectArgs(args) + suffix;
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
    defineGlobal(global, "console", console);
  },
};
