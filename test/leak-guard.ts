/**
 * Loaded into every test process (`node --import`, see package.json): a test file must leave no
 * process and no temporary file behind. Each test process gets a private TMPDIR; when the file's
 * tests are over (the event loop is empty), idle warm carriers are stopped, and then any child
 * process still running, or anything left in that TMPDIR, fails the file.
 *
 * A carrier still running at that point belongs to a sandbox the file never closed.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { childPids, commandLine, eventually } from "./processes.js";

const EXIT_WAIT_MS = 10_000;
const privateTmp = mkdtempSync(join(tmpdir(), "paddock-test-"));
process.env.TMPDIR = privateTmp;

let checked = false;
process.on("beforeExit", () => {
  if (checked) return;
  checked = true;
  void check();
});

async function check(): Promise<void> {
  // Other beforeExit listeners (and the after hooks before them) have finished by now.
  const { pool } = await import("../src/host/pool.js");
  pool.drain();
  await eventually(() => childPids().length === 0, EXIT_WAIT_MS);
  const problems: string[] = [];
  const children = childPids();
  if (children.length > 0) problems.push(`child processes still running: ${children.map((pid) => `${pid} ${commandLine(pid)}`).join("; ")}`);
  const files = readdirSync(privateTmp);
  if (files.length > 0) problems.push(`left in TMPDIR: ${files.join(", ")}`);
  rmSync(privateTmp, { recursive: true, force: true });
  if (problems.length > 0) {
    console.error(`leak guard: ${process.argv[1] ?? "this test file"} left ${problems.join(" and ")}`);
    process.exitCode = 1;
  }
}
