/**
 * A carrier that abuses the files capability without breaking the protocol: it asks for many files
 * at once and never reads its pipe. The host holds only a bounded number of reads' bytes for it.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Sandbox, configurePool, type FileRecord } from "../../src/index.js";
import { READS_IN_FLIGHT } from "../../src/capabilities/files/flow.js";
import { fakeCarrier } from "../hostile/fake-carrier.js";
import { eventually } from "../processes.js";
import { LONG_TIMEOUT_MS } from "../timing.js";

before(() => configurePool({ size: 0 }));
after(() => configurePool({ size: 2 }));

test("reads a carrier does not take from its pipe stop at READS_IN_FLIGHT", async () => {
  const reads = 400;
  process.env.PADDOCK_DENO = fakeCarrier(`
    for (let call = 1; call <= ${reads}; call++) send({ t: "call", id: message.id, call, cap: "files", args: { op: "read", path: "/mb" } });
    process.stdin.pause();
    setInterval(() => {}, 60_000);`);
  const served: FileRecord[] = [];
  let sandbox: Sandbox;
  try {
    sandbox = await Sandbox.create({ timeoutMs: LONG_TIMEOUT_MS, onFile: (record) => served.push(record) });
  } finally {
    delete process.env.PADDOCK_DENO;
  }
  try {
    await sandbox.fs.writeFile("/mb", new Uint8Array(1024 * 1024 - 100).fill(7));
    const running = sandbox.run("1");
    assert.ok(await eventually(() => served.length >= READS_IN_FLIGHT, 30_000), `only ${served.length} reads were served`);
    // However long the host waits now, the other reads wait for the carrier to read its pipe.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(served.length, READS_IN_FLIGHT, JSON.stringify(served.slice(-3)));
    await sandbox.close();
    await running;
  } finally {
    await sandbox.close();
  }
});
