/**
 * The per-eval scenarios: the same source text goes to Paddock and to every baseline, and every
 * result is checked, so that no engine is timed doing less work than the others.
 */
import { createHash } from "node:crypto";
import { isDeepStrictEqual } from "node:util";

/** What a scenario needs beyond ECMAScript itself; an engine without it reports n/a. */
export type Feature = "webcrypto";

export interface EvalScenario {
  readonly id: string;
  /** Row label in the table. */
  readonly title: string;
  readonly code: string;
  readonly needs: readonly Feature[];
  /** The completion value every engine must produce (compared after a JSON round trip). */
  readonly expected: unknown;
}

const LETTERS = 26;
const CONCAT_LENGTH = 1000;

const OBJECT = { id: 42, name: "paddock", tags: ["sandbox", "deno", "realm"], nested: { ok: true, ratio: 0.5, list: [1, 2, 3] } };

const SHA_INPUT = "paddock";

/** 100 deterministic records, half of them active: the input of the JSON scenario. */
const ITEMS = Array.from({ length: 100 }, (_, i) => ({ id: i, name: `item-${i}`, active: i % 2 === 0, price: (i % 17) + 0.25, qty: (i % 5) + 1 }));
type Item = (typeof ITEMS)[number];

/**
 * Defined once: the sandboxes run this function's source text, and the host runs the function
 * itself to know the expected answer. It must stay self-contained (no closures over this module).
 */
const transform = (items: Item[]) =>
  items.filter((item) => item.active).map((item) => ({ id: item.id, label: item.name.toUpperCase(), total: item.price * item.qty }));

/** Also the eval of the concurrency scenarios, where the cost under test is the fresh realm. */
export const ADD: EvalScenario = { id: "add", title: "`2 + 2`", code: "2 + 2", needs: [], expected: 4 };

export const EVAL_SCENARIOS: readonly EvalScenario[] = [
  { id: "noop", title: "noop `0`", code: "0", needs: [], expected: 0 },
  ADD,
  {
    id: "concat",
    title: "string concat (1,000 chars)",
    code: `let s = ""; for (let i = 0; i < ${CONCAT_LENGTH}; i++) s += String.fromCharCode(97 + (i % ${LETTERS})); s`,
    needs: [],
    expected: Array.from({ length: CONCAT_LENGTH }, (_, i) => String.fromCharCode(97 + (i % LETTERS))).join(""),
  },
  // JSON.stringify of a plain object is a valid object literal: the code builds the object anew.
  { id: "object", title: "JSON object construction", code: `(${JSON.stringify(OBJECT)})`, needs: [], expected: OBJECT },
  {
    id: "sha256",
    title: "SHA-256 (crypto.subtle, hex)",
    code: `(async () => {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(${JSON.stringify(SHA_INPUT)}));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
})()`,
    needs: ["webcrypto"],
    expected: createHash("sha256").update(SHA_INPUT).digest("hex"),
  },
  {
    id: "json100",
    title: "JSON parse+transform (100 items)",
    code: `(${transform.toString()})(JSON.parse(${JSON.stringify(JSON.stringify(ITEMS))}))`,
    needs: [],
    expected: transform(ITEMS),
  },
  {
    // Each eval first checks that the previous eval's global is gone, then leaves one behind for
    // the next: every sample after the first is an isolation check.
    id: "isolation",
    title: "globalThis isolation check",
    code: `const before = typeof leak; globalThis.leak = 1; before`,
    needs: [],
    expected: "undefined",
  },
];

/** Throws unless `value` is `expected` once both are reduced to JSON. */
export function assertResult(value: unknown, expected: unknown, what: string): void {
  const json = JSON.stringify(value);
  if (json === undefined || !isDeepStrictEqual(JSON.parse(json), expected)) {
    throw new Error(`${what}: wrong result ${json === undefined ? String(value) : json.slice(0, 200)}`);
  }
}
