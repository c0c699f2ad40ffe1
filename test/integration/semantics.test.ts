/**
 * Integration: what user code sees and what comes back, against real carriers. Completion values,
 * top-level await, modules, TypeScript, error positions, structured clone of results, globals,
 * fresh realms vs persistent sandboxes, console and timers.
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Sandbox, ScriptError, PolicyError, SandboxError, type EvalOptions, type LogEntry } from "../../src/index.js";
import { expectFailure } from "../helpers.js";
import { LONG_TIMEOUT_MS } from "../timing.js";

/**
 * A sandbox shared by the tests of one describe block (isolation is not what they check). None of
 * them tests the sandbox's time limit (one sets a short limit of its own), so by default it is far
 * above their work, and above a fresh carrier's start on a busy machine.
 */
function sharedSandbox(options: Parameters<typeof Sandbox.create>[0] = { timeoutMs: LONG_TIMEOUT_MS }): () => Sandbox {
  let sandbox: Sandbox | undefined;
  before(async () => {
    sandbox = await Sandbox.create(options);
  });
  after(async () => {
    await sandbox?.close();
  });
  return () => {
    if (!sandbox) throw new Error("the shared sandbox was not created");
    return sandbox;
  };
}

async function scriptError(sandbox: Sandbox, code: string, options?: EvalOptions): Promise<ScriptError> {
  return expectFailure(sandbox, code, ScriptError, options);
}

/** Column (1-based) of `needle` on `line` (1-based) of `code`. */
function columnOf(code: string, line: number, needle: string): number {
  const text = code.split("\n")[line - 1];
  assert.ok(text !== undefined && text.includes(needle), `line ${line} of the test code does not contain ${needle}`);
  return text.indexOf(needle) + 1;
}

/** Every line of a ScriptError's stack after the first is a frame in `filename`, inside the user's source. */
function assertUserFrames(error: ScriptError, filename: string, sourceLines: number): void {
  const stack = error.stack ?? "";
  const [head, ...frames] = stack.split("\n");
  assert.ok(head?.includes(error.errorName), `stack head names the error: ${stack}`);
  assert.ok(frames.length > 0, `stack has frames: ${stack}`);
  for (const frame of frames) {
    // "at f (eval.js:1:2)", "at eval.js:1:2", or V8's "at async eval.js:1:2" for an awaiting caller.
    const match = /^ {4}at (?:async )?(?:.+ \()?([^()]+):(\d+):(\d+)\)?$/.exec(frame);
    assert.ok(match, `frame is a plain user frame: ${JSON.stringify(frame)} in ${stack}`);
    assert.equal(match[1], filename, `frame in the user's file: ${frame}`);
    assert.ok(Number(match[2]) >= 1 && Number(match[2]) <= sourceLines, `frame line within the user's ${sourceLines} lines: ${frame}`);
  }
  assert.doesNotMatch(stack, /data:|ext:|node:|file:|paddock|\/work\//, "no carrier or host detail in the stack");
}

describe("completion values", () => {
  const sandbox = sharedSandbox();

  const cases: Array<[string, unknown]> = [
    ["1 + 1", 2],
    ["var x = 5; x * 2", 10],
    ["let a = 1; const b = 2; a + b", 3],
    ["var onlyDeclared = 5", undefined],
    ["var y; y = 7", 7],
    ["if (true) { 'yes' } else { 'no' }", "yes"],
    ["if (false) { 'yes' } else { 'no' }", "no"],
    ["for (let i = 0; i < 3; i++) i", 2],
    ["let n = 0; while (n < 5) { n++ }", 4],
    ["let s = ''; for (const c of 'abc') { s += c; s }", "abc"],
    ["switch (2) { case 1: 'one'; break; case 2: 'two'; break }", "two"],
    ["try { throw 1 } catch { 'caught' }", "caught"],
    ["function f() { return 3 } f()", 3],
    ["'last'; 'really last'", "really last"],
    ["", undefined],
    ["// only a comment", undefined],
    ["({ a: 1 })", { a: 1 }],
    ["[1, 2].map((x) => x * 2)", [2, 4]],
  ];
  for (const [code, expected] of cases) {
    test(`${JSON.stringify(code)} → ${JSON.stringify(expected)}`, async () => {
      assert.deepEqual(await sandbox().eval(code), expected);
    });
  }

  test("a promise result is awaited", async () => {
    assert.equal(await sandbox().eval("Promise.resolve(9)"), 9);
    assert.equal(await sandbox().eval("new Promise((resolve) => setTimeout(() => resolve('later'), 5))"), "later");
    assert.equal(await sandbox().eval("(async () => { await null; return 'async fn' })()"), "async fn");
  });

  test("a rejected promise result is a ScriptError with the rejection", async () => {
    const error = await scriptError(sandbox(), "Promise.reject(new RangeError('nope'))");
    assert.equal(error.errorName, "RangeError");
    assert.match(error.message, /nope/);
    const nonError = await scriptError(sandbox(), "Promise.reject(5)");
    assert.equal(nonError.errorName, "Uncaught");
    assert.match(nonError.message, /5/);
  });
});

describe("top-level await", () => {
  const sandbox = sharedSandbox();

  test("works and still returns the last expression", async () => {
    assert.equal(await sandbox().eval("await Promise.resolve(3); 4"), 4);
    assert.equal(await sandbox().eval("const r = await 7; r + 1"), 8);
    assert.equal(await sandbox().eval("let t = 0; for await (const v of [Promise.resolve(1), 2]) t += v; t"), 3);
    assert.equal(await sandbox().eval("await new Promise((resolve) => setTimeout(resolve, 5)); 'after timer'"), "after timer");
    assert.equal(await sandbox().eval("const { a, b: [c] } = await Promise.resolve({ a: 1, b: [2] }); a + c"), 3);
  });

  test("the last statement's completion value is returned even when it is not an expression", async () => {
    assert.equal(await sandbox().eval("await 0; if (true) { 'yes' } else { 'no' }"), "yes");
    assert.equal(await sandbox().eval("const v = await 2; try { v * 2 } finally { }"), 4);
  });

  test("an awaited rejection is a ScriptError", async () => {
    const error = await scriptError(sandbox(), "await Promise.reject(new TypeError('bad await'))");
    assert.equal(error.errorName, "TypeError");
    assert.match(error.message, /bad await/);
  });

  test("errors after top-level await report the user's line and column", async () => {
    const plain = await scriptError(sandbox(), "0;\nnull.foo");
    const awaited = await scriptError(sandbox(), "await 0;\nnull.foo");
    assert.equal(plain.line, 2);
    assert.equal(awaited.line, plain.line);
    assert.equal(awaited.column, plain.column, `column ${awaited.column} should be ${plain.column}, as without await`);

    const code = "async function f() {\n  await 0;\n  throw new Error('x');\n}\nawait f()";
    const error = await scriptError(sandbox(), code);
    assert.equal(error.line, 3);
    assert.equal(error.column, columnOf(code, 3, "new Error"));
    assert.match(error.stack ?? "", /\n {4}at async eval\.js:5:1$/, `the caller frame points at \`await f()\`: ${error.stack}`);
    assertUserFrames(error, "eval.js", 5);
  });
});

describe("modules", () => {
  const sandbox = sharedSandbox();

  test("export default yields the default export", async () => {
    assert.equal(await sandbox().eval("export default 42"), 42);
    assert.deepEqual(await sandbox().eval("const x = { v: 3 };\nexport default x"), { v: 3 });
    assert.equal(await sandbox().eval("export default await Promise.resolve(5)"), 5);
    assert.equal(await sandbox().eval("export const y = 2;\nexport default y + 1"), 3);
  });

  test("export { x as default }", async () => {
    assert.equal(await sandbox().eval("const x = 3;\nexport { x as default }"), 3);
    assert.equal(await sandbox().eval("let a = 'A', b = 'B';\nexport { a, b as default }"), "B");
  });

  test("export default function: the function is the default export (and cannot cross)", async () => {
    const error = await scriptError(sandbox(), "export default function main() { return 1 }");
    assert.equal(error.errorName, "DataCloneError");
    assert.match(error.message, /result is a function/);
    // The declaration is hoisted and usable like any function declaration in the module.
    assert.equal(await sandbox().eval("export function double(n) { return n * 2 }\nexport default double(21)"), 42);
    assert.equal(await sandbox().eval("const v = twice(4);\nexport default v;\nfunction twice(n) { return n * 2 }"), 8);
  });

  test("a module without a default export yields undefined", async () => {
    assert.equal(await sandbox().eval("export const a = 1;"), undefined);
  });

  test("module code is strict", async () => {
    const error = await scriptError(sandbox(), "export const a = 1;\nundeclared = 5;\nexport default 1");
    assert.equal(error.errorName, "ReferenceError");
  });

  test("errors in a module report the user's position", async () => {
    const code = "export default (() => { throw new Error('m') })()";
    const error = await scriptError(sandbox(), code);
    assert.equal(error.line, 1);
    assert.equal(error.column, columnOf(code, 1, "new Error"));
    assertUserFrames(error, "eval.js", 1);
  });

  test("import statements are refused with PolicyError", async () => {
    for (const code of [
      "import os from 'node:os';\nexport default 1",
      "import { spawn } from 'child_process'; 1",
      "import * as path from 'https://deno.land/std/path/mod.ts'; 1",
      "import 'side-effect'; 1",
      "export * from 'node:os'",
      "export { hostname } from 'node:os'",
    ]) {
      const result = await sandbox().run(code);
      assert.equal(result.ok, false, code);
      if (result.ok) continue;
      assert.ok(result.error instanceof PolicyError, `${code}: expected PolicyError, got ${result.error.name}: ${result.error.message}`);
      assert.match(result.error.message, /no module policy/);
    }
  });

  test("dynamic import() is refused", async () => {
    // (node:fs is a built-in of every sandbox, over its own files: see test/files/.)
    const result = await sandbox().run("const m = await import('node:child_process'); typeof m.spawn");
    assert.equal(result.ok, false, `import('node:child_process') must not succeed (got ${JSON.stringify(result.ok && result.value)})`);
    // The refusal is an error of the realm itself (not an object of the carrier's realm), named like a static import's.
    const [ownError, name, message] = await sandbox().eval<unknown[]>(
      "await import('data:text/javascript,export default 1').then(() => ['imported'], (e) => [e instanceof Error, e.name, e.message])",
    );
    assert.equal(ownError, true, `the rejection is not an Error of the realm (${String(name)}: ${String(message)})`);
    assert.equal(name, "PolicyError");
    assert.match(String(message), /no module policy/);
  });
});

describe("TypeScript", () => {
  const sandbox = sharedSandbox();

  test("types are stripped: annotations, interfaces, type aliases, generics, as, satisfies, non-null", async () => {
    assert.equal(await sandbox().eval("const a: number = 3; a"), 3);
    assert.equal(await sandbox().eval("interface P { x: number }\nconst p: P = { x: 2 };\np.x"), 2);
    assert.equal(await sandbox().eval("type T = { a: string };\nconst t: T = { a: 'q' };\nt.a"), "q");
    assert.equal(await sandbox().eval("function id<T>(v: T): T { return v }\nid<string>('s')"), "s");
    assert.equal(await sandbox().eval("const id = <T,>(x: T): T => x;\nid(3)", { filename: "eval.ts" }), 3);
    assert.equal(await sandbox().eval("(5 as number) + 1"), 6);
    assert.equal(await sandbox().eval("const o = { a: 1 } satisfies Record<string, number>;\no.a"), 1);
    assert.equal(await sandbox().eval("let n!: number;\nn = 1;\nn!"), 1);
    assert.equal(await sandbox().eval("declare const ambient: number;\nabstract class Q { abstract f(): void }\n'ok'"), "ok");
    assert.equal(await sandbox().eval("function opt(this: void, x?: number): number { return x ?? 0 }\nopt()"), 0);
  });

  test("type-only imports and exports are dropped, not refused", async () => {
    assert.equal(await sandbox().eval("import type { X } from './x';\nconst v: X = 1 as X;\nv", { filename: "eval.ts" }), 1);
    assert.equal(await sandbox().eval("import type X from 'y';\nexport type { X };\nexport default 3"), 3);
    assert.deepEqual(await sandbox().eval("export interface I { a: number }\nexport default { a: 1 } satisfies I"), { a: 1 });
  });

  test("TypeScript with top-level await", async () => {
    assert.equal(await sandbox().eval("const v: number = await Promise.resolve(20);\nv + 1", { filename: "eval.ts" }), 21);
  });

  test("enums, namespaces and parameter properties work via the fallback transform", async () => {
    assert.equal(await sandbox().eval("enum E { A, B }\nE.B"), 1);
    assert.equal(await sandbox().eval("enum Color { Red = 'red', Green = 'green' }\nColor.Green", { language: "ts" }), "green");
    assert.equal(await sandbox().eval("namespace N { export const v = 3 }\nN.v", { language: "ts" }), 3);
    assert.equal(await sandbox().eval("class P { constructor(private x: number) {} get() { return this.x } }\nnew P(4).get()", { language: "ts" }), 4);
  });

  test("language: 'js' does not strip types", async () => {
    const error = await scriptError(sandbox(), "const a: number = 1; a", { language: "js" });
    assert.equal(error.errorName, "SyntaxError");
  });

  test("a .ts filename makes the code TypeScript, and positions point into the user's source", async () => {
    const code = "interface A { x: number }\nconst a: A = { x: 1 };\nfunction f(v: number): number {\n  throw new RangeError('r' + v);\n}\nf(a.x)";
    const error = await scriptError(sandbox(), code, { filename: "eval.ts" });
    assert.equal(error.errorName, "RangeError");
    assert.equal(error.message, "RangeError: r1");
    assert.equal(error.line, 4);
    assert.equal(error.column, columnOf(code, 4, "new RangeError"));
    assert.equal(error.stack, "RangeError: r1\n    at f (eval.ts:4:9)\n    at eval.ts:6:1");
    assertUserFrames(error, "eval.ts", 6);
  });

  test("types before the error on the same line do not move the column", async () => {
    const code = "const n: number = 1; const s: string = 'x'; throw new Error(s + n)";
    const error = await scriptError(sandbox(), code, { filename: "eval.ts" });
    assert.equal(error.line, 1);
    assert.equal(error.column, columnOf(code, 1, "new Error"));
  });

  test("errors in code that needs the fallback transform (enum) still point into the user's source", async () => {
    const code = "enum Color { Red, Green }\nconst c: Color = Color.Green;\nfunction f(): never {\n  throw new Error('c' + c);\n}\nf()";
    const error = await scriptError(sandbox(), code, { filename: "eval.ts" });
    assert.equal(error.message, "Error: c1");
    assert.equal(error.line, 4, `line ${error.line} should be 4: ${error.stack}`);
    assert.equal(error.column, columnOf(code, 4, "new Error"));
    assertUserFrames(error, "eval.ts", 6);
  });
});

describe("errors", () => {
  const sandbox = sharedSandbox();

  test("a thrown Error is a ScriptError with errorName, message, line, column and a user-only stack", async () => {
    const code = "const a = 1;\nfunction inner() {\n    throw new TypeError('bad ' + a);\n}\ninner();";
    const error = await scriptError(sandbox(), code, { filename: "job.js" });
    assert.ok(error instanceof SandboxError);
    assert.equal(error.name, "ScriptError");
    assert.equal(error.errorName, "TypeError");
    assert.equal(error.message, "TypeError: bad 1");
    assert.equal(error.line, 3);
    assert.equal(error.column, 11);
    assert.equal(error.stack, "TypeError: bad 1\n    at inner (job.js:3:11)\n    at job.js:5:1");
  });

  test("runtime errors thrown by the engine", async () => {
    const error = await scriptError(sandbox(), "const o = null;\no.x");
    assert.equal(error.errorName, "TypeError");
    assert.match(error.message, /Cannot read properties of null/);
    assert.equal(error.line, 2);
    assertUserFrames(error, "eval.js", 2);
    const reference = await scriptError(sandbox(), "missingVariable + 1");
    assert.equal(reference.errorName, "ReferenceError");
  });

  test("errors thrown inside callbacks of built-ins keep only user frames", async () => {
    const error = await scriptError(sandbox(), "[1, 2].map(() => { throw new Error('in map') })");
    assertUserFrames(error, "eval.js", 1);
    const json = await scriptError(sandbox(), "JSON.parse('{')");
    assert.equal(json.errorName, "SyntaxError");
    assertUserFrames(json, "eval.js", 1);
  });

  test("throwing a non-error value", async () => {
    const text = await scriptError(sandbox(), "throw 'str'");
    assert.equal(text.errorName, "Uncaught");
    assert.match(text.message, /str/);
    const object = await scriptError(sandbox(), "throw { code: 42 }");
    assert.equal(object.errorName, "Uncaught");
    assert.match(object.message, /code: 42/);
  });

  test("an error with a custom name keeps it", async () => {
    const error = await scriptError(sandbox(), "class MyError extends Error { name = 'MyError' }\nthrow new MyError('custom')");
    assert.equal(error.errorName, "MyError");
    assert.equal(error.message, "MyError: custom");
  });

  test("syntax errors are ScriptErrors with errorName SyntaxError and a line", async () => {
    const cases: Array<[string, number, EvalOptions?]> = [
      ["1 +", 1],
      ["let a = 1;\nlet b = 2;\nlet c = ;", 3],
      ["const ok = 1;\nfunction (", 2],
      ["let a = 1;\nlet b = 2;\nlet c = ;", 3, { filename: "x.js" }],
      ["const a: number = 1;\nconst x: number = ;", 2, { filename: "eval.ts" }],
      ["const a = 1;\nawait 0;\nlet = = 2;", 3],
    ];
    for (const [code, line, options] of cases) {
      const error = await scriptError(sandbox(), code, options);
      assert.equal(error.errorName, "SyntaxError", code);
      assert.equal(error.line, line, `${JSON.stringify(code)}: line ${String(error.line)} should be ${line} (${error.message})`);
      assert.equal(typeof error.column, "number", `${JSON.stringify(code)} has a column`);
    }
  });

  test("stacks seen inside the sandbox show only user frames", async () => {
    const stack = await sandbox().eval<string>("function g() { return new Error('x').stack }\ng()");
    assert.equal(stack, "Error: x\n    at g (eval.js:1:23)\n    at eval.js:2:1");
  });
});

describe("results cross by structured clone", () => {
  const sandbox = sharedSandbox();

  test("primitives and special numbers", async () => {
    assert.equal(await sandbox().eval("undefined"), undefined);
    assert.equal(await sandbox().eval("null"), null);
    assert.equal(await sandbox().eval("true"), true);
    assert.ok(Number.isNaN(await sandbox().eval("NaN")));
    assert.ok(Object.is(await sandbox().eval("-0"), -0));
    assert.equal(await sandbox().eval("Infinity"), Infinity);
    assert.equal(await sandbox().eval("-Infinity"), -Infinity);
    assert.equal(await sandbox().eval("10n ** 20n"), 10n ** 20n);
    assert.equal(await sandbox().eval("'héllo €'"), "héllo €");
    assert.deepEqual(await sandbox().eval("[-0, NaN, undefined, null, Infinity]"), [-0, NaN, undefined, null, Infinity]);
    assert.ok(Object.is((await sandbox().eval<number[]>("[-0]"))[0], -0));
  });

  test("Date, RegExp, Map, Set", async () => {
    const date = await sandbox().eval("new Date(Date.UTC(2024, 1, 29, 12))");
    assert.ok(date instanceof Date);
    assert.equal(date.toISOString(), "2024-02-29T12:00:00.000Z");
    const regexp = await sandbox().eval("/ab+c/gi");
    assert.ok(regexp instanceof RegExp);
    assert.equal(regexp.source, "ab+c");
    assert.equal(regexp.flags, "gi");
    const map = await sandbox().eval("new Map([[1, 'a'], ['k', { v: [1] }]])");
    assert.ok(map instanceof Map);
    assert.deepEqual(map, new Map<unknown, unknown>([[1, "a"], ["k", { v: [1] }]]));
    const set = await sandbox().eval("new Set([1, 'two', 3n])");
    assert.ok(set instanceof Set);
    assert.deepEqual(set, new Set([1, "two", 3n]));
  });

  test("typed arrays with correct contents, and no shared memory", async () => {
    const bytes = await sandbox().eval("new Uint8Array([1, 2, 255])");
    assert.ok(bytes instanceof Uint8Array);
    assert.deepEqual([...bytes], [1, 2, 255]);

    const sub = await sandbox().eval<Uint8Array>("new Uint8Array([1, 2, 3, 4]).subarray(1, 3)");
    assert.deepEqual([...sub], [2, 3]);
    assert.equal(sub.byteOffset, 0, "a view owns its own buffer");
    assert.equal(sub.buffer.byteLength, 2, "the buffer holds only the view's bytes, not the frame around it");

    const kinds = await sandbox().eval<Record<string, ArrayLike<number | bigint>>>(
      "({ i8: new Int8Array([-1, 127]), u8c: new Uint8ClampedArray([300]), i16: new Int16Array([-300]), u16: new Uint16Array([65535]), i32: new Int32Array([-5]), u32: new Uint32Array([4e9]), f32: new Float32Array([0.5]), f64: new Float64Array([1.5, -2.25]) })",
    );
    assert.ok(kinds.i8 instanceof Int8Array);
    assert.deepEqual([...(kinds.i8 as Int8Array)], [-1, 127]);
    assert.ok(kinds.u8c instanceof Uint8ClampedArray);
    assert.deepEqual([...(kinds.u8c as Uint8ClampedArray)], [255]);
    assert.ok(kinds.i16 instanceof Int16Array);
    assert.deepEqual([...(kinds.i16 as Int16Array)], [-300]);
    assert.ok(kinds.u16 instanceof Uint16Array);
    assert.deepEqual([...(kinds.u16 as Uint16Array)], [65535]);
    assert.ok(kinds.i32 instanceof Int32Array);
    assert.deepEqual([...(kinds.i32 as Int32Array)], [-5]);
    assert.ok(kinds.u32 instanceof Uint32Array);
    assert.deepEqual([...(kinds.u32 as Uint32Array)], [4e9]);
    assert.ok(kinds.f32 instanceof Float32Array);
    assert.deepEqual([...(kinds.f32 as Float32Array)], [0.5]);
    assert.ok(kinds.f64 instanceof Float64Array);
    assert.deepEqual([...(kinds.f64 as Float64Array)], [1.5, -2.25]);

    const view = await sandbox().eval<DataView>("const dv = new DataView(new ArrayBuffer(8), 2, 4); dv.setUint16(0, 0xbeef); dv");
    assert.ok(view instanceof DataView);
    assert.equal(view.byteLength, 4);
    assert.equal(view.getUint16(0), 0xbeef);

    // Two results never share memory with each other.
    const a = await sandbox().eval<Uint8Array>("new Uint8Array([7, 7])");
    const b = await sandbox().eval<Uint8Array>("new Uint8Array([7, 7])");
    a[0] = 9;
    assert.deepEqual([...b], [7, 7]);
  });

  test("BigInt64Array and BigUint64Array keep their type and values", async () => {
    const signed = await sandbox().run("new BigInt64Array([1n, -2n])");
    assert.ok(signed.ok, signed.ok ? "" : `${signed.error.name}: ${signed.error.message}`);
    assert.ok(signed.value instanceof BigInt64Array, `got ${Object.prototype.toString.call(signed.value)}`);
    assert.deepEqual([...signed.value], [1n, -2n]);
    const unsigned = await sandbox().run("new BigUint64Array([5n, 2n ** 64n - 1n])");
    assert.ok(unsigned.ok, unsigned.ok ? "" : `${unsigned.error.name}: ${unsigned.error.message}`);
    assert.ok(unsigned.value instanceof BigUint64Array);
    assert.deepEqual([...unsigned.value], [5n, 2n ** 64n - 1n]);
  });

  test("ArrayBuffer", async () => {
    const buffer = await sandbox().eval("new Uint8Array([9, 8, 7]).buffer");
    assert.ok(buffer instanceof ArrayBuffer);
    assert.deepEqual([...new Uint8Array(buffer)], [9, 8, 7]);
  });

  test("Errors keep name and message, and carry no carrier internals", async () => {
    const errors = await sandbox().eval<Record<string, Error>>(
      "({ e: new Error('plain'), t: new TypeError('bad'), r: new RangeError('range'), s: new SyntaxError('syn'), ref: new ReferenceError('ref'), ev: new EvalError('ev'), u: new URIError('uri') })",
    );
    const expected: Array<[string, ErrorConstructor, string, string]> = [
      ["e", Error, "Error", "plain"], ["t", TypeError, "TypeError", "bad"], ["r", RangeError, "RangeError", "range"],
      ["s", SyntaxError, "SyntaxError", "syn"], ["ref", ReferenceError, "ReferenceError", "ref"],
      ["ev", EvalError, "EvalError", "ev"], ["u", URIError, "URIError", "uri"],
    ];
    for (const [key, ctor, name, message] of expected) {
      const error = errors[key];
      assert.ok(error instanceof ctor, `${key} is a ${name}`);
      assert.equal(error.name, name);
      assert.equal(error.message, message);
      assert.doesNotMatch(error.stack ?? "", /data:|ext:|node:|file:/, `no carrier frames in a returned error's stack: ${error.stack}`);
    }
  });

  test("nested objects, arrays, cycles, sparse arrays, boxed primitives", async () => {
    assert.deepEqual(await sandbox().eval("({ a: { b: { c: [1, { d: 'deep' }] } }, e: [] })"), { a: { b: { c: [1, { d: "deep" }] } }, e: [] });
    const cyclic = await sandbox().eval<{ a: number; self: unknown; list: unknown[] }>("const o = { a: 1, list: [] }; o.self = o; o.list.push(o); o");
    assert.equal(cyclic.a, 1);
    assert.equal(cyclic.self, cyclic);
    assert.equal(cyclic.list[0], cyclic);
    const sparse = await sandbox().eval<unknown[]>("const s = [1, , 3]; s[10] = 'x'; s");
    assert.equal(sparse.length, 11);
    assert.equal(1 in sparse, false, "holes stay holes");
    assert.equal(sparse[2], 3);
    assert.equal(sparse[10], "x");
    const boxed = await sandbox().eval<unknown[]>("[new Boolean(false), new String('s'), new Number(3)]");
    assert.ok(boxed[0] instanceof Boolean);
    assert.ok(boxed[1] instanceof String);
    assert.ok(boxed[2] instanceof Number);
    // Getters are read; class instances arrive as plain objects.
    assert.deepEqual(await sandbox().eval("({ get g() { return 1 } })"), { g: 1 });
    assert.deepEqual(await sandbox().eval("new (class Foo { constructor() { this.a = 1 } })()"), { a: 1 });
  });

  test("large strings, inline and in a body", async () => {
    const small = await sandbox().eval<string>("'x'.repeat(60_000)");
    assert.equal(small.length, 60_000);
    const large = await sandbox().eval<string>("'é'.repeat(1_000_000)");
    assert.equal(large.length, 1_000_000);
    assert.equal(large, "é".repeat(1_000_000));
    const inObject = await sandbox().eval<{ s: string }>("({ s: 'ab'.repeat(200_000) })");
    assert.equal(inObject.s.length, 400_000);
  });

  test("a value that cannot cross is a ScriptError (DataCloneError) that says what and where", async () => {
    const cases: Array<[string, RegExp]> = [
      ["({ a: { b: () => 1 } })", /result\.a\.b is a function/],
      ["() => 1", /result is a function/],
      ["Symbol('s')", /result is a symbol/],
      ["({ list: [1, Symbol('s')] })", /result\.list\[1\] is a symbol/],
      ["new Proxy({}, {})", /result is a Proxy/],
      ["({ p: Promise.resolve(1) })", /result\.p is a Promise/],
      ["new WeakMap()", /result is a WeakMap/],
      ["({ m: new Map([['k', function named() {}]]) })", /result\.m\.get\("k"\) is a function/],
    ];
    for (const [code, message] of cases) {
      const error = await scriptError(sandbox(), code);
      assert.equal(error.errorName, "DataCloneError", code);
      assert.match(error.message, message, code);
    }
  });
});

describe("globals", () => {
  const sandbox = sharedSandbox({
    timeoutMs: 3_000,
    globals: { input: { list: [1, 2], when: new Date(0), tags: new Set(["a"]), lookup: new Map([["k", 1]]), bytes: new Uint8Array([1, 2]) }, n: 5 },
  });

  test("are visible as globals in every eval", async () => {
    assert.equal(await sandbox().eval("n + input.list.length"), 7);
    assert.equal(await sandbox().eval("globalThis.n"), 5);
    assert.deepEqual(await sandbox().eval("[input.when.getTime(), input.tags.has('a'), input.lookup.get('k'), input.bytes[1]]"), [0, true, 1, 2]);
  });

  test("have the realm's own prototypes", async () => {
    assert.deepEqual(
      await sandbox().eval(
        "[input instanceof Object, Array.isArray(input.list), input.list instanceof Array, input.when instanceof Date, input.tags instanceof Set, input.lookup instanceof Map, input.bytes instanceof Uint8Array, Object.getPrototypeOf(input) === Object.prototype]",
      ),
      [true, true, true, true, true, true, true, true],
    );
    assert.deepEqual(await sandbox().eval("input.list.map((x) => x * 10)"), [10, 20]);
  });

  test("per-eval globals override the sandbox's and apply to that eval only", async () => {
    assert.deepEqual(await sandbox().eval("[n, extra]", { globals: { n: 6, extra: "e" } }), [6, "e"]);
    assert.deepEqual(await sandbox().eval("[n, typeof extra]"), [5, "undefined"]);
  });

  test("mutations by one eval are not seen by the next", async () => {
    assert.equal(await sandbox().eval("input.list.push(3); n = 100; input.lookup.set('k', 2); input.list.length"), 3);
    assert.deepEqual(await sandbox().eval("[input.list.length, n, input.lookup.get('k')]"), [2, 5, 1]);
  });

  test("values are copies: the host's objects are untouched", async () => {
    const shared = { items: [1] };
    await sandbox().eval("shared.items.push(2); shared.items.length", { globals: { shared } });
    assert.deepEqual(shared.items, [1]);
  });

  test("non-cloneable globals are refused with a TypeError naming the path", async () => {
    await assert.rejects(Sandbox.create({ globals: { f: () => 1 } }), (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, /globals\.f is a function/);
      return true;
    });
    await assert.rejects(Sandbox.create({ globals: { a: { b: [1, Symbol("s")] } } }), /globals\.a\.b\[1\] is a symbol/);
    await assert.rejects(sandbox().eval("1", { globals: { a: { b: () => 1 } } }), (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, /globals\.a\.b is a function/);
      return true;
    });
    assert.equal(await sandbox().eval("n"), 5, "the sandbox still works");
  });
});

describe("fresh realm per eval", () => {
  const sandbox = sharedSandbox();

  test("globals, variables and functions do not survive", async () => {
    await sandbox().eval("var v = 1; let l = 2; function fn() {} globalThis.g = 3; class K {}");
    assert.deepEqual(await sandbox().eval("[typeof v, typeof l, typeof fn, typeof g, typeof K]"), ["undefined", "undefined", "undefined", "undefined", "undefined"]);
  });

  test("built-in prototypes are pristine next time", async () => {
    await sandbox().eval("Array.prototype.evil = 1; Object.prototype.polluted = true; String.prototype.trim = () => 'hijacked'; JSON.parse = () => 'hijacked'; Math.random = () => 4; 'done'");
    assert.deepEqual(await sandbox().eval("[[].evil, ({}).polluted, ' a '.trim(), JSON.parse('1'), Math.random() < 1]"), [undefined, undefined, "a", 1, true]);
  });

  test("Web API objects are pristine next time", async () => {
    await sandbox().eval(
      "try { URL.prototype.evil = 1 } catch {}\ntry { Headers.prototype.get = () => 'hijacked' } catch {}\ntry { crypto.subtle.digest = () => 'hijacked' } catch {}\nglobalThis.TextEncoder = null; console.log = () => {}; setTimeout = null;",
    );
    const result = await sandbox().run(
      "console.log('still captured');\n[typeof URL.prototype.evil, new Headers({ a: '1' }).get('a'), typeof TextEncoder, typeof setTimeout, (await crypto.subtle.digest('SHA-256', new Uint8Array(1))).byteLength]",
    );
    assert.ok(result.ok, result.ok ? "" : result.error.message);
    assert.deepEqual(result.value, ["undefined", "1", "function", "function", 32]);
    assert.deepEqual(result.logs.map((entry) => entry.message), ["still captured"]);
  });

  test("Web API prototypes and objects can be patched within the eval, as in a browser; the next eval sees them pristine", async () => {
    assert.deepEqual(
      await sandbox().eval("'use strict'; URL.prototype.x = 1; crypto.subtle.digest = null; Object.defineProperty(Response, 'json', { value: 1 }); [new URL('http://a/').x, crypto.subtle.digest, Response.json]"),
      [1, null, 1],
    );
    assert.deepEqual(await sandbox().eval("[new URL('http://a/').x, typeof crypto.subtle.digest, typeof Response.json]"), [undefined, "function", "function"]);
  });
});

describe("persistent sandboxes", () => {
  const sandbox = sharedSandbox({ persistent: true, timeoutMs: 3_000 });

  test("variables, functions, classes and globalThis properties survive across evals", async () => {
    await sandbox().eval("var a = 1; let b = 2; const c = 3; function f() { return a + b + c } globalThis.g = 10; class K { v() { return 5 } }");
    assert.deepEqual(await sandbox().eval("[a, b, c, f(), g, new K().v()]"), [1, 2, 3, 6, 10, 5]);
    await sandbox().eval("b = 20; a++");
    assert.deepEqual(await sandbox().eval("[a, b]"), [2, 20]);
  });

  test("let/const declared with top-level await survive", async () => {
    await sandbox().eval("let d = await Promise.resolve(4); const e = await 5; var v = await 6; const { x, y: [z] } = await Promise.resolve({ x: 7, y: [8] })");
    assert.deepEqual(await sandbox().eval("[d, e, v, x, z]"), [4, 5, 6, 7, 8]);
  });

  test("state built by one eval is used by the next", async () => {
    await sandbox().eval("const cache = new Map(); function remember(k, v) { cache.set(k, v); return cache.size }");
    assert.equal(await sandbox().eval("remember('a', 1)"), 1);
    assert.equal(await sandbox().eval("remember('b', 2)"), 2);
    assert.deepEqual(await sandbox().eval("[...cache.keys()]"), ["a", "b"]);
  });

  test("a persistent sandbox takes exactly one carrier", async () => {
    await assert.rejects(Sandbox.create({ persistent: true, carriers: 2 }), (error: unknown) => error instanceof TypeError && /persistent/.test(error.message) && /carrier/.test(error.message));
  });
});

describe("console", () => {
  const sandbox = sharedSandbox();

  async function logsOf(code: string): Promise<LogEntry[]> {
    const result = await sandbox().run(code);
    assert.ok(result.ok, result.ok ? "" : `${result.error.name}: ${result.error.message}`);
    return result.logs;
  }
  async function messagesOf(code: string): Promise<string[]> {
    return (await logsOf(code)).map((entry) => entry.message);
  }

  test("levels", async () => {
    const logs = await logsOf("console.log('l'); console.info('i'); console.warn('w'); console.error('e'); console.debug('d'); console.trace('t')");
    assert.deepEqual(logs.map((entry) => entry.level), ["log", "info", "warn", "error", "debug", "trace"]);
    assert.deepEqual(logs.slice(0, 5).map((entry) => entry.message), ["l", "i", "w", "e", "d"]);
    assert.match(logs[5]?.message ?? "", /t/);
  });

  test("entries have a level, a message and a time", async () => {
    const logs = await logsOf("console.log('a'); const t = Date.now(); while (Date.now() - t < 5) {} console.log('b')");
    assert.equal(logs.length, 2);
    for (const entry of logs) {
      assert.deepEqual(Object.keys(entry).sort(), ["level", "message", "time"]);
      assert.equal(typeof entry.time, "number");
      assert.ok(entry.time >= 0);
    }
    assert.ok((logs[1]?.time ?? 0) >= (logs[0]?.time ?? 0) + 4, "times are relative to the eval and increase");
  });

  test("Deno-like formatting of values", async () => {
    assert.deepEqual(
      await messagesOf(
        "console.log({ a: 1 }); console.log([1, 'x', { b: [2] }]); console.log('s', 1, true, null, undefined); console.log(new Map([[1, 2]])); console.log(new Set(['a'])); console.log(10n, Symbol('s')); console.log(function foo() {}); console.log({ nested: { deep: { deeper: { deepest: { x: 1 } } } } })",
      ),
      [
        "{ a: 1 }",
        '[ 1, "x", { b: [ 2 ] } ]',
        "s 1 true null undefined",
        "Map(1) { 1 => 2 }",
        'Set(1) { "a" }',
        "10n Symbol(s)",
        "[Function: foo]",
        "{\n  nested: {\n    deep: { deeper: { deepest: { x: 1 } } }\n  }\n}",
      ],
    );
    assert.deepEqual(await messagesOf("const o = { a: 1 }; o.self = o; console.log(o)"), ["<ref *1> { a: 1, self: [Circular *1] }"]);
    const [errorLine] = await messagesOf("console.log(new Error('shown'))");
    assert.match(errorLine ?? "", /^Error: shown\n {4}at eval\.js:1:13/);
  });

  test("format specifiers", async () => {
    assert.deepEqual(
      await messagesOf("console.log('%s is %d years', 'Bob', 42.5); console.log('%i|%f|%o|%O|%c|%%', 3.7, 1.5, { a: 1 }, { b: 2 }, 'color: red'); console.log('%s', 'x', 'extra', 1); console.log('%d', 'abc'); console.log('100%')"),
      ["Bob is 42 years", "3|1.5|{ a: 1 }|{ b: 2 }||%", "x extra 1", "NaN", "100%"],
    );
  });

  test("group indentation", async () => {
    assert.deepEqual(
      await messagesOf("console.group('G'); console.log('in'); console.group(); console.info('deeper\\nline2'); console.groupEnd(); console.groupEnd(); console.groupEnd(); console.log('out')"),
      ["G", "  in", "    deeper\n    line2", "out"],
    );
  });

  test("count and countReset", async () => {
    assert.deepEqual(
      await messagesOf("console.count(); console.count(); console.count('x'); console.countReset(); console.count(); console.count('x')"),
      ["default: 1", "default: 2", "x: 1", "default: 1", "x: 2"],
    );
  });

  test("assert", async () => {
    const logs = await logsOf("console.assert(1 === 1, 'never'); console.assert(false, 'bad', 1); console.assert(0)");
    assert.deepEqual(logs.map((entry) => [entry.level, entry.message]), [["error", "Assertion failed: bad 1"], ["error", "Assertion failed"]]);
  });

  test("counts and groups do not leak into the next eval", async () => {
    await sandbox().eval("console.count('leak'); console.group('open')");
    assert.deepEqual(await messagesOf("console.count('leak'); console.log('top')"), ["leak: 1", "top"]);
  });

  test("output is captured, never printed by the host", async () => {
    const marker = `marker-${Math.random().toString(36).slice(2)}`;
    const writes: string[] = [];
    const originalOut = process.stdout.write;
    const originalErr = process.stderr.write;
    const spy = (original: typeof process.stdout.write, stream: NodeJS.WriteStream) =>
      function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]): boolean {
        writes.push(String(chunk));
        return (original as (...args: unknown[]) => boolean).call(stream, chunk, ...rest);
      };
    process.stdout.write = spy(originalOut, process.stdout) as typeof process.stdout.write;
    process.stderr.write = spy(originalErr, process.stderr) as typeof process.stderr.write;
    let result;
    try {
      result = await sandbox().run(`console.log('${marker}'); console.error('${marker}'); await new Promise((r) => setTimeout(r, 80)); console.warn('${marker}')`);
    } finally {
      process.stdout.write = originalOut;
      process.stderr.write = originalErr;
    }
    assert.ok(result.ok);
    assert.equal(result.logs.length, 3);
    assert.ok(!writes.some((text) => text.includes(marker)), "the host wrote the sandbox's console output");
  });

  test("onLog receives entries as they arrive", async () => {
    let settled = false;
    const seen: Array<[string, boolean]> = [];
    // The eval waits 2 s between its entries: time enough, even on a busy machine, for the first
    // one to arrive while it still runs (the test waits for it, not for a fixed time).
    const pending = sandbox().eval("console.log('early'); await new Promise((r) => setTimeout(r, 2_000)); console.log('late'); 'done'", {
      onLog: (entry) => seen.push([entry.message, settled]),
      timeoutMs: LONG_TIMEOUT_MS,
    });
    void pending.then(() => (settled = true), () => (settled = true));
    while (seen.length === 0 && !settled) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(seen, [["early", false]], "the first entry arrives while the eval is still running");
    assert.equal(await pending, "done");
    assert.deepEqual(seen, [["early", false], ["late", false]]);
  });

  test("logs of a failed eval are kept", async () => {
    const result = await sandbox().run("console.log('before'); throw new Error('after')");
    assert.equal(result.ok, false);
    assert.deepEqual(result.logs.map((entry) => entry.message), ["before"]);
  });
});

describe("timers", () => {
  const sandbox = sharedSandbox();

  test("setTimeout, queueMicrotask and promise ordering", async () => {
    // Timers fire by due time. They are registered in due-time order here: a shorter timer
    // registered after a longer one would race the clock (a stalled carrier makes both due at once).
    assert.deepEqual(
      await sandbox().eval(
        "const order = [];\nsetTimeout(() => order.push('t0'), 0);\nsetTimeout(() => order.push('t10'), 10);\nqueueMicrotask(() => order.push('micro'));\nPromise.resolve().then(() => order.push('then'));\norder.push('sync');\nawait new Promise((r) => setTimeout(r, 30));\norder",
      ),
      ["sync", "micro", "then", "t0", "t10"],
    );
  });

  test("setTimeout passes extra arguments", async () => {
    assert.equal(await sandbox().eval("await new Promise((resolve) => setTimeout((a, b) => resolve(a + b), 0, 1, 2))"), 3);
  });

  test("setInterval and clearInterval", async () => {
    // Waits for the third tick rather than a fixed 60 ms (a busy machine may stall the carrier that
    // long), then a while longer: a cleared interval does not tick again.
    assert.equal(await sandbox().eval("let n = 0;\nconst id = setInterval(() => { n++; if (n === 3) clearInterval(id) }, 1);\nwhile (n < 3) await new Promise((r) => setTimeout(r, 5));\nawait new Promise((r) => setTimeout(r, 60));\nn"), 3);
  });

  test("clearTimeout cancels", async () => {
    assert.equal(await sandbox().eval("let fired = false;\nconst id = setTimeout(() => { fired = true }, 0);\nclearTimeout(id);\nawait new Promise((r) => setTimeout(r, 20));\nfired"), false);
  });

  test("timers left pending when an eval ends never fire later", async () => {
    const first = await sandbox().run("setTimeout(() => console.log('late timer'), 30); setInterval(() => console.log('late interval'), 10); 'done'");
    assert.ok(first.ok);
    assert.deepEqual(first.logs, []);
    const second = await sandbox().run("await new Promise((r) => setTimeout(r, 80)); console.log('second'); 'second'");
    assert.ok(second.ok);
    assert.deepEqual(second.logs.map((entry) => entry.message), ["second"]);
  });

  test("an error thrown in a timer callback fails the eval with ScriptError", async () => {
    const error = await scriptError(sandbox(), "setTimeout(() => { throw new TypeError('in timer') }, 0);\nawait new Promise((r) => setTimeout(r, 200));\n'unreached'");
    assert.equal(error.errorName, "TypeError");
    assert.equal(error.message, "TypeError: in timer");
    const fromInterval = await scriptError(sandbox(), "setInterval(() => { throw new Error('in interval') }, 1);\nawait new Promise((r) => setTimeout(r, 200))");
    assert.match(fromInterval.message, /in interval/);
  });

  test("a promise pending on a timer past the eval's limit is a TimeoutError", async () => {
    const result = await sandbox().run("await new Promise((r) => setTimeout(r, 10_000))", { timeoutMs: 100 });
    assert.equal(result.ok, false);
    if (!result.ok) assert.equal(result.error.name, "TimeoutError");
    assert.equal(await sandbox().eval("'still works'"), "still works");
  });
});

describe("concurrent evals", () => {
  test("20 evals at once in one sandbox each get their own result and logs", async () => {
    await using sandbox = await Sandbox.create({ timeoutMs: 5_000 });
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        sandbox.run(`await new Promise((r) => setTimeout(r, ${(20 - i) * 2}));\nconsole.log('log ${i}');\nglobalThis.mine = (globalThis.mine ?? 0) + ${i};\n[${i}, mine]`),
      ),
    );
    results.forEach((result, i) => {
      assert.ok(result.ok, result.ok ? "" : result.error.message);
      assert.deepEqual(result.value, [i, i]);
      assert.deepEqual(result.logs.map((entry) => entry.message), [`log ${i}`]);
    });
  });

  test("a failing eval does not disturb the others running with it", async () => {
    await using sandbox = await Sandbox.create({ timeoutMs: 5_000 });
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        sandbox.run(i % 3 === 0 ? `await new Promise((r) => setTimeout(r, 5)); throw new Error('fail ${i}')` : `await new Promise((r) => setTimeout(r, 5)); ${i}`),
      ),
    );
    results.forEach((result, i) => {
      if (i % 3 === 0) {
        assert.equal(result.ok, false);
        if (!result.ok) assert.match(result.error.message, new RegExp(`fail ${i}`));
      } else {
        assert.ok(result.ok);
        assert.equal(result.value, i);
      }
    });
  });
});
