/**
 * Integration: the paddock command, spawned as a real process (with real carriers).
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The package root: dist/test/integration/ is three directories below it. */
const root = fileURLToPath(new URL("../../../", import.meta.url));
const bin = join(root, "bin", "paddock.js");

/**
 * Each run is a new node process that starts carriers (its own, and the warm pool's): seconds on a
 * busy machine. The timeout only catches a command that never exits.
 */
const CLI_TIMEOUT_MS = 120_000;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function paddock(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd: root, timeout: CLI_TIMEOUT_MS }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "paddock-cli-test-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("paddock cli", { concurrency: 4 }, () => {
  test("eval prints the value and exits 0", async () => {
    const result = await paddock(["eval", "1 + 1"]);
    assert.deepEqual(result, { code: 0, stdout: "2\n", stderr: "" });
  });

  test("eval prints JSON for plain values", async () => {
    const result = await paddock(["eval", "({ a: [1, 'two'], b: null })"]);
    assert.equal(result.code, 0);
    assert.deepEqual(JSON.parse(result.stdout), { a: [1, "two"], b: null });
  });

  test("eval prints nothing for undefined", async () => {
    assert.deepEqual(await paddock(["eval", "void 0"]), { code: 0, stdout: "", stderr: "" });
  });

  test("a failing script exits 1 with a readable error on stderr", async () => {
    const result = await paddock(["eval", "const o = null;\no.x"]);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, "");
    assert.match(result.stderr, /TypeError: Cannot read properties of null \(reading 'x'\)/);
    assert.match(result.stderr, /at eval\.js:2:/);
    assert.doesNotMatch(result.stderr, /node:internal|file:\/\/|data:/, "no host or carrier frames");
  });

  test("a syntax error exits 1", async () => {
    const result = await paddock(["eval", "1 +"]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /SyntaxError/);
  });

  test("run executes a TypeScript file", async () => {
    const file = join(dir, "job.ts");
    writeFileSync(file, "interface Point { x: number; y: number }\nconst p: Point = { x: 3, y: 4 };\nconst len = (q: Point): number => Math.hypot(q.x, q.y);\nconsole.log('computing');\nexport default { len: len(p) };\n");
    const result = await paddock(["run", file]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), { len: 5 });
    assert.equal(result.stderr, "computing\n");
  });

  test("errors in a file name the file and the line", async () => {
    const file = join(dir, "broken.ts");
    writeFileSync(file, "const a: number = 1;\nfunction f(): never {\n  throw new RangeError('bad ' + a);\n}\nf();\n");
    const result = await paddock(["run", file]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /RangeError: bad 1/);
    assert.match(result.stderr, /broken\.ts:3:9/);
    assert.doesNotMatch(result.stderr, new RegExp(dir.replaceAll("\\", "\\\\")), "the host's directory is not shown");
  });

  test("console output goes to stderr, the value to stdout", async () => {
    const result = await paddock(["eval", "console.log('to stderr'); console.error('also'); 'value'"]);
    assert.equal(result.code, 0);
    assert.equal(result.stdout, '"value"\n');
    assert.equal(result.stderr, "to stderr\nalso\n");
  });

  test("--timeout-ms stops an endless loop with TimeoutError", async () => {
    const started = Date.now();
    const result = await paddock(["eval", "--timeout-ms", "200", "while (true) {}"]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /TimeoutError/);
    // The flag set the limit that stopped it (the wall clock of a process start on a busy machine
    // cannot tell 200 ms from the default 5 s) ...
    assert.match(result.stderr, /within 200 ms/);
    // ... and the command exited after it, well before it would have been killed as hung.
    assert.ok(Date.now() - started < CLI_TIMEOUT_MS / 2, `took ${Date.now() - started} ms`);
  });

  test("--max-log-bytes and --max-result-bytes", async () => {
    const logs = await paddock(["eval", "--max-log-bytes", "50", "for (let i = 0; i < 100; i++) console.log('0123456789')"]);
    assert.equal(logs.code, 1);
    assert.match(logs.stderr, /OutputLimitError/);
    const value = await paddock(["eval", "--max-result-bytes", "1024", "['x'.repeat(5000)]"]);
    assert.equal(value.code, 1);
    assert.match(value.stderr, /OutputLimitError/);
  });

  test("--globals and --ts", async () => {
    const globals = await paddock(["eval", "--globals", '{"input":{"n":20}}', "input.n + 1"]);
    assert.deepEqual(globals, { code: 0, stdout: "21\n", stderr: "" });
    const ts = await paddock(["eval", "--ts", "const n: number = 2; n * 3"]);
    assert.deepEqual(ts, { code: 0, stdout: "6\n", stderr: "" });
  });

  test("a refused import and fetch exit 1 with PolicyError", async () => {
    const imported = await paddock(["eval", "import os from 'node:os'"]);
    assert.equal(imported.code, 1);
    assert.match(imported.stderr, /PolicyError/);
    const fetched = await paddock(["eval", "await fetch('https://example.com/')"]);
    assert.equal(fetched.code, 1);
    assert.match(fetched.stderr, /PolicyError: .*no network policy/);
  });

  test("--allow and --allow-private grant fetch", async () => {
    const server = createServer((_request, response) => response.end("from loopback"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const code = `await (await fetch("http://127.0.0.1:${port}/")).text()`;
      const granted = await paddock(["eval", "--allow", `127.0.0.1:${port}`, "--allow-private", "127.0.0.1", code]);
      assert.deepEqual(granted, { code: 0, stdout: '"from loopback"\n', stderr: "" });
      const notPrivate = await paddock(["eval", "--allow", `127.0.0.1:${port}`, code]);
      assert.equal(notPrivate.code, 1);
      assert.match(notPrivate.stderr, /PolicyError: fetch to 127\.0\.0\.1:\d+ refused: loopback address/);
    } finally {
      server.close();
    }
  });

  test("usage errors exit 2", async () => {
    const unknown = await paddock(["frobnicate"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /usage:/);
    const badFlag = await paddock(["eval", "--timeout-ms", "soon", "1"]);
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.stderr, /--timeout-ms must be an integer/);
  });

  test("--help prints usage and exits 0", async () => {
    const result = await paddock(["--help"]);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /paddock eval <code>/);
  });
});
