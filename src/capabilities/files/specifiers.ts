/**
 * The specifiers of the built-in modules every realm can import without a module policy, and the
 * module each one is (shared by both halves: the host links them to themselves, the carrier makes
 * them). Node's names, with and without `node:`.
 */
export const BUILTIN_MODULES: Readonly<Record<string, "node:fs" | "node:fs/promises">> = Object.freeze({
  "node:fs": "node:fs",
  fs: "node:fs",
  "node:fs/promises": "node:fs/promises",
  "fs/promises": "node:fs/promises",
});

export function builtinModuleOf(specifier: string): "node:fs" | "node:fs/promises" | undefined {
  return Object.hasOwn(BUILTIN_MODULES, specifier) ? BUILTIN_MODULES[specifier] : undefined;
}
