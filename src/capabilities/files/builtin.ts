/** The host's side of built-in imports: an eval's imports of node:fs are linked to the carrier's own module. */
import type { EvalModules, NamedImport } from "../modules/host.js";
import { builtinModuleOf } from "./specifiers.js";

/** Splits an eval's imports into the built-ins (as modules to send, if any) and the others (for the module policy). */
export function builtinImports<T extends NamedImport>(named: readonly T[]): { builtins: EvalModules | undefined; others: T[] } {
  let imports: Record<string, string> | undefined;
  const others: T[] = [];
  for (const entry of named) {
    const builtin = builtinModuleOf(entry.specifier);
    if (builtin) (imports ??= {})[entry.specifier] = builtin;
    else others.push(entry);
  }
  return { builtins: imports ? { imports, units: new Map(), failures: new Map(), servedByCarrier: () => {} } : undefined, others };
}
