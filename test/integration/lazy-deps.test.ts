/**
 * Importing paddock does not load what a program may never use: the TypeScript transformer, the
 * HTTP client, the schema library, the module system's packages (semver, tar, pacote, esbuild) and
 * the JSON Schema validator (ajv; the MCP SDK is imported only to connect to a server) load on first use (src/shared/lazy.ts, src/shared/schema.ts),
 * so `import("paddock")` and the CLI start fast.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const ENTRY = fileURLToPath(new URL("../../src/index.js", import.meta.url));

/** Loads paddock in a new Node, runs `then`, and lists which of the lazy packages were loaded. */
function loadedAfter(then: string): string[] {
  const script = `
    import { createRequire } from "node:module";
    const paddock = await import(${JSON.stringify(ENTRY)});
    ${then}
    const cache = Object.keys(createRequire(import.meta.url).cache);
    console.log(JSON.stringify(["amaro", "undici", "zod", "semver", "tar", "pacote", "esbuild", "ajv", "typescript"].filter((name) => cache.some((path) => path.includes("/node_modules/" + name + "/")))));`;
  return JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" })) as string[];
}

test("importing paddock loads neither the TypeScript transformer, the HTTP client nor the schema library", () => {
  assert.deepEqual(loadedAfter(""), []);
});

test("the first sandbox loads the schema library (its options are checked), and a JavaScript eval nothing more", () => {
  const then = `
    paddock.configurePool({ size: 0 });
    const sandbox = await paddock.Sandbox.create();
    if (await sandbox.eval("1 + 1") !== 2) throw new Error("eval failed");
    await sandbox.close();`;
  assert.deepEqual(loadedAfter(then), ["zod"]);
});

test("the first TypeScript eval loads the transformer; the first network-enabled sandbox the client", () => {
  const then = `
    paddock.configurePool({ size: 0 });
    const plain = await paddock.Sandbox.create();
    if (await plain.eval("const n: number = 2; n") !== 2) throw new Error("TypeScript eval failed");
    await plain.close();
    const networked = await paddock.Sandbox.create({ net: { allow: ["example.com"] } });
    await networked.close();`;
  assert.deepEqual(loadedAfter(then), ["amaro", "undici", "zod"]);
});

test("a sandbox with a module policy loads semver (its allow list); the npm fetcher, unpacker and bundler wait for a first import", () => {
  const then = `
    paddock.configurePool({ size: 0 });
    const sandbox = await paddock.Sandbox.create({ modules: { allow: ["npm:left-pad@^1"], offline: true, cacheDir: ${JSON.stringify("/nonexistent/paddock-lazy-deps")} } });
    if (await sandbox.eval("1 + 1") !== 2) throw new Error("eval failed");
    await sandbox.close();`;
  assert.deepEqual(loadedAfter(then), ["zod", "semver"]);
});

test("a sandbox with JSON Schema tools loads the validator; one with MCP servers connects (and loads) nothing until it is used", () => {
  const then = `
    paddock.configurePool({ size: 0 });
    const withMcp = await paddock.Sandbox.create({ mcp: { unused: { command: "/nonexistent/mcp-server" } } });
    await withMcp.close();
    const first = JSON.stringify(Object.keys((await import("node:module")).createRequire(import.meta.url).cache).filter((path) => path.includes("/node_modules/ajv/")).length);
    if (first !== "0") throw new Error("ajv was loaded by a sandbox whose tools were never listed");
    const sandbox = await paddock.Sandbox.create({ tools: { echo: { inputSchema: { type: "object" }, execute: (input) => input } } });
    if ((await sandbox.eval("(await tools.echo({ a: 1 })).a")) !== 1) throw new Error("tool call failed");
    await sandbox.close();`;
  assert.deepEqual(loadedAfter(then), ["zod", "ajv"]);
});
