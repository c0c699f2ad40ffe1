/**
 * URL modules, fetched by the host from a real HTTP server on loopback: relative, root-relative
 * and absolute imports between them, the policy on every URL and every redirect hop, and the
 * address checks of fetch (a loopback server is reachable only when modules.allowPrivate says so).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Sandbox, ModuleError, PolicyError, type SandboxOptions } from "../../src/index.js";
import { errorOf, withSandbox as withFreshSandbox } from "../helpers.js";

let server: Server;
let origin: string;
const requests: string[] = [];
const cacheDirs: string[] = [];
let version = "1";

const MODULES: Record<string, string> = {
  "/lib/main.js": `import { helper } from "./util.js"; import { shared } from "/shared/index.js"; export const greet = (name) => helper(name) + shared; export default "main";`,
  "/lib/util.js": `export const helper = (name) => "hello " + name;`,
  "/shared/index.js": `export const shared = "!";`,
  "/lib/data.json": `{ "answer": 42 }`,
  "/lib/typed.ts": `export const double = (n: number): number => n * 2;`,
  "/lib/counter.js": `export let count = 0; export const bump = () => ++count;`,
  "/lib/bare.js": `import x from "lodash"; export default x;`,
  "/lib/outside.js": `import { other } from "/other/x.js"; export default other;`,
  "/other/x.js": `export const other = 1;`,
  "/lib/versioned.js": "",
};

before(async () => {
  server = createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://x").pathname;
    requests.push(path);
    if (path === "/redirect/inside") return void response.writeHead(302, { location: "/lib/util.js" }).end();
    if (path === "/redirect/outside") return void response.writeHead(302, { location: "/other/x.js" }).end();
    if (path === "/redirect/private") return void response.writeHead(302, { location: "http://10.0.0.1/lib/util.js" }).end();
    if (path === "/lib/versioned.js") return void response.writeHead(200, { "content-type": "text/javascript" }).end(`export default "v${version}";`);
    if (path === "/lib/huge.js") return void response.writeHead(200, { "content-type": "text/javascript" }).end(`export default "${"x".repeat(64 * 1024)}";`);
    const body = MODULES[path];
    if (body === undefined) return void response.writeHead(404).end();
    response.writeHead(200, { "content-type": path.endsWith(".json") ? "application/json" : "text/javascript" }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  for (const dir of cacheDirs) rmSync(dir, { recursive: true, force: true });
});

function withSandbox<T>(modules: Partial<NonNullable<SandboxOptions["modules"]>>, body: (sandbox: Sandbox) => Promise<T>): Promise<T> {
  const cacheDir = mkdtempSync(join(tmpdir(), "paddock-url-modules-"));
  cacheDirs.push(cacheDir);
  return withFreshSandbox({ modules: { allow: [`${origin}/lib/*`, `${origin}/shared/*`, `${origin}/redirect/*`], allowPrivate: ["127.0.0.1"], cacheDir, ...modules } }, body);
}

test("URL modules: relative, root-relative and absolute imports, JSON and TypeScript, static and import()", async () => {
  await withSandbox({}, async (sandbox) => {
    assert.deepEqual(await sandbox.eval(`import main, { greet } from "${origin}/lib/main.js"; [main, greet("you")]`), ["main", "hello you!"]);
    assert.equal(await sandbox.eval(`(await import("${origin}/lib/data.json")).default.answer`), 42);
    assert.equal(await sandbox.eval(`import { double } from "${origin}/lib/typed.ts"; double(21)`), 42);
    assert.equal(await sandbox.eval(`import { helper } from "${origin}/redirect/inside"; helper("x")`), "hello x");
    const result = await sandbox.run(`import { greet } from "${origin}/lib/main.js"; 1`);
    assert.equal(result.imports[0]!.from, "carrier");
    assert.match(result.imports[0]!.integrity ?? "", /^sha512-/);
    assert.equal(result.imports[0]!.rule, `${origin}/lib/*`);
  });
});

test("URL modules are fresh in every eval", async () => {
  await withSandbox({}, async (sandbox) => {
    for (let i = 0; i < 3; i++) assert.equal(await sandbox.eval(`import * as c from "${origin}/lib/counter.js"; c.bump(); c.bump(); c.count`), 2);
  });
});

test("every URL and every redirect hop must match modules.allow; bare imports inside a URL module fail where they are used", async () => {
  await withSandbox({}, async (sandbox) => {
    assert.ok(errorOf(await sandbox.run(`import x from "${origin}/other/x.js"; x`)) instanceof PolicyError);
    assert.match(errorOf(await sandbox.run(`import x from "${origin}/lib/outside.js"; x`)).message, /\/other\/x\.js.*not in modules\.allow|not in modules\.allow/);
    assert.match(errorOf(await sandbox.run(`import x from "${origin}/redirect/outside"; x`)).message, /redirect/);
    assert.ok(errorOf(await sandbox.run(`import x from "${origin}/redirect/private"; x`)) instanceof PolicyError);
    assert.match(String(await sandbox.eval(`try { (await import("${origin}/lib/bare.js")).default } catch (e) { e.message }`)), /Cannot find module "lodash".*URL module can import other URLs only/);
    const missing = errorOf(await sandbox.run(`import x from "${origin}/lib/nope.js"; x`));
    assert.ok(missing instanceof ModuleError);
  });
});

test("a loopback server is unreachable unless modules.allowPrivate names it (the fetch address checks)", async () => {
  await withSandbox({ allowPrivate: [] }, async (sandbox) => {
    const error = errorOf(await sandbox.run(`import { helper } from "${origin}/lib/util.js"; helper("x")`));
    assert.ok(error instanceof PolicyError, String(error));
    assert.match(error.message, /loopback|private|not/);
  });
  await withSandbox({ allow: ["http://localhost:1/lib/*"], allowPrivate: [] }, async (sandbox) => {
    assert.ok(errorOf(await sandbox.run(`import x from "http://localhost:1/lib/util.js"; x`)) instanceof PolicyError);
  });
});

test("URL module limits, lock and refusals", async () => {
  await withSandbox({ maxPackageBytes: 16 * 1024 }, async (sandbox) => {
    assert.equal(errorOf(await sandbox.run(`import x from "${origin}/lib/huge.js"; x`)).reason, "limit");
  });
  version = "1";
  const lock = await withSandbox({}, async (sandbox) => {
    assert.equal(await sandbox.eval(`import v from "${origin}/lib/versioned.js"; v`), "v1");
    return sandbox.modulesLock()!;
  });
  version = "2";
  assert.equal(errorOf(await withSandbox({ lock }, (sandbox) => sandbox.run(`import v from "${origin}/lib/versioned.js"; v`))).reason, "integrity");
  await assert.rejects(Sandbox.create({ modules: { allow: ["https://user:pw@esm.sh/*"] } }), TypeError);
  await assert.rejects(Sandbox.create({ modules: { allow: ["https://esm.sh/lib*"] } }), TypeError);
});
