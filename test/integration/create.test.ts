/**
 * Sandbox.create starts a cold carrier before it checks the options (the first check loads the
 * schema library): the carrier started ahead must serve the sandbox, and must not outlive
 * options that turn out to be invalid.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Sandbox, configurePool, type SandboxOptions } from "../../src/index.js";
import { childPids, eventually } from "../processes.js";

configurePool({ size: 0 });

test("with the pool off, the carrier started ahead is the sandbox's only carrier", async () => {
  assert.ok(await eventually(() => childPids().length === 0, 10_000));
  const sandbox = await Sandbox.create({ memoryMb: 96 });
  try {
    assert.equal(childPids().length, 1);
    assert.equal(await sandbox.eval("2 + 2"), 4);
    assert.equal(childPids().length, 1);
  } finally {
    await sandbox.close();
  }
});

test("invalid options are refused, and no carrier started for them is left running", async () => {
  const invalid: unknown[] = [
    { timeoutMs: 0 }, // plain memory limit: a carrier starts ahead, then the check fails
    { memoryMb: 96, persistent: true, carriers: 2 }, // refused by the constructor, after the schema
    { memoryMb: 7 }, // not a plain limit: nothing starts ahead
    { memoryMb: "128" },
    { get memoryMb(): number { throw new RangeError("a getter that throws"); } }, // its own error
  ];
  for (const [index, options] of invalid.entries()) {
    await assert.rejects(Sandbox.create(options as SandboxOptions), (error) => error instanceof TypeError || error instanceof RangeError, `options #${index}`);
    assert.ok(await eventually(() => childPids().length === 0, 10_000), `a carrier outlived options #${index}`);
  }
});
