/**
 * A result small on the wire can be large in the host: an empty object is two bytes of V8
 * serialization and tens of bytes as a host object, a hole in an array none and eight. Large
 * results are therefore first decoded and counted in a worker thread with its own memory limit, so
 * that the host's heap only ever receives a result whose size is known to be within budget.
 */
import { Worker } from "node:worker_threads";

/** Results up to this size are decoded directly: their worst case in the host is a few tens of MB. */
export const DIRECT_DECODE_BYTES = 1024 * 1024;

/**
 * Counts the values of a decoded value (objects, and array elements by length, holes included),
 * stopping as soon as the count passes `maxValues`. Self-contained: the counting worker runs it too.
 */
export function countValues(root: unknown, maxValues: number): number {
  let count = 0;
  const pending: unknown[] = [root];
  const seen = new Set<unknown>();
  while (pending.length > 0 && count <= maxValues) {
    const value = pending.pop();
    count++;
    if (typeof value !== "object" || value === null || seen.has(value)) continue;
    seen.add(value);
    if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) continue;
    // Sizes first: a sparse array's length costs nothing to send and everything to walk.
    if (Array.isArray(value)) {
      count += value.length;
      if (count <= maxValues) for (const item of value) pending.push(item);
    } else if (value instanceof Map) {
      count += value.size;
      if (count <= maxValues) for (const [key, item] of value) pending.push(key, item);
    } else if (value instanceof Set) {
      count += value.size;
      if (count <= maxValues) for (const item of value) pending.push(item);
    } else {
      for (const key of Object.keys(value)) pending.push((value as Record<string, unknown>)[key]);
    }
  }
  return count;
}

const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { deserialize } = require("node:v8");
const countValues = ${countValues.toString()};
parentPort.on("message", ({ id, body, maxValues }) => {
  try {
    parentPort.postMessage({ id, count: countValues(deserialize(body), maxValues) });
  } catch (error) {
    parentPort.postMessage({ id, error: String(error && error.message) });
  }
});`;

interface Check {
  resolve: (count: number) => void;
  reject: (error: Error) => void;
}

let worker: Worker | undefined;
let nextId = 1;
const checks = new Map<number, Check>();

function counter(): Worker {
  if (worker) return worker;
  const created = new Worker(WORKER_SOURCE, { eval: true, resourceLimits: { maxOldGenerationSizeMb: 1024 } });
  created.on("message", ({ id, count, error }: { id: number; count?: number; error?: string }) => {
    const check = checks.get(id);
    checks.delete(id);
    if (!check) return;
    if (count === undefined) check.reject(new Error(error ?? "undecodable"));
    else check.resolve(count);
    // An idle counter would keep the heap of its last decode (hundreds of MB for a wide result).
    if (checks.size === 0) {
      worker = undefined;
      void created.terminate();
    }
  });
  // Out of memory or any other death: every pending check fails, and the next check starts afresh.
  created.on("error", (error) => {
    worker = undefined;
    for (const check of checks.values()) check.reject(error);
    checks.clear();
  });
  worker = created;
  return created;
}

/** Counts the values (objects, elements, entries) of a serialized result, without holding it here. */
export function countSerializedValues(body: Uint8Array, maxValues: number): Promise<number> {
  const id = nextId++;
  const target = counter();
  return new Promise((resolve, reject) => {
    checks.set(id, { resolve, reject });
    target.postMessage({ id, body, maxValues });
  });
}
