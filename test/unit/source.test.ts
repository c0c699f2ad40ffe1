import { test } from "node:test";
import assert from "node:assert/strict";
import { prepareSource } from "../../src/host/source.js";
import { ScriptError } from "../../src/host/errors.js";

test("plain scripts pass through untouched", () => {
  assert.deepEqual(prepareSource("1 + 1", "auto"), { code: "1 + 1", kind: "script" });
});

test("top-level await wraps the code and returns the last expression", () => {
  const prepared = prepareSource("const x = await f();\nx + 1", "auto");
  assert.equal(prepared.kind, "async");
  assert.match(prepared.code, /^var x; \(\(run\) => run\(\)\)\(async \(\) => \{\n/);
  assert.match(prepared.code, /;return \(\nx \+ 1\)/);
});

test("rewrites keep the user's lines and columns where they were", () => {
  const source = "const { a } = await f();\nlet b = 2\n(b)\n  boom(a)";
  const lines = prepareSource(source, "auto").code.split("\n");
  assert.equal(lines[1], "   ;( { a } = await f());");
  assert.equal(lines[2], " ;( b = 2");
  assert.equal(lines[3], "(b));return (");
  assert.equal(lines[4], "  boom(a))");
});

test("destructuring declarations are hoisted with all their names", () => {
  const prepared = prepareSource("const { a, b: [c, ...d], ...e } = await g();", "auto");
  assert.match(prepared.code, /^var a, c, d, e;/);
});

test("modules yield their default export", () => {
  assert.match(prepareSource("export default 42;", "auto").code, /\n\$paddock\$def = 42;/);
  assert.match(prepareSource("export default function f() {}", "auto").code, /return f; \}\)$/);
  assert.match(prepareSource("const y = 1; export { y as default };", "auto").code, /return y; \}\)$/);
});

test("imports are loaded ahead of the code, and listed (the policy is the sandbox's)", () => {
  // Imports only: a script after a first line that loads them; the user's lines stay where they were.
  const prepared = prepareSource("import x, { a as b } from 'npm:p';\nimport * as ns from \"q\";\nx + b + ns.c", "auto");
  assert.deepEqual(prepared.imports, [{ specifier: "npm:p", dynamic: false }, { specifier: "q", dynamic: false }]);
  assert.equal(prepared.kind, "prologue");
  const [prologue, ...lines] = prepared.code.split("\n");
  assert.equal(prologue, 'var $paddock$i0 = $paddock$import("npm:p"), { default: x, "a": b } = $paddock$i0; var $paddock$i1 = $paddock$import("q"), ns = $paddock$i1;');
  assert.equal(lines[0]!.trim(), "");
  assert.equal(lines[2], "x + b + ns.c");
  // With top-level await, inside the async wrapper.
  const awaited = prepareSource("import { a } from 'p';\nawait a", "auto");
  assert.equal(awaited.kind, "async");
  assert.match(awaited.code.split("\n")[0]!, /const \$paddock\$i0 = \$paddock\$import\("p"\), \{ "a": a \} = \$paddock\$i0;$/);
  assert.deepEqual(prepareSource("export * from 'https://example.com/x.js'", "auto").imports, [{ specifier: "https://example.com/x.js", dynamic: false }]);
  assert.deepEqual(prepareSource("const m = await import('z'); import(\"y\").then(() => m)", "auto").imports, [{ specifier: "z", dynamic: true }, { specifier: "y", dynamic: true }]);
  assert.equal(prepareSource("const name = 'z'; import(name)", "auto").imports, undefined);
});

test("TypeScript types are stripped with positions preserved", () => {
  const source = "const n: number = 1;\nlet s = n as unknown as string;\ns";
  const prepared = prepareSource(source, "auto");
  assert.equal(prepared.code.length, source.length);
  assert.equal(prepared.code.split("\n")[1]!.indexOf("n "), source.split("\n")[1]!.indexOf("n "));
});

test("enums fall back to a real transform", () => {
  assert.match(prepareSource("enum Color { Red }\nColor.Red", "ts").code, /Color/);
});

test("invalid TypeScript is a ScriptError when the caller said it is TypeScript", () => {
  assert.throws(() => prepareSource("let x: = 1", "ts"), (error: unknown) => error instanceof ScriptError && error.errorName === "SyntaxError");
});

test("invalid JavaScript is left for V8 to report, with the position acorn found", () => {
  assert.deepEqual(prepareSource("let a = 1;\n1 +* 2", "auto"), {
    code: "let a = 1;\n1 +* 2",
    kind: "script",
    syntaxError: { message: "Unexpected token", line: 2, column: 4 },
  });
});

test("preparation is cached by source", () => {
  assert.equal(prepareSource("await 1; 2", "auto"), prepareSource("await 1; 2", "auto"));
});

test("the completion value of a trailing if/else or try/catch is returned", () => {
  const prepared = prepareSource("const v = await 1;\nif (v) { 'yes' } else { 'no' }\n", "auto");
  assert.match(prepared.code, /\{;return \( 'yes'\) \}/);
  assert.match(prepared.code, /\{;return \( 'no'\) \}/);
  assert.match(prepareSource("try { await f() } catch (e) { e.message }", "auto").code, /\{;return \( e\.message\) \}/);
});
