/**
 * When structured clone refuses a value, V8 says only "… could not be cloned". This finds the first
 * refused value and its path ("result.items[2].fn is a function"), so the user knows what to fix.
 * Used by the carrier for results and by the host for globals.
 */
import { types } from "node:util";

export function findUncloneable(root: unknown, rootName: string): string | undefined {
  const queue: Array<[unknown, string]> = [[root, rootName]];
  const seen = new Set<unknown>();
  let visited = 0;
  while (queue.length > 0 && visited++ < 10_000) {
    const [value, path] = queue.shift()!;
    const problem = uncloneableKind(value);
    if (problem) return `${path} is ${problem}`;
    if (typeof value !== "object" || value === null || seen.has(value)) continue;
    seen.add(value);
    try {
      if (types.isMap(value)) {
        for (const [k, v] of value as Map<unknown, unknown>) queue.push([k, `${path} (a key)`], [v, `${path}.get(${describeKey(k)})`]);
      } else if (types.isSet(value)) {
        for (const v of value as Set<unknown>) queue.push([v, `${path} (an entry)`]);
      } else {
        for (const key of Object.keys(value)) {
          queue.push([(value as Record<string, unknown>)[key], Array.isArray(value) ? `${path}[${key}]` : `${path}${propertyPath(key)}`]);
        }
      }
    } catch {
      return `${path} could not be read (a getter threw)`;
    }
  }
  return undefined;
}

function uncloneableKind(value: unknown): string | undefined {
  if (typeof value === "function") return "a function";
  if (typeof value === "symbol") return "a symbol";
  if (typeof value !== "object" || value === null) return undefined;
  if (types.isProxy(value)) return "a Proxy";
  if (types.isPromise(value)) return "a Promise";
  if (types.isWeakMap(value) || types.isWeakSet(value)) return "a WeakMap or WeakSet";
  if (types.isGeneratorObject(value)) return "a generator";
  return undefined;
}

function propertyPath(key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

function describeKey(key: unknown): string {
  return typeof key === "string" ? JSON.stringify(key) : typeof key === "object" ? "{…}" : String(key);
}
