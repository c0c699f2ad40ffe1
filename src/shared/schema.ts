/**
 * zod, loaded on first use: its ~55 ms of module loading is paid by the first Sandbox.create (or
 * the first message the hot-path check leaves to a schema), not by every `import("paddock")`.
 * Schemas are built on first use too; each is built once.
 */
import type * as Zod from "zod";
import { lazyModule, once } from "./lazy.js";

const loadZod = lazyModule<typeof Zod>("zod");

export function lazySchema<T>(build: (z: typeof Zod.z) => T): () => T {
  return once(() => build(loadZod().z));
}

/** zod's readable report of everything wrong with an input. */
export function describeIssues(error: Zod.z.core.$ZodError): string {
  return loadZod().z.prettifyError(error);
}
