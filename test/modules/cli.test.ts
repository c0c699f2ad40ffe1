/**
 * The paddock command with imports: `--allow-import`, the module cache filled by `modules add`,
 * and the same import again with the registry gone (`--offline`). Real processes, a real registry
 * on loopback serving lodash-es as published (repacked from this project's node_modules).
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { TestRegistry } from "../../bench/npm-registry.js";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const bin = join(root, "bin", "paddock.js");
const cacheDir = mkdtempSync(join(tmpdir(), "paddock-modules-cli-"));
after(() => rmSync(cacheDir, { recursive: true, force: true }));

function paddock(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args, "--cache-dir", cacheDir], { cwd: root, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

const CHUNK = `import { chunk } from "npm:lodash-es"; chunk([1, 2, 3, 4, 5], 2)`;

test("paddock eval imports npm:lodash-es with --allow-import, then offline from the cache; modules add, list, clear", async () => {
  const registry = await TestRegistry.start();
  registry.publishInstalled("lodash-es").publish({ name: "left-pad", version: "1.3.0", files: { "index.js": "module.exports = (s, n) => String(s).padStart(n);" } });
  try {
    const refused = await paddock(["eval", CHUNK, "--registry", registry.url]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /PolicyError: import of "npm:lodash-es" refused/);
    const online = await paddock(["eval", CHUNK, "--allow-import", "npm:*", "--registry", registry.url]);
    assert.equal(online.code, 0, online.stderr);
    assert.equal(online.stdout.trim(), "[[1,2],[3,4],[5]]");
    const added = await paddock(["modules", "add", "left-pad@^1", "--registry", registry.url]);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /left-pad@\^1 → npm:left-pad@1\.3\.0 \(downloaded\) sha512-/);
    const listed = await paddock(["modules", "list"]);
    assert.deepEqual(listed.stdout.trim().split("\n"), ["left-pad@1.3.0", `lodash-es@${JSON.parse((await import("node:fs")).readFileSync(join(root, "node_modules/lodash-es/package.json"), "utf8")).version}`]);
  } finally {
    await registry.close();
  }
  // The registry is gone (the configuration stays: the cache is by registry): what the cache holds still imports.
  const offline = await paddock(["eval", `${CHUNK}.length + (await import("left-pad")).default("x", 3)`, "--allow-import", "npm:*", "--offline", "--registry", registry.url]);
  assert.equal(offline.code, 0, offline.stderr);
  assert.equal(offline.stdout.trim(), '"3  x"');
  const missing = await paddock(["eval", `import x from "npm:never-cached"; x`, "--allow-import", "npm:*", "--offline", "--registry", registry.url]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /ModuleError: npm:never-cached is not in the cache, and modules\.offline forbids the network/);
  assert.equal((await paddock(["modules", "clear"])).code, 0);
  assert.equal((await paddock(["modules", "list"])).stdout.trim(), "");
});

test("paddock modules clear refuses a directory that is not a Paddock module cache, and deletes nothing", async () => {
  const { mkdirSync, writeFileSync, existsSync } = await import("node:fs");
  const other = mkdtempSync(join(tmpdir(), "paddock-not-a-cache-"));
  try {
    mkdirSync(join(other, "packages", "app"), { recursive: true });
    writeFileSync(join(other, "packages", "app", "index.js"), "precious");
    const result = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, [bin, "modules", "clear", "--cache-dir", other], { cwd: root, timeout: 120_000 }, (error, _stdout, stderr) => resolve({ code: error ? (typeof error.code === "number" ? error.code : -1) : 0, stderr }));
    });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /not a Paddock module cache/);
    assert.ok(existsSync(join(other, "packages", "app", "index.js")));
  } finally {
    rmSync(other, { recursive: true, force: true });
  }
});
