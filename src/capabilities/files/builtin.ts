/**
 * The host's side of built-in imports: `node:fs`, `fs`, `node:fs/promises` and `fs/promises` are
 * importable in every sandbox, without a module policy. An eval that names one gets it linked to
 * the realm's fs units (realm.ts), which the carrier is sent with the first eval that needs them.
 */
import type { EvalModules, NamedImport } from "../modules/host.js";
import type { ModuleUnit } from "../modules/messages.js";
import { FS_UNITS } from "./realm.js";

const BUILTIN_MODULES: ReadonlyMap<string, string> = new Map([
  ["node:fs", "node:fs"],
  ["fs", "node:fs"],
  ["node:fs/promises", "node:fs/promises"],
  ["fs/promises", "node:fs/promises"],
]);

const UNITS: ReadonlyMap<string, ModuleUnit> = new Map(FS_UNITS.map((unit) => [unit.key, unit]));

/** Splits an eval's imports into the built-ins (as modules to send, if any) and the others (for the module policy). */
export function builtinImports<T extends NamedImport>(named: readonly T[]): { builtins: EvalModules | undefined; others: T[] } {
  let imports: Record<string, string> | undefined;
  const others: T[] = [];
  for (const entry of named) {
    const builtin = BUILTIN_MODULES.get(entry.specifier);
    if (builtin) (imports ??= {})[entry.specifier] = builtin;
    else others.push(entry);
  }
  return { builtins: imports ? { imports, units: new Map(UNITS), failures: new Map(), servedByCarrier: () => {} } : undefined, others };
}
