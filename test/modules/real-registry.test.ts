/**
 * Opt-in (PADDOCK_TEST_REGISTRY=1): the packages agents reach for, from the registry npm itself is
 * configured to use on this machine. Off in `npm test`, which never leaves loopback.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Sandbox } from "../../src/index.js";

const enabled = process.env.PADDOCK_TEST_REGISTRY === "1";

test("lodash-es, date-fns, papaparse, zod and hono from the real registry, then again offline", { skip: enabled ? false : "set PADDOCK_TEST_REGISTRY=1 to run" }, async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "paddock-real-registry-"));
  const code = `
    import { chunk } from "npm:lodash-es@4";
    import { addDays, formatISO } from "npm:date-fns@4";
    import Papa from "npm:papaparse@5";
    import { z } from "npm:zod@4";
    import { Hono } from "npm:hono@4";
    const app = new Hono().get("/hi", (c) => c.json({ hi: z.string().parse("there") }));
    const response = await app.request("/hi");
    [chunk([1, 2, 3], 2), formatISO(addDays(new Date(0), 1), { representation: "date" }), Papa.parse("a,b\\n1,2").data, await response.json()]`;
  const expected = [[[1, 2], [3]], "1970-01-02", [["a", "b"], ["1", "2"]], { hi: "there" }];
  try {
    for (const offline of [false, true]) {
      const sandbox = await Sandbox.create({ modules: { allow: ["npm:lodash-es", "npm:date-fns", "npm:papaparse", "npm:zod", "npm:hono"], cacheDir, offline } });
      try {
        const result = await sandbox.run(code, { timeoutMs: 30_000 });
        assert.ok(result.ok, result.ok ? "" : result.error.message);
        assert.deepEqual(result.value, expected);
      } finally {
        await sandbox.close();
      }
    }
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
});
