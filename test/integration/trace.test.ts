/**
 * Traced evals (`trace: true`) report where their time went; untraced ones pay nothing for it. The
 * phases come from two clocks of the same kind (CLOCK_MONOTONIC) in two processes, so they add up
 * to the host's own wall time, whatever the machine's load.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Sandbox, type EvalPhases } from "../../src/index.js";

const PHASES: ReadonlyArray<keyof EvalPhases> = ["prepare", "send", "decode", "realm", "compile", "run", "encode", "settle", "transit", "receive", "resume"];

let sandbox: Sandbox;
before(async () => {
  sandbox = await Sandbox.create();
});
after(() => sandbox.close());

function assertPhases(phases: EvalPhases | undefined, wallMs: number): void {
  assert.ok(phases, "a traced eval reports its phases");
  assert.deepEqual(Object.keys(phases).sort(), [...PHASES].sort());
  for (const phase of PHASES) assert.ok(Number.isInteger(phases[phase]) && phases[phase] >= 0, `${phase} is a whole number of µs: ${phases[phase]}`);
  const sum = PHASES.reduce((total, phase) => total + phases[phase], 0);
  // Each phase is rounded to 1 µs on its own; wallMs to 1 µs.
  assert.ok(Math.abs(sum - wallMs * 1000) <= PHASES.length, `the phases (${sum} µs) add up to the wall time (${wallMs * 1000} µs)`);
}

test("a traced eval says where its time went, and the phases add up to its wall time", async () => {
  const result = await sandbox.run("let s = 0; for (let i = 0; i < 1e5; i++) s += i; s", { trace: true });
  assert.equal(result.ok && result.value, 4999950000);
  assertPhases(result.stats.phases, result.stats.wallMs);
  assert.ok(result.stats.phases!.run > 0, "the loop's time is in `run`");
});

test("a failing eval and an async eval are traced too", async () => {
  const failed = await sandbox.run("null.x", { trace: true });
  assert.equal(failed.ok, false);
  assertPhases(failed.stats.phases, failed.stats.wallMs);
  const awaited = await sandbox.run("await new Promise((resolve) => setTimeout(resolve, 5)); 1", { trace: true });
  assert.equal(awaited.ok && awaited.value, 1);
  assertPhases(awaited.stats.phases, awaited.stats.wallMs);
  assert.ok(awaited.stats.phases!.run >= 4000, `the timer's wait is in \`run\` (${awaited.stats.phases!.run} µs)`);
});

test("an untraced eval carries no phases", async () => {
  const result = await sandbox.run("1");
  assert.equal(result.stats.phases, undefined);
});

test("many evals in a row, across the carrier's idle-time collections, each in a fresh realm", async () => {
  // More evals than the carrier leaves between two collections (COLLECT_EVERY_EVALS in main.ts).
  for (let i = 0; i < 300; i++) {
    assert.equal(await sandbox.eval("const before = typeof leak; globalThis.leak = 1; before"), "undefined", `eval ${i}`);
  }
});
