/**
 * An app's files: the same `files` option as a sandbox's, kept on disk across the app's restarts
 * (its carrier dying, the app closed and created again), never another app's.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "../../src/index.js";

const NOTES = `
import { appendFile, readFile } from "node:fs/promises";
export default {
  async fetch(request: Request) {
    const url = new URL(request.url);
    if (request.method === "POST") {
      await appendFile("/notes.txt", (await request.text()) + "\\n");
      return new Response("saved", { status: 201 });
    }
    if (url.pathname === "/crash") { const hoard = []; for (;;) hoard.push(new Uint8Array(64 * 1024 * 1024).fill(1)); }
    return new Response(await readFile("/notes.txt", "utf8").catch((e) => e.code));
  },
};`;

test("an app keeps its files across a crash and a restart; another app does not see them", async () => {
  const root = await mkdtemp(join(tmpdir(), "paddock-app-files-"));
  try {
    const options = { sources: { "main.ts": NOTES }, files: { dir: join(root, "notes"), quotaBytes: 1_000_000 }, memoryMb: 128 };
    const app = await App.create(options);
    try {
      assert.equal((await app.fetch("http://app/", { method: "POST", body: "first" })).status, 201);
      assert.equal(await (await app.fetch("http://app/")).text(), "first\n");
      assert.equal((await app.fetch("http://app/crash")).status >= 500, true);
      assert.equal((await app.fetch("http://app/", { method: "POST", body: "second" })).status, 201);
      assert.equal(await app.fs.readTextFile("/notes.txt"), "first\nsecond\n");
    } finally {
      await app.close(0);
    }
    const again = await App.create(options);
    const other = await App.create({ sources: { "main.ts": NOTES } });
    try {
      assert.equal(await (await again.fetch("http://app/")).text(), "first\nsecond\n");
      assert.equal(await (await other.fetch("http://app/")).text(), "ENOENT");
    } finally {
      await again.close(0);
      await other.close(0);
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
