/**
 * Imports of npm packages, end to end: a real carrier, a real registry on loopback, a real cache
 * directory. Fixture packages cover ESM, CommonJS, dependencies, subpaths and JSON; hostile ones
 * cover what a registry or a tarball may try.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Sandbox, Transform, ModuleError, PolicyError, ResourceLimitError, type SandboxOptions } from "../../src/index.js";
import { TestRegistry, tarEntries } from "../../bench/npm-registry.js";
import { errorOf, withSandbox as withFreshSandbox } from "../helpers.js";

let registry: TestRegistry;

const cacheDirs: string[] = [];

function newCacheDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "paddock-modules-"));
  cacheDirs.push(dir);
  return dir;
}

before(async () => {
  registry = await TestRegistry.start();
  registry
    .publish({ name: "tiny-esm", version: "1.0.0", latest: true, manifest: { type: "module", exports: { ".": "./index.js", "./extra": "./extra.js", "./data.json": "./data.json" } }, files: {
      "index.js": "export const chunk = (a, n) => { const o = []; for (let i = 0; i < a.length; i += n) o.push(a.slice(i, i + n)); return o; };\nexport default 'tiny';\nexport let counter = 0;\nexport const bump = () => ++counter;",
      "extra.js": "export const extra = () => 'extra';",
      "data.json": '{ "answer": 42 }',
    } })
    .publish({ name: "tiny-esm", version: "2.0.0", manifest: { type: "module" }, files: { "index.js": "export const major = 2; export default 'two';" } })
    .publish({ name: "counter-cjs", version: "3.1.0", files: { "index.js": "let n = 0;\nmodule.exports = function increment() { return ++n; };\nmodule.exports.kind = 'cjs';" } })
    .publish({ name: "uses-deps", version: "0.1.0", dependencies: { "counter-cjs": "^3.0.0", "tiny-esm": "1" }, manifest: { type: "module" }, files: {
      "index.js": "import increment, { kind } from 'counter-cjs';\nimport { extra } from 'tiny-esm/extra';\nexport const run = () => [increment(), increment(), kind, extra()];",
    } })
    .publish({ name: "cycle-a", version: "1.0.0", dependencies: { "cycle-b": "1.0.0" }, files: { "index.js": "exports.name = 'a'; const b = require('cycle-b'); exports.seen = b.name + ':' + b.sawA;" } })
    .publish({ name: "cycle-b", version: "1.0.0", dependencies: { "cycle-a": "1.0.0" }, files: { "index.js": "const a = require('cycle-a'); exports.name = 'b'; exports.sawA = a.name;" } })
    .publish({ name: "wants-fs", version: "1.0.0", files: { "index.js": "let fs; try { fs = require('fs'); } catch (e) { fs = e.message; } module.exports = typeof fs === 'string' ? fs : 'loaded';" } })
    .publish({ name: "@scope/pkg", version: "1.2.3", files: { "index.js": "module.exports = 'scoped';" } })
    .publish({ name: "mutates-globals", version: "1.0.0", files: { "index.js": "globalThis.leaked = (globalThis.leaked ?? 0) + 1; Array.prototype.polluted = true; module.exports = globalThis.leaked;" } })
    .publishInstalled("semver");
  // Hostile packages.
  registry
    .publish({ name: "evil-traversal", version: "1.0.0", entries: [
      { path: "package/package.json", data: '{"name":"evil-traversal","version":"1.0.0"}' },
      { path: "package/../../escaped.js", data: "module.exports = 1" },
    ] })
    .publish({ name: "evil-symlink", version: "1.0.0", entries: [
      { path: "package/package.json", data: '{"name":"evil-symlink","version":"1.0.0"}' },
      { path: "package/index.js", type: "SymbolicLink", linkpath: "/etc/passwd" },
    ] })
    .publish({ name: "evil-hardlink", version: "1.0.0", entries: [
      { path: "package/package.json", data: '{"name":"evil-hardlink","version":"1.0.0"}' },
      { path: "package/index.js", type: "Link", linkpath: "../../../../etc/passwd" },
    ] })
    .publish({ name: "evil-device", version: "1.0.0", entries: [
      { path: "package/package.json", data: '{"name":"evil-device","version":"1.0.0"}' },
      { path: "package/index.js", type: "CharacterDevice" },
    ] })
    .publish({ name: "evil-absolute", version: "1.0.0", entries: [
      { path: "package/package.json", data: '{"name":"evil-absolute","version":"1.0.0"}' },
      { path: "/tmp/paddock-evil-absolute.js", data: "module.exports = 1" },
    ] })
    .publish({ name: "evil-integrity", version: "1.0.0", files: { "index.js": "module.exports = 'tampered'" }, integrity: "sha512-" + Buffer.alloc(64).toString("base64") })
    .publish({ name: "evil-liar", version: "1.0.0", files: { "index.js": "module.exports = 1" }, lieName: "someone-else" })
    .publish({ name: "evil-elsewhere", version: "1.0.0", files: { "index.js": "module.exports = 1" }, tarballUrl: "http://127.0.0.2:9/evil.tgz" })
    .publish({ name: "evil-wrong-package", version: "1.0.0", entries: [
      { path: "package/package.json", data: '{"name":"lodash","version":"4.17.21"}' },
      { path: "package/index.js", data: "module.exports = 1" },
    ] })
    .publish({ name: "evil-bomb", version: "1.0.0", tarball: tarEntries([
      { path: "package/package.json", data: '{"name":"evil-bomb","version":"1.0.0"}' },
      { path: "package/zeros.bin", data: new Uint8Array(8 * 1024 * 1024) },
    ]) })
    .publish({ name: "evil-climb", version: "1.0.0", files: { "index.js": "module.exports = require('../../../../../../etc/hostname');" } });
});

after(async () => {
  await registry.close();
  for (const dir of cacheDirs) rmSync(dir, { recursive: true, force: true });
});

function withSandbox<T>(options: Partial<SandboxOptions["modules"]> & { allow?: string[] }, body: (sandbox: Sandbox) => Promise<T>, extra: SandboxOptions = {}): Promise<T> {
  return withFreshSandbox({ ...extra, modules: { allow: ["npm:*"], registry: registry.url, cacheDir: newCacheDir(), ...options } }, body);
}

test("ESM packages: named, default and namespace imports, subpaths and JSON, npm: and bare specifiers", async () => {
  await withSandbox({}, async (sandbox) => {
    assert.deepEqual(await sandbox.eval(`import { chunk } from "npm:tiny-esm"; chunk([1, 2, 3, 4, 5], 2)`), [[1, 2], [3, 4], [5]]);
    assert.deepEqual(await sandbox.eval(`import tiny, * as ns from "tiny-esm"; [tiny, Object.keys(ns).sort(), ns[Symbol.toStringTag]]`), ["tiny", ["bump", "chunk", "counter", "default"], "Module"]);
    assert.equal(await sandbox.eval(`import { extra } from "npm:tiny-esm@1/extra"; extra()`), "extra");
    assert.equal(await sandbox.eval(`import data from "tiny-esm/data.json"; data.answer`), 42);
    assert.equal(await sandbox.eval(`import two, { major } from "npm:tiny-esm@2"; two + major`), "two2");
    assert.equal(await sandbox.eval(`(await import("npm:@scope/pkg")).default`), "scoped");
  });
});

test("CommonJS packages, dependencies between packages, and cycles", async () => {
  await withSandbox({}, async (sandbox) => {
    assert.deepEqual(await sandbox.eval(`import { run } from "npm:uses-deps"; run()`), [1, 2, "cjs", "extra"]);
    assert.deepEqual(await sandbox.eval(`import increment, { kind } from "counter-cjs"; [typeof increment, increment(), kind]`), ["function", 1, "cjs"]);
    // A cycle between packages loads; the package required back sees its exports as they are
    // when its unit is entered (empty: see the README's limits), not Node's partial exports.
    assert.deepEqual(await sandbox.eval(`import a from "cycle-a"; [a.name, a.seen]`), ["a", "b:undefined"]);
    assert.equal(await sandbox.eval(`import semver from "npm:semver@^7"; semver.satisfies("1.2.3", "^1.0.0")`), true);
  });
});

test("every eval gets fresh module instances: state and mutations never reach the next eval", async () => {
  await withSandbox({}, async (sandbox) => {
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(await sandbox.eval(`import * as tiny from "tiny-esm"; tiny.bump(); tiny.bump(); [tiny.counter]`), [2]);
      assert.deepEqual(await sandbox.eval(`import leaked from "mutates-globals"; [leaked, [].polluted]`), [1, true]);
      assert.equal(await sandbox.eval(`typeof leaked + typeof [].polluted`), "undefinedundefined");
    }
  });
});

test("a persistent sandbox keeps its module instances with its realm", async () => {
  await withSandbox({}, async (sandbox) => {
    assert.equal(await sandbox.eval(`import { bump } from "tiny-esm"; bump()`), 1);
    assert.equal(await sandbox.eval(`import { bump } from "tiny-esm"; bump()`), 2);
  }, { persistent: true });
});

test("the audit: each import's resolution, integrity, origin and rule, also to onImport", async () => {
  const seen: string[] = [];
  await withSandbox({ allow: ["npm:tiny-esm@^1", "npm:counter-cjs"] }, async (sandbox) => {
    const first = await sandbox.run(`import { chunk } from "tiny-esm"; import inc from "counter-cjs"; 1`);
    assert.equal(first.ok, true);
    const record = first.imports.find((entry) => entry.specifier === "tiny-esm")!;
    assert.equal(record.resolved, "npm:tiny-esm@1.0.0");
    assert.match(record.integrity ?? "", /^sha512-/);
    assert.equal(record.from, "registry");
    assert.equal(record.rule, "npm:tiny-esm@^1");
    assert.equal(record.verdict, "allowed");
    const again = await sandbox.run(`import { chunk } from "tiny-esm"; 2`);
    assert.equal(again.imports[0]!.from, "carrier");
    const refused = await sandbox.run(`import x from "npm:semver"; 3`);
    assert.equal(refused.ok, false);
    assert.equal(refused.imports[0]!.verdict, "refused");
    assert.deepEqual(seen.length > 0, true);
  }, { onImport: (record) => seen.push(record.specifier) });
});

test("policy: imports outside modules.allow are refused, ranges are enforced, strict covers dependencies", async () => {
  await withSandbox({ allow: ["npm:tiny-esm@^1", "npm:uses-deps"] }, async (sandbox) => {
    const refused = await sandbox.run(`import x from "npm:semver"; 1`);
    assert.ok(errorOf(refused) instanceof PolicyError);
    assert.match(errorOf(refused).message, /npm:semver refused: not in modules\.allow/);
    const wrongVersion = await sandbox.run(`import x from "npm:tiny-esm@2"; 1`);
    assert.ok(errorOf(wrongVersion) instanceof PolicyError);
    // Dependencies come with an allowed package (counter-cjs is not listed).
    assert.deepEqual(await sandbox.eval(`import { run } from "uses-deps"; run()`), [1, 2, "cjs", "extra"]);
    // node:fs is a built-in beside the policy's packages, in one eval.
    assert.deepEqual(
      await sandbox.eval(`import { chunk } from "npm:tiny-esm"; import { writeFile, readFile } from "node:fs/promises"; await writeFile("/c.json", JSON.stringify(chunk([1, 2, 3], 2))); JSON.parse(await readFile("/c.json", "utf8"))`),
      [[1, 2], [3]],
    );
    const builtin = await sandbox.run(`import os from "node:os"; 1`);
    assert.ok(errorOf(builtin) instanceof PolicyError);
    assert.match(errorOf(builtin).message, /built-in/);
  });
  await withSandbox({ allow: ["npm:uses-deps"], strict: true }, async (sandbox) => {
    const result = await sandbox.run(`import { run } from "uses-deps"; run()`);
    assert.equal(result.ok, false);
    assert.match(String(errorOf(result).message), /modules\.strict/);
  });
  const noPolicy = await Sandbox.create();
  try {
    const result = await noPolicy.run(`import { chunk } from "npm:tiny-esm"; 1`);
    assert.ok(errorOf(result) instanceof PolicyError);
    assert.equal(await noPolicy.eval(`try { await import("npm:tiny-esm") } catch (e) { e.name }`), "PolicyError");
  } finally {
    await noPolicy.close();
  }
});

test("packages asking for Node built-ins get Node's error where they require them", async () => {
  await withSandbox({}, async (sandbox) => {
    assert.match(String(await sandbox.eval(`import message from "wants-fs"; message`)), /Cannot find module "fs".*built-in/);
  });
});

test("unknown packages and versions: a ModuleError that names what exists; import() rejects inside the sandbox", async () => {
  await withSandbox({}, async (sandbox) => {
    const missing = await sandbox.run(`import x from "npm:no-such-package"; 1`);
    assert.ok(errorOf(missing) instanceof ModuleError);
    assert.equal(errorOf(missing).reason, "not-found");
    const version = await sandbox.run(`import x from "npm:tiny-esm@^9"; 1`);
    assert.ok(errorOf(version) instanceof ModuleError);
    assert.match(errorOf(version).message, /1\.0\.0, 2\.0\.0/);
    assert.deepEqual(await sandbox.eval(`try { await import("npm:no-such-package") } catch (e) { [e.name, e instanceof Error] }`), ["ModuleError", true]);
    const computed = await sandbox.run(`const name = "tiny-esm"; await import(name)`);
    assert.ok(errorOf(computed) instanceof PolicyError);
    assert.match(errorOf(computed).message, /string literal/);
  });
});

test("hostile tarballs and registries are refused with a clear error, and nothing is written outside the cache", async () => {
  const cases: Array<[string, RegExp]> = [
    ["evil-traversal", /leave the package/],
    ["evil-symlink", /symbolic link/],
    ["evil-hardlink", /hard link/],
    ["evil-device", /CharacterDevice/],
    ["evil-absolute", /leave the package/],
    ["evil-integrity", /integrity/],
    ["evil-liar", /another package/],
    ["evil-elsewhere", /away from the registry/],
    ["evil-wrong-package", /another package/],
    ["evil-bomb", /maxUnpackedBytes/],
    ["evil-climb", /outside the package|could not be prepared/],
  ];
  const cacheDir = newCacheDir();
  await withSandbox({ cacheDir, maxUnpackedBytes: 1024 * 1024 }, async (sandbox) => {
    for (const [name, expected] of cases) {
      const result = await sandbox.run(`import x from "${name}"; x`);
      assert.equal(result.ok, false, name);
      assert.ok(errorOf(result) instanceof ModuleError, `${name}: ${errorOf(result)}`);
      assert.match(errorOf(result).message, expected, name);
      assert.doesNotMatch(errorOf(result).message, new RegExp(cacheDir), `${name}: no host path`);
    }
    // The sandbox goes on.
    assert.equal(await sandbox.eval(`import { chunk } from "tiny-esm"; chunk([1], 1).length`), 1);
  });
  // Only the well-formed packages were unpacked (evil-climb's tarball is sound; its code is refused).
  const packages = readdirSync(join(cacheDir, "packages")).map((entry) => entry.split("@")[0]).sort();
  assert.deepEqual(packages, ["evil-climb", "tiny-esm"]);
  assert.ok(!existsSync("/tmp/paddock-evil-absolute.js"));
  assert.ok(!existsSync(join(cacheDir, "..", "escaped.js")) && !existsSync(join(cacheDir, "escaped.js")));
});

test("a tarball over modules.maxPackageBytes is refused", async () => {
  await withSandbox({ maxPackageBytes: 1024 }, async (sandbox) => {
    const result = await sandbox.run(`import semver from "semver"; 1`);
    assert.ok(errorOf(result) instanceof ModuleError);
    assert.equal(errorOf(result).reason, "limit");
  });
});

test("maxModulesPerEval bounds what one eval loads", async () => {
  await withSandbox({ maxModulesPerEval: 2 }, async (sandbox) => {
    const result = await sandbox.run(`import { run } from "uses-deps"; 1`);
    assert.ok(errorOf(result) instanceof ResourceLimitError);
  });
});

test("offline: what the cache holds imports with the registry gone; what it lacks fails clearly", async () => {
  const offlineRegistry = await TestRegistry.start();
  offlineRegistry.publish({ name: "cached-pkg", version: "1.0.0", files: { "index.js": "module.exports = 'from cache';" } });
  const cacheDir = newCacheDir();
  const online = await Sandbox.create({ modules: { allow: ["npm:*"], registry: offlineRegistry.url, cacheDir } });
  try {
    assert.equal(await online.eval(`import v from "cached-pkg"; v`), "from cache");
  } finally {
    await online.close();
  }
  await offlineRegistry.close();
  const offline = await Sandbox.create({ modules: { allow: ["npm:*"], registry: offlineRegistry.url, cacheDir, offline: true } });
  try {
    assert.equal(await offline.eval(`import v from "cached-pkg"; v`), "from cache");
    const missing = await offline.run(`import v from "never-fetched"; v`);
    assert.ok(errorOf(missing) instanceof ModuleError);
    assert.equal(errorOf(missing).reason, "offline");
  } finally {
    await offline.close();
  }
});

test("20 sandboxes importing the same new package at once download it once", async () => {
  const racing = await TestRegistry.start();
  racing.publish({ name: "raced", version: "1.0.0", files: { "index.js": "module.exports = 7;" } });
  const cacheDir = newCacheDir();
  const sandboxes = await Promise.all(Array.from({ length: 20 }, () => Sandbox.create({ memoryMb: 64, modules: { allow: ["npm:raced"], registry: racing.url, cacheDir } })));
  try {
    const values = await Promise.all(sandboxes.map((sandbox) => sandbox.eval(`import v from "raced"; v`)));
    assert.deepEqual(values, Array(20).fill(7));
    assert.equal(racing.requests.filter((path) => path.endsWith(".tgz")).length, 1);
    assert.equal(racing.requests.filter((path) => path === "/raced").length, 1);
  } finally {
    await Promise.all(sandboxes.map((sandbox) => sandbox.close()));
    await racing.close();
  }
});

test("invalid module options are refused at create, naming the entry", async () => {
  for (const allow of [["lodash"], ["npm:Bad Name"], ["npm:x@not-a-range!"], ["https://esm.sh/lib*"], ["ftp://x/*"]]) {
    await assert.rejects(Sandbox.create({ modules: { allow } }), (error: Error) => error instanceof TypeError && error.message.includes("modules.allow"));
  }
});

test("a slow registry ends in a TimeoutError after modules.timeoutMs, not the eval's own limit", async () => {
  const slow = await TestRegistry.start();
  slow.stall.add("/stalled");
  try {
    await withSandbox({ registry: slow.url, timeoutMs: 300 }, async (sandbox) => {
      const result = await sandbox.run(`import x from "stalled"; 1`);
      assert.equal(errorOf(result).name, "TimeoutError");
      assert.match(String(errorOf(result).message), /modules\.timeoutMs/);
    });
  } finally {
    await slow.close();
  }
});

test("stack frames inside a package name the package's own file and line, never a host path", async () => {
  const thrower = await TestRegistry.start();
  thrower.publish({ name: "thrower", version: "1.0.0", manifest: { type: "module" }, files: {
    "index.js": "import { fail } from './lib/fail.js';\nexport const run = () => fail();",
    "lib/fail.js": "// a comment\n\nexport function fail() {\n  throw new RangeError('from the package');\n}",
  } });
  try {
    await withSandbox({ registry: thrower.url }, async (sandbox) => {
      const result = await sandbox.run(`import { run } from "thrower";\nrun();`);
      const error = errorOf(result);
      assert.equal(error.name, "ScriptError");
      assert.match(String(error.stack), /npm:thrower@1\.0\.0\/lib\/fail\.js:4:9/);
      assert.match(String(error.stack), /eval\.js:2:1/);
      assert.doesNotMatch(String(error.stack), /paddock-modules-|node_modules/);
    });
  } finally {
    await thrower.close();
  }
});

test("a lock keeps resolutions: a newer version is not picked, a changed package is refused", async () => {
  const moving = await TestRegistry.start();
  moving.publish({ name: "moving", version: "1.0.0", files: { "index.js": "module.exports = '1.0.0';" } });
  try {
    const lock = await withSandbox({ registry: moving.url }, async (sandbox) => {
      assert.equal(await sandbox.eval(`import v from "moving@^1"; v`), "1.0.0");
      return sandbox.modulesLock()!;
    });
    assert.deepEqual(Object.keys(lock.packages), ["moving@^1"]);
    assert.equal(lock.packages["moving@^1"]!.version, "1.0.0");
    moving.publish({ name: "moving", version: "1.1.0", files: { "index.js": "module.exports = '1.1.0';" } });
    assert.equal(await withSandbox({ registry: moving.url }, (sandbox) => sandbox.eval(`import v from "moving@^1"; v`)), "1.1.0");
    assert.equal(await withSandbox({ registry: moving.url, lock }, (sandbox) => sandbox.eval(`import v from "moving@^1"; v`)), "1.0.0");
    // The same version republished with other contents: the lock's integrity no longer matches.
    moving.publish({ name: "moving", version: "1.0.0", files: { "index.js": "module.exports = 'tampered';" } });
    const refused = await withSandbox({ registry: moving.url, lock }, (sandbox) => sandbox.run(`import v from "moving@^1"; v`));
    assert.equal(errorOf(refused).reason, "integrity");
  } finally {
    await moving.close();
  }
});

test("real packages repacked from this project's node_modules: zod (ESM with an exports map), acorn (dual), ipaddr.js (CommonJS)", async () => {
  const real = await TestRegistry.start();
  real.publishInstalled("zod").publishInstalled("acorn").publishInstalled("ipaddr.js");
  try {
    await withSandbox({ registry: real.url }, async (sandbox) => {
      assert.deepEqual(await sandbox.eval(`import { z } from "npm:zod";
        const User = z.object({ name: z.string(), age: z.number().int() });
        const bad = User.safeParse({ name: 1, age: 2.5 });
        [User.parse({ name: "ada", age: 36 }).name, bad.success, bad.error.issues.length]`), ["ada", false, 2]);
      assert.equal(await sandbox.eval(`import { parse } from "acorn"; parse("let a = 1", { ecmaVersion: "latest" }).body[0].type`), "VariableDeclaration");
      assert.equal(await sandbox.eval(`import ipaddr from "ipaddr.js"; ipaddr.parse("10.1.2.3").range()`), "private");
      // TypeScript imports packages too.
      assert.equal(await sandbox.eval(`import { z } from "zod";\nconst n: number = z.number().parse(5);\nn * 2`, { language: "ts" }), 10);
    });
  } finally {
    await real.close();
  }
});

test("whatever the module system's own functions throw (a stack exhausted inside them) reaches the realm as the realm's error", async () => {
  const deep = await TestRegistry.start();
  deep.publish({ name: "requirer", version: "1.0.0", dependencies: { target: "1.0.0" }, files: { "index.js": "exports.load = () => require('target');" } });
  deep.publish({ name: "target", version: "1.0.0", files: { "index.js": "module.exports = 1;" } });
  try {
    await withSandbox({ registry: deep.url }, async (sandbox) => {
      // Unwinding from a stack overflow, each frame tries again: at some depth the stack runs out
      // inside the carrier's own code. Every error caught must still be the realm's own (its
      // constructor's constructor is the realm's Function). (import() itself, at the very edge of
      // the stack, can still reject with Deno's own RangeError: see the README's limits.)
      const hunt = (call: string) => `
        let foreign = 0, budget = 0, caught = 0;
        const check = (e) => { caught++; if (typeof e === "object" && e !== null && e.constructor.constructor !== Function) foreign++; };
        const pending = [];
        const dive = () => { try { dive(); } catch (e) { if (budget++ > 3000) throw e; try { ${call}; } catch (e2) { check(e2); } throw e; } };
        try { dive(); } catch {}
        for (const p of pending) { try { await p; } catch (e) { check(e); } }
        [foreign, caught > 0]`;
      const imported = `import * as requirer from "requirer";\n`;
      assert.deepEqual(await sandbox.eval(imported + hunt("requirer.load()"), { timeoutMs: 30_000 }), [0, true]);
      assert.equal(await sandbox.eval(`import * as requirer from "requirer"; requirer.load()`), 1);
    });
  } finally {
    await deep.close();
  }
});

test("a failed import() leaves the sandbox and its carrier sound; a later eval imports as before", async () => {
  const mixed = await TestRegistry.start();
  mixed.publish({ name: "good", version: "1.0.0", files: { "index.js": "module.exports = 'good';" } });
  mixed.publish({ name: "bad", version: "1.0.0", files: { "index.js": "export default from from;" } });
  try {
    await withSandbox({ registry: mixed.url }, async (sandbox) => {
      const result = await sandbox.run(`import g from "good"; if (false) import("bad"); g`);
      assert.equal(result.ok, true);
      assert.equal(result.imports.find((record) => record.specifier === "bad")?.verdict, "allowed");
      assert.equal(await sandbox.eval(`import g from "good"; g`), "good");
      assert.equal(await sandbox.eval(`try { await import("bad") } catch (e) { e.name }`), "ModuleError");
    });
  } finally {
    await mixed.close();
  }
});

test("metadata whose integrity checks nothing is refused; an entry bomb stops at maxPackageFiles; maxModulesPerEval is counted before any download", async () => {
  const tricky = await TestRegistry.start();
  tricky.publish({ name: "empty-integrity", version: "1.0.0", files: { "index.js": "module.exports = 1" }, integrity: "sha512-" });
  tricky.publish({ name: "garbage-integrity", version: "1.0.0", files: { "index.js": "module.exports = 1" }, integrity: "sha512-not*base64" });
  tricky.publish({ name: "entry-bomb", version: "1.0.0", entries: [
    { path: "package/package.json", data: '{"name":"entry-bomb","version":"1.0.0"}' },
    ...Array.from({ length: 30_000 }, () => ({ path: "package/same.js", data: "" })),
  ] });
  for (let i = 0; i < 5; i++) tricky.publish({ name: `many-${i}`, version: "1.0.0", files: { "index.js": "module.exports = 1" } });
  try {
    await withSandbox({ registry: tricky.url, maxModulesPerEval: 3 }, async (sandbox) => {
      for (const name of ["empty-integrity", "garbage-integrity"]) {
        const error = errorOf(await sandbox.run(`import x from "${name}"; x`));
        assert.equal(error.reason, "integrity", name);
      }
      const started = performance.now();
      const bomb = errorOf(await sandbox.run(`import x from "entry-bomb"; x`));
      assert.equal(bomb.reason, "limit");
      assert.match(bomb.message, /maxPackageFiles/);
      assert.ok(performance.now() - started < 20_000);
      const before = tricky.requests.length;
      const many = errorOf(await sandbox.run(`if (false) { ${Array.from({ length: 5 }, (_, i) => `import("many-${i}");`).join(" ")} } 1`));
      assert.ok(many instanceof ResourceLimitError);
      assert.equal(tricky.requests.length, before);
    });
  } finally {
    await tricky.close();
  }
});

test("two registries serving different contents under one name and version never share code through the cache", async () => {
  const evil = await TestRegistry.start();
  const honest = await TestRegistry.start();
  const files = (word: string) => ({ "index.js": `module.exports = "${word}";`, "sub.js": `module.exports = "${word} sub";` });
  evil.publish({ name: "twin", version: "1.0.0", files: files("EVIL") });
  honest.publish({ name: "twin", version: "1.0.0", files: files("GOOD") });
  const cacheDir = newCacheDir();
  try {
    const honestRun = await withSandbox({ registry: honest.url }, (sandbox) => sandbox.run(`import main from "twin"; main`));
    assert.equal(honestRun.ok && honestRun.value, "GOOD");
    assert.equal(await withSandbox({ registry: evil.url, cacheDir }, (sandbox) => sandbox.eval(`import main from "twin@1.0.0"; main`)), "EVIL");
    // The evil registry now claims the honest integrity for its unchanged tarball. A new store on it
    // (other options) resolves "twin@1.0.0" from disk (the evil package, unpacked before) and
    // "twin@^1" afresh (the honest integrity): the second must not be built from the first's files.
    evil.publish({ name: "twin", version: "1.0.0", files: files("EVIL"), integrity: honestRun.imports[0]!.integrity! });
    const mixed = await withSandbox({ registry: evil.url, cacheDir, timeoutMs: 59_000 }, (sandbox) => sandbox.run(`import sub from "twin@1.0.0/sub.js"; import main from "twin@^1"; [main, sub]`));
    assert.equal(errorOf(mixed).reason, "integrity");
    // A sandbox on the honest registry sharing the cache gets the honest code.
    assert.deepEqual(await withSandbox({ registry: honest.url, cacheDir }, (sandbox) => sandbox.eval(`import main from "twin"; import sub from "twin/sub.js"; [main, sub]`)), ["GOOD", "GOOD sub"]);
  } finally {
    await evil.close();
    await honest.close();
  }
});

test("user text that looks like a package frame is left alone, and never breaks run()", async () => {
  await withSandbox({}, async (sandbox) => {
    for (const position of ["npm:tiny-esm@1.0.0:0:1", "npm:tiny-esm@1.0.0:5:0", "npm:tiny-esm@1.0.0:99999:99999"]) {
      const result = await sandbox.run(`import { chunk } from "tiny-esm"; throw new Error("${position}")`);
      assert.equal(errorOf(result).name, "ScriptError");
      assert.match(errorOf(result).message, new RegExp(position.replace(/[.]/g, "\\.")));
    }
  });
});

test("import-only code keeps its hashbang line and its \"use strict\"", async () => {
  await withSandbox({}, async (sandbox) => {
    assert.equal(await sandbox.eval(`#!/usr/bin/env paddock\nimport { chunk } from "tiny-esm";\nchunk([1, 2], 1).length`), 2);
    assert.equal(await sandbox.eval(`"use strict";\nimport { chunk } from "tiny-esm";\n(function () { return this; })()`), undefined);
    const error = errorOf(await sandbox.run(`import { chunk } from "tiny-esm";\n\nnotDefined + 1`));
    assert.equal(error.name, "ScriptError");
    assert.equal((error as { line?: number }).line, 3);
  });
});

test("a damaged cache heals: a torn prepared unit is rebuilt, a damaged unpacked package or resolution is fetched again", async () => {
  const { readdirSync: list, writeFileSync, rmSync: remove } = await import("node:fs");
  const healing = await TestRegistry.start();
  healing.publish({ name: "healer", version: "1.0.0", files: { "index.js": "module.exports = 'whole';" } });
  const cacheDir = newCacheDir();
  const code = `import v from "healer"; v`;
  try {
    assert.equal(await withSandbox({ registry: healing.url, cacheDir }, (sandbox) => sandbox.eval(code)), "whole");
    const filesIn = (dir: string): string[] => list(dir, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
    for (const file of filesIn(join(cacheDir, "prepared"))) writeFileSync(file, file.endsWith(".json") ? '{"version":' : "{garbage");
    for (const file of filesIn(join(cacheDir, "resolved"))) writeFileSync(file, "");
    // Other options: a new store of this process, so nothing is served from memory.
    assert.equal(await withSandbox({ registry: healing.url, cacheDir, timeoutMs: 59_000 }, (sandbox) => sandbox.eval(code)), "whole");
    remove(join(cacheDir, "packages"), { recursive: true, force: true });
    for (const file of filesIn(join(cacheDir, "prepared"))) remove(file);
    assert.equal(await withSandbox({ registry: healing.url, cacheDir, timeoutMs: 58_000 }, (sandbox) => sandbox.eval(code)), "whole");
  } finally {
    await healing.close();
  }
});

test("two host processes sharing one cache directory import the same new packages at once", async () => {
  const { execFile } = await import("node:child_process");
  const { fileURLToPath } = await import("node:url");
  const shared = await TestRegistry.start();
  for (let i = 0; i < 4; i++) shared.publish({ name: `shared-${i}`, version: "1.0.0", files: { "index.js": `module.exports = ${i};` } });
  const cacheDir = newCacheDir();
  const entry = fileURLToPath(new URL("../../src/index.js", import.meta.url));
  const script = `
    const { Sandbox } = await import(${JSON.stringify(entry)});
    const sandbox = await Sandbox.create({ modules: { allow: ["npm:*"], registry: ${JSON.stringify(shared.url)}, cacheDir: ${JSON.stringify(cacheDir)} } });
    const value = await sandbox.eval(${JSON.stringify(`import a from "shared-0"; import b from "shared-1"; import c from "shared-2"; import d from "shared-3"; a + b + c + d`)});
    await sandbox.close();
    console.log(value);`;
  const run = () => new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ["--input-type=module", "-e", script], { timeout: 120_000 }, (error, stdout, stderr) => (error ? reject(new Error(stderr)) : resolve(stdout.trim())));
  });
  try {
    assert.deepEqual(await Promise.all([run(), run(), run()]), ["6", "6", "6"]);
    assert.equal(await withSandbox({ registry: shared.url, cacheDir, offline: true }, (sandbox) => sandbox.eval(`import d from "shared-3"; d`)), 3);
  } finally {
    await shared.close();
  }
});

test("a private registry's token comes from .npmrc and never reaches a sandbox, an error or a record", async () => {
  const { writeFileSync } = await import("node:fs");
  const TOKEN = "npm_s3cr3t-token-never-shown";
  const locked = await TestRegistry.start();
  locked.requireToken(TOKEN);
  locked.publish({ name: "private-pkg", version: "1.0.0", files: { "index.js": "module.exports = 'private';" } });
  const dir = newCacheDir();
  const npmrc = join(dir, "npmrc");
  const host = new URL(locked.url).host;
  const previous = process.env.npm_config_userconfig;
  try {
    writeFileSync(npmrc, `registry=${locked.url}\n//${host}/:_authToken=\${PADDOCK_TEST_TOKEN}\n`);
    process.env.npm_config_userconfig = npmrc;
    process.env.PADDOCK_TEST_TOKEN = TOKEN;
    // No `registry` option: the one .npmrc names, with its token.
    const sandbox = await Sandbox.create({ modules: { allow: ["npm:*"], cacheDir: join(dir, "cache") } });
    try {
      const result = await sandbox.run(`import v from "private-pkg"; [v, JSON.stringify(globalThis).includes("s3cr3t")]`);
      assert.deepEqual(result.ok && result.value, ["private", false]);
      assert.doesNotMatch(JSON.stringify(result.imports), /s3cr3t/);
    } finally {
      await sandbox.close();
    }
    process.env.PADDOCK_TEST_TOKEN = "wrong-token";
    const refused = await Sandbox.create({ modules: { allow: ["npm:*"], cacheDir: join(dir, "cache2") } });
    try {
      const result = await refused.run(`import v from "private-pkg"; v`);
      const error = errorOf(result);
      assert.equal(error.reason, "unreachable");
      assert.match(error.message, /refused access.*HTTP 401/);
      assert.doesNotMatch(error.message + JSON.stringify(result.imports), /s3cr3t|wrong-token/);
    } finally {
      await refused.close();
    }
  } finally {
    if (previous === undefined) delete process.env.npm_config_userconfig;
    else process.env.npm_config_userconfig = previous;
    delete process.env.PADDOCK_TEST_TOKEN;
    await locked.close();
  }
});

test("a carrier forgets the oldest module code beyond its share of the heap, and gets it again when an eval needs it", async () => {
  const big = await TestRegistry.start();
  // Three packages of ~6 MB of code each; a 64 MB carrier keeps at most 16 MB of module code.
  for (const name of ["big-a", "big-b", "big-c"]) big.publish({ name, version: "1.0.0", files: { "index.js": `module.exports = ${JSON.stringify(name)} + ${JSON.stringify("x".repeat(6 * 1024 * 1024))}.length;` } });
  try {
    await withSandbox({ registry: big.url }, async (sandbox) => {
      for (const name of ["big-a", "big-b", "big-c", "big-a"]) {
        assert.equal(await sandbox.eval(`import v from "${name}"; v`), `${name}${6 * 1024 * 1024}`);
      }
      // Every package again, in one eval: all three are sent, whatever was forgotten.
      assert.equal(await sandbox.eval(`import a from "big-a"; import b from "big-b"; import c from "big-c"; [a, b, c].length`), 3);
    }, { memoryMb: 64 });
  } finally {
    await big.close();
  }
});

test("a transform imports npm packages once per carrier; its module state is the transform's", async () => {
  const transform = await Transform.create({
    code: `import { chunk, bump } from "tiny-esm";\nimport increment from "counter-cjs";\nexport default (m: number[]) => ({ parts: chunk(m, 2), bumps: bump(), calls: increment() });`,
    filename: "parts.ts",
    modules: { allow: ["npm:*"], registry: registry.url, cacheDir: newCacheDir() },
  });
  try {
    const results = await transform.callMany([[1, 2, 3], [4]]);
    assert.deepEqual(results.map((r) => (r.ok ? r.value : r.error)), [{ parts: [[1, 2], [3]], bumps: 1, calls: 1 }, { parts: [[4]], bumps: 2, calls: 2 }]);
    await assert.rejects(Transform.create({ code: `import x from "not-granted-anywhere"; export default () => x;`, modules: { allow: ["npm:tiny-esm"], registry: registry.url, cacheDir: newCacheDir() } }), PolicyError);
  } finally {
    await transform.close();
  }
});
