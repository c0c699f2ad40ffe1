/**
 * Dependencies loaded on first use, so that importing paddock (and starting its CLI) does not pay
 * for a TypeScript transformer or an HTTP client the program may never need. These packages ship
 * CommonJS builds, so they load synchronously where they are first needed.
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/** `make()`'s value, made on the first call and kept (it must not be undefined). */
export function once<T>(make: () => T): () => T {
  let value: T | undefined;
  return () => (value ??= make());
}

export function lazyModule<T>(specifier: string): () => T {
  return once(() => require(specifier) as T);
}
