/**
 * Dependencies loaded on first use, so that importing paddock (and starting its CLI) does not pay
 * for a TypeScript transformer or an HTTP client the program may never need. These packages ship
 * CommonJS builds, so they load synchronously where they are first needed.
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

export function lazyModule<T>(specifier: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= require(specifier) as T);
}
