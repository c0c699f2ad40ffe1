/**
 * No carrier outlives its host, however the host ends: a normal exit, an uncaught exception,
 * SIGTERM, SIGKILL. The busy carrier matters most: it is in an endless loop and never reads the end
 * of its stdin, so only the kernel's parent-death signal (setpriv --pdeathsig) can stop it once the
 * host is gone without running its exit handler.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { eventually, isRunning, commandLine } from "../processes.js";

const child = fileURLToPath(new URL("./host-exit.child.js", import.meta.url));

async function carriersAfterHostEnds(mode: "exit" | "throw" | "wait", signal?: NodeJS.Signals): Promise<void> {
  const host = spawn(process.execPath, [child], { env: { ...process.env, PADDOCK_HOST_EXIT: mode }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  host.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
  const carriers = await new Promise<number[]>((resolve, reject) => {
    host.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk;
      const line = stdout.split("\n")[0];
      if (stdout.includes("\n") && line) resolve((JSON.parse(line) as { carriers: number[] }).carriers);
    });
    host.once("exit", (code) => reject(new Error(`the host ended (${code}) before reporting its carriers: ${stderr.slice(-1000)}`)));
  });
  assert.ok(carriers.length >= 4, `expected the busy, the idle and two warm carriers, got ${carriers.length}`);
  const exited = new Promise<void>((resolve) => host.once("exit", () => resolve()));
  if (signal) host.kill(signal);
  await exited;
  const survivors = () => carriers.filter(isRunning);
  const allGone = await eventually(() => survivors().length === 0, 10_000);
  const left = survivors();
  for (const pid of left) process.kill(pid, "SIGKILL");
  assert.ok(allGone, `carriers outlived their host: ${left.map((pid) => `${pid} ${commandLine(pid)}`).join("; ")}`);
}

test("the host exits normally: its carriers are killed", () => carriersAfterHostEnds("exit"));
test("the host dies of an uncaught exception: its carriers are killed", () => carriersAfterHostEnds("throw"));
test("the host gets SIGTERM: its carriers die with it", () => carriersAfterHostEnds("wait", "SIGTERM"));
test("the host is SIGKILLed: its carriers die with it, the busy one too", () => carriersAfterHostEnds("wait", "SIGKILL"));
