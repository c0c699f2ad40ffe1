/**
 * The host's own resources running out: temp space and file descriptors. Carriers need no temp
 * space at all (Deno's DENO_DIR points where nothing can be created, so it writes nothing); running
 * out of descriptors ends Sandbox.create in a CarrierStartError that says so, and creating works
 * again once descriptors are free.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Sandbox, configurePool } from "../../src/index.js";

const FD_LIMIT = 80;

test("no usable temp dir: sandboxes start and run, and nothing is written to the temp dir", async () => {
  const tmp = process.env.TMPDIR!;
  const before = readdirSync(tmp).length;
  process.env.TMPDIR = "/dev/null/no-temp-here";
  configurePool({ size: 0 });
  try {
    const sandbox = await Sandbox.create({ carriers: 2 });
    assert.equal(await sandbox.eval("const b = new Blob(['x'.repeat(1 << 20)]); (await b.text()).length"), 1 << 20);
    await sandbox.close();
  } finally {
    process.env.TMPDIR = tmp;
    configurePool({ size: 2 });
  }
  const sandbox = await Sandbox.create();
  assert.equal(await sandbox.eval("1 + 1"), 2);
  await sandbox.close();
  assert.equal(readdirSync(tmp).length, before, "carriers left nothing in the temp dir");
});

test("file descriptors run out: a typed error that says so, the other sandboxes go on, and creating works again once some are closed", { timeout: 180_000 }, async () => {
  const child = fileURLToPath(new URL("./fd-limit.child.js", import.meta.url));
  const output = await new Promise<string>((resolve, reject) => {
    const run = spawn(process.execPath, ["--unhandled-rejections=strict", child], {
      env: { ...process.env, PADDOCK_FD_LIMIT_CHILD: "1" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    run.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk;
      if (stdout === "loaded\n") {
        // Node itself holds a few dozen descriptors; each carrier takes 3 more on the host side.
        execFileSync("prlimit", ["--pid", String(run.pid), `--nofile=${FD_LIMIT}:${FD_LIMIT}`]);
        run.stdin.end("go\n");
      }
    });
    run.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
    run.once("error", reject);
    run.once("exit", (code, signal) => (code === 0 ? resolve(stdout) : reject(new Error(`the child ended with ${signal ?? code}: ${stderr.slice(-2000)}`))));
  });
  const report = JSON.parse(output.trim().split("\n").pop()!) as { created: number; failure?: { name: string; message: string; typed: boolean }; stillWorking: boolean; recovered: boolean };
  assert.ok(report.failure, `creating never failed (${report.created} sandboxes)`);
  assert.ok(report.failure.typed, `expected CarrierStartError, got ${report.failure.name}: ${report.failure.message}`);
  assert.match(report.failure.message, /no file descriptors left \(EMFILE\)/);
  assert.ok(report.created >= 3, `only ${report.created} sandboxes before the limit`);
  assert.ok(report.stillWorking, "the sandboxes created before the limit still answer");
  assert.ok(report.recovered, "creating works again once descriptors are free");
});
