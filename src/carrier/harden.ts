/**
 * Hardening of the carrier's own (outer) realm, done once at start.
 *
 * Realms reach Deno's Web APIs only through their membrane (web/membrane.ts), which hands them no
 * outer object. Behind it, as a second wall: everything the Web APIs are made of is deep-frozen, so
 * nothing one eval did through them can change what the next one sees; code generation from
 * strings is off in the outer realm (V8 flag), so even a constructor chain that reached the outer
 * Function could not compile code there; globals that reveal the host or persist state are deleted.
 */

/** Outer globals no realm may see and the carrier itself no longer needs after start. */
const REMOVED_GLOBALS = [
  "Deno", "process", "Buffer", "global", "setImmediate", "clearImmediate", "require",
  "localStorage", "sessionStorage", "Storage", "caches", "CacheStorage", "Cache",
  "BroadcastChannel", "Worker", "WebSocket", "WebSocketStream", "EventSource",
  "navigator", "Navigator", "NavigatorUAData", "location", "Location",
  "alert", "confirm", "prompt", "close", "closed", "name",
  "Lock", "LockManager", "GPU", "OffscreenCanvas", "createImageBitmap",
];

/**
 * Frames never shown to user code: the carrier's (a data: URL), Deno's own, and the async wrapper
 * around top-level-await code, which the carrier compiles on line 0.
 */
export function isInternalFrame(site: NodeJS.CallSite): boolean {
  const file = site.getFileName();
  if (typeof file !== "string") return false;
  return file.startsWith("data:") || file.startsWith("paddock:") || file.startsWith("ext:") || file.startsWith("node:") || site.getLineNumber() === 0;
}

export interface OuterHooks {
  /**
   * Format user values: custom-inspect methods are never called (Deno's formatter would hand them
   * its own inspect function and options, objects of the carrier's realm).
   */
  inspectArgs: (args: unknown[]) => string;
  inspect: (value: unknown) => string;
  /** Formats one of Deno's own platform objects that holds no user value, as Deno prints it. */
  inspectPlatform: (value: unknown) => string;
  cpuMs: () => number;
  /** A full, synchronous collection (V8's gc()); does nothing if the carrier was started without it. */
  collectGarbage: () => void;
}

/** Captures what the carrier needs from Deno, then removes Deno and friends from the outer realm. */
export function hardenOuterRealm(): OuterHooks {
  const inspect = Deno.inspect;
  const internals = (Deno as unknown as Record<symbol, { inspectArgs?: (args: unknown[], options: object) => string }>)[Deno.internal];
  const denoInspectArgs = internals?.inspectArgs;
  const cpuUsage = Deno.cpuUsage;
  // V8's collector, exposed by the carrier's --expose-gc flag for collection in idle time. V8 makes
  // it a non-deletable global of the outer realm, which no realm reaches (and calling it would only
  // cost the caller's own carrier time).
  const collect = (globalThis as { gc?: () => void }).gc;
  const inspectOptions = { colors: false, depth: 4, iterableLimit: 100, strAbbreviateSize: 10_000 };
  const userOptions = { ...inspectOptions, customInspect: false };
  const hooks: OuterHooks = {
    inspect: (value) => inspect(value, userOptions),
    inspectPlatform: (value) => inspect(value, inspectOptions),
    inspectArgs: (args) =>
      denoInspectArgs ? denoInspectArgs(args, userOptions) : args.map((a) => (typeof a === "string" ? a : inspect(a, userOptions))).join(" "),
    cpuMs: () => {
      const usage = cpuUsage();
      return (usage.user + usage.system) / 1000;
    },
    collectGarbage: () => collect?.(),
  };

  const outer = globalThis as Record<string, unknown>;
  for (const name of REMOVED_GLOBALS) delete outer[name];
  // Blob URLs live in a carrier-wide registry that outlives evals, and nothing can fetch them.
  delete (URL as unknown as Record<string, unknown>).createObjectURL;
  delete (URL as unknown as Record<string, unknown>).revokeObjectURL;
  for (const name of Object.getOwnPropertyNames(outer)) {
    if (name.startsWith("GPU") || name.startsWith("on")) delete outer[name];
  }
  // Errors made by the outer realm (a Web API rejecting bad input) are seen by user code too: their
  // stacks show the user's frames only, like errors made inside realms.
  Error.prepareStackTrace = (error: unknown, sites: NodeJS.CallSite[]) => {
    let head: string;
    try {
      head = Error.prototype.toString.call(error);
    } catch {
      head = "Error";
    }
    return head + sites.filter((site) => !isInternalFrame(site)).map((site) => `\n    at ${site}`).join("");
  };
  // An unhandled rejection or error in some realm must not end the carrier (Deno's default).
  globalThis.addEventListener("unhandledrejection", (event) => event.preventDefault());
  globalThis.addEventListener("error", (event) => event.preventDefault());
  return hooks;
}

/**
 * Freezes `roots` and everything reachable from them through properties, accessors and
 * prototypes. The outer global object itself is not frozen (Deno keeps state on it) and is never
 * handed to a realm.
 */
export function deepFreeze(roots: readonly unknown[]): number {
  const seen = new Set<unknown>([globalThis]);
  const stack: unknown[] = [...roots];
  while (stack.length > 0) {
    const value = stack.pop();
    if ((typeof value !== "object" && typeof value !== "function") || value === null || seen.has(value)) continue;
    seen.add(value);
    Object.freeze(value);
    stack.push(Object.getPrototypeOf(value));
    for (const key of Reflect.ownKeys(value)) {
      const descriptor = Reflect.getOwnPropertyDescriptor(value, key);
      if (!descriptor) continue;
      if ("value" in descriptor) stack.push(descriptor.value);
      else stack.push(descriptor.get, descriptor.set);
    }
  }
  return seen.size;
}

/** Prototypes that are reachable from any object but not named by a global. */
export function hiddenIntrinsics(): unknown[] {
  const generator = function* () {};
  const asyncGenerator = async function* () {};
  const asyncFunction = async function () {};
  return [
    Object.getPrototypeOf([][Symbol.iterator]()),
    Object.getPrototypeOf(new Map()[Symbol.iterator]()),
    Object.getPrototypeOf(new Set()[Symbol.iterator]()),
    Object.getPrototypeOf(""[Symbol.iterator]()),
    Object.getPrototypeOf(/a/[Symbol.matchAll]("")),
    Object.getPrototypeOf(generator),
    Object.getPrototypeOf(generator()),
    Object.getPrototypeOf(asyncGenerator),
    Object.getPrototypeOf(asyncGenerator()),
    Object.getPrototypeOf(asyncFunction),
    Object.getPrototypeOf(Uint8Array),
    Object.getPrototypeOf(new ReadableStream().getReader()),
    Object.getPrototypeOf(new Response("").body!.getReader()),
    // Iterators of Web API objects, iterator helpers and wrappers: each has a prototype of its own.
    Object.getPrototypeOf(new Headers()[Symbol.iterator]()),
    Object.getPrototypeOf(new URLSearchParams()[Symbol.iterator]()),
    Object.getPrototypeOf(new FormData()[Symbol.iterator]()),
    Object.getPrototypeOf((new ReadableStream() as unknown as AsyncIterable<unknown>)[Symbol.asyncIterator]()),
    Object.getPrototypeOf([].values().map((x) => x)),
    Object.getPrototypeOf(Iterator.from({ next: () => ({ done: true, value: undefined }) })),
    Object.getPrototypeOf(new Intl.Segmenter().segment("")),
    Object.getPrototypeOf(new Intl.Segmenter().segment("")[Symbol.iterator]()),
  ];
}
