/**
 * Sandboxes created and closed in bulk, at once and one after another: afterwards no carrier
 * process is left, nothing is left in the temp dir, and the host's descriptors and memory are back.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { Sandbox, configurePool } from "../../src/index.js";
import { carrierStarts } from "../../src/host/start-queue.js";
import { childPids, eventually, openFdCount, settledFdCount } from "../processes.js";
import { hostRssMb } from "../helpers.js";
import { FULL_SCALE } from "./faults.js";

const CONCURRENT = FULL_SCALE ? 500 : 100;
const SEQUENTIAL = FULL_SCALE ? 2_000 : 200;

/** Stops the warm pool and waits until no carrier of this process runs. */
async function noCarriersLeft(): Promise<void> {
  configurePool({ size: 0 });
  assert.ok(await eventually(() => childPids().length === 0, 15_000), `carriers left running: ${childPids().join(", ")}`);
  configurePool({ size: 2 });
}

test(`${CONCURRENT} sandboxes created and closed concurrently leave nothing behind`, { timeout: 20 * 60_000 }, async (t) => {
  await noCarriersLeft();
  const fdsBefore = openFdCount();
  const rssBefore = hostRssMb();
  let mostStarting = 0;
  const watcher = setInterval(() => (mostStarting = Math.max(mostStarting, carrierStarts.starting)), 5);
  const started = performance.now();
  try {
    await Promise.all(
      Array.from({ length: CONCURRENT }, async () => {
        const sandbox = await Sandbox.create();
        await sandbox.close();
      }),
    );
  } finally {
    clearInterval(watcher);
  }
  const tookMs = performance.now() - started;
  await noCarriersLeft();
  const fdsAfter = await settledFdCount(fdsBefore + 2);
  const rssAfter = hostRssMb();
  t.diagnostic(`concurrent: ${CONCURRENT} in ${Math.round(tookMs)} ms; most carriers starting at once ${mostStarting}; fds ${fdsBefore} → ${fdsAfter}; host RSS ${rssBefore.toFixed(0)} → ${rssAfter.toFixed(0)} MB`);
  assert.ok(mostStarting <= 2 * Math.max(1, (await import("node:os")).availableParallelism()), `${mostStarting} carriers were starting at once`);
  assert.ok(fdsAfter <= fdsBefore + 2, `host file descriptors: ${fdsBefore} before, ${fdsAfter} after`);
  assert.ok(rssAfter - rssBefore < 100, `host RSS grew from ${rssBefore.toFixed(0)} to ${rssAfter.toFixed(0)} MB`);
  assert.deepEqual(readdirSync(process.env.TMPDIR!), [], "nothing in the temp dir");
});

test(`${SEQUENTIAL} sandboxes created, used and closed one after another leave nothing behind`, { timeout: 30 * 60_000 }, async (t) => {
  await noCarriersLeft();
  const fdsBefore = openFdCount();
  const rssBefore = hostRssMb();
  const started = performance.now();
  for (let index = 0; index < SEQUENTIAL; index++) {
    const sandbox = await Sandbox.create();
    assert.equal(await sandbox.eval(`${index} + 1`), index + 1);
    await sandbox.close();
  }
  const tookMs = performance.now() - started;
  await noCarriersLeft();
  const fdsAfter = await settledFdCount(fdsBefore + 2);
  const rssAfter = hostRssMb();
  t.diagnostic(`sequential: ${SEQUENTIAL} in ${Math.round(tookMs)} ms; fds ${fdsBefore} → ${fdsAfter}; host RSS ${rssBefore.toFixed(0)} → ${rssAfter.toFixed(0)} MB`);
  assert.ok(fdsAfter <= fdsBefore + 2, `host file descriptors: ${fdsBefore} before, ${fdsAfter} after`);
  assert.ok(rssAfter - rssBefore < 100, `host RSS grew from ${rssBefore.toFixed(0)} to ${rssAfter.toFixed(0)} MB`);
  assert.deepEqual(readdirSync(process.env.TMPDIR!), [], "nothing in the temp dir");
});
