/**
 * A sandbox's files, on real carriers: the host's API (`sandbox.fs`) and node:fs inside, over the
 * same store; Node's error codes; the limits at their edges; large files streamed; and what an
 * attacker would try (traversal, planted links, many files, concurrent writes, writes that outlive
 * their eval, a carrier killed mid-write).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, mkdir, readFile, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileError, MemoryLimitError, ResourceLimitError, Sandbox, ScriptError, type FileRecord, type SandboxOptions } from "../../src/index.js";
import { withSandbox } from "../helpers.js";
import { LONG_TIMEOUT_MS } from "../timing.js";

/** A private directory for one test, removed after it. */
async function withDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "paddock-files-"));
  try {
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The code and message of what `promise` rejects with (it must reject). */
async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: string };
  }
  return assert.fail("expected a rejection");
}

/** In-sandbox: runs `body` (an async expression of the code) and gives [code, message] of what it rejects with. */
function codeOf(body: string): string {
  return `await (async () => { ${body} })().then(() => "resolved", (e) => [e.code, e.message])`;
}

const options = (files?: SandboxOptions["files"]): SandboxOptions => ({ timeoutMs: LONG_TIMEOUT_MS, ...(files ? { files } : {}) });

describe("the host's API", () => {
  test("write, read, list, stat, mkdir, rename, remove", () =>
    withSandbox(options(), async (sandbox) => {
      const fs = sandbox.fs;
      await fs.mkdir("/data/in", { recursive: true });
      await fs.writeTextFile("/data/in/a.csv", "x,y\n1,2\n");
      await fs.writeFile("data/in/b.bin", new Uint8Array([1, 2, 3]));
      await fs.writeTextFile("/data/in/a.csv", "3,4\n", { append: true });
      assert.equal(await fs.readTextFile("/data/in/a.csv"), "x,y\n1,2\n3,4\n");
      assert.deepEqual([...(await fs.readFile("/data/in/b.bin"))], [1, 2, 3]);
      assert.deepEqual((await fs.readDir("/data/in")).map((entry) => [entry.name, entry.isFile, entry.isDirectory]), [["a.csv", true, false], ["b.bin", true, false]]);
      const info = await fs.stat("/data/in/a.csv");
      assert.equal(info.size, 12);
      assert.equal(info.isFile, true);
      assert.ok(info.mtime instanceof Date && Math.abs(info.mtime.getTime() - Date.now()) < 60_000);
      assert.equal((await fs.stat("/data")).isDirectory, true);
      await fs.rename("/data/in", "/data/out");
      assert.deepEqual((await fs.readDir("/data")).map((entry) => entry.name), ["out"]);
      const notEmpty = await rejection(fs.remove("/data"));
      assert.ok(notEmpty instanceof FileError);
      assert.equal(notEmpty.code, "ENOTEMPTY");
      await fs.remove("/data", { recursive: true });
      assert.deepEqual(await fs.readDir("/"), []);
      assert.deepEqual(await fs.usage(), { bytes: 0, entries: 0, quotaBytes: 64 * 1024 * 1024, maxFiles: 10_000, maxFileBytes: 64 * 1024 * 1024 });
    }));

  test("failures are FileErrors with Node's code and message, naming the sandbox's path only", () =>
    withSandbox(options(), async (sandbox) => {
      const missing = await rejection(sandbox.fs.readTextFile("/nope.txt"));
      assert.ok(missing instanceof FileError);
      assert.equal(missing.code, "ENOENT");
      assert.equal(missing.message, "ENOENT: no such file or directory, open '/nope.txt'");
      assert.equal(missing.stack, `FileError: ${missing.message}`);
      await sandbox.fs.writeTextFile("/f", "x");
      assert.equal((await rejection(sandbox.fs.writeTextFile("/f", "y", { createNew: true }))).code, "EEXIST");
      assert.equal((await rejection(sandbox.fs.readDir("/f"))).code, "ENOTDIR");
      assert.equal((await rejection(sandbox.fs.mkdir("/f/g"))).code, "ENOTDIR");
      assert.equal((await rejection(sandbox.fs.readFile("/"))).code, "EISDIR");
      await assert.rejects(sandbox.fs.readFile("a\0b"), TypeError);
    }));

  test("bad options are TypeErrors naming the option; a closed sandbox's files are gone", async () => {
    await assert.rejects(Sandbox.create({ files: { quotaBytes: -1 } }), (error: Error) => error instanceof TypeError && /files\.quotaBytes/.test(error.message));
    await assert.rejects(Sandbox.create({ files: { dir: "" } }), (error: Error) => error instanceof TypeError && /files\.dir/.test(error.message));
    await assert.rejects(Sandbox.create({ files: { maxFiles: 1.5 } } as never), TypeError);
    const sandbox = await Sandbox.create(options());
    await sandbox.fs.writeTextFile("/x", "y");
    await sandbox.close();
    await assert.rejects(sandbox.fs.readTextFile("/x"), (error: Error) => error.name === "SandboxClosedError");
  });

  test("upload and download copy whole directories", () =>
    withDir(async (dir) => {
      const local = join(dir, "local");
      await mkdir(join(local, "sub/deeper"), { recursive: true });
      await writeFile(join(local, "top.txt"), "top");
      await writeFile(join(local, "sub/deeper/big.bin"), new Uint8Array(3 * 1024 * 1024 + 7).fill(9));
      await withSandbox(options(), async (sandbox) => {
        await sandbox.fs.upload(local, "/in");
        assert.equal(await sandbox.eval(`import { readFile, stat } from "node:fs/promises"; [await readFile("/in/top.txt", "utf8"), (await stat("/in/sub/deeper/big.bin")).size]`).then(JSON.stringify), JSON.stringify(["top", 3 * 1024 * 1024 + 7]));
        await sandbox.eval(`import { writeFile, mkdir } from "node:fs/promises"; await mkdir("/out/x", { recursive: true }); await writeFile("/out/x/report.md", "# done")`);
        await sandbox.fs.download("/", join(dir, "back"));
        assert.equal(await readFile(join(dir, "back/out/x/report.md"), "utf8"), "# done");
        assert.equal((await readFile(join(dir, "back/in/sub/deeper/big.bin"))).byteLength, 3 * 1024 * 1024 + 7);
      });
    }));
});

describe("node:fs inside the sandbox", () => {
  test("every way to import it works without a module policy, and they are the same module", () =>
    withSandbox(options(), async (sandbox) => {
      assert.deepEqual(
        await sandbox.eval(`
          import { readFile } from "node:fs/promises";
          import * as promises from "fs/promises";
          import fs, { promises as fromFs } from "node:fs";
          import plain from "fs";
          const dynamic = await import("node:fs/promises");
          [readFile === promises.readFile, fs.promises === fromFs, plain === fs, dynamic.readFile === readFile, fs.promises.readFile === readFile, typeof fs.readFile, typeof fs.writeFileSync]`),
        [true, true, true, true, true, "function", "function"],
      );
      // TypeScript, and a persistent realm's repeated imports.
      assert.equal(await sandbox.eval(`import { writeFile } from "node:fs/promises"; const n: number = 2; await writeFile("/ts", String(n)); n`, { filename: "x.ts" }), 2);
    }));

  test("files live across evals, and both sides see the same files", () =>
    withSandbox(options(), async (sandbox) => {
      await sandbox.eval(`import { writeFile } from "node:fs/promises"; await writeFile("/kept.txt", "from an eval")`);
      assert.equal(await sandbox.eval(`import { readFile } from "node:fs/promises"; await readFile("/kept.txt", "utf8")`), "from an eval");
      assert.equal(await sandbox.fs.readTextFile("/kept.txt"), "from an eval");
      await sandbox.fs.writeTextFile("/from-host.json", JSON.stringify({ n: 1 }));
      assert.deepEqual(await sandbox.eval(`import { readFile } from "node:fs/promises"; JSON.parse(await readFile("/from-host.json", { encoding: "utf8" }))`), { n: 1 });
    }));

  test("the operations, with Node's results", () =>
    withSandbox(options(), async (sandbox) => {
      const result = await sandbox.eval<unknown[]>(`
        import { readFile, writeFile, appendFile, readdir, stat, lstat, mkdir, rm, rmdir, unlink, rename, access, copyFile, realpath, mkdtemp, truncate, constants } from "node:fs/promises";
        const out = [];
        out.push(await mkdir("/a/b/c", { recursive: true }));
        out.push(await mkdir("/a/b/c", { recursive: true }));
        await writeFile("/a/t.txt", "hello");
        await appendFile("/a/t.txt", new Uint8Array([33]));
        await writeFile("/a/view", new DataView(new Uint8Array([7, 8, 9]).buffer, 1, 2));
        await writeFile("/a/hex", "cafe", "hex");
        out.push(await readFile("/a/t.txt", "utf8"), [...await readFile("/a/view")], [...await readFile("/a/hex")], await readFile("/a/hex", "base64"));
        const bytes = await readFile("/a/t.txt");
        out.push(bytes instanceof Uint8Array, bytes.constructor === Uint8Array, bytes.length);
        const pending = stat("/a/t.txt");
        const listing = await readdir("/a");
        out.push(pending instanceof Promise, Array.isArray(listing) && listing instanceof Array, Object.getPrototypeOf(Object.getPrototypeOf(await pending)) === Object.prototype);
        const s = await pending;
        out.push(s.size, s.isFile(), s.isDirectory(), s.isSymbolicLink(), s.mtime instanceof Date, typeof s.mtimeMs, (await lstat("/a")).isDirectory());
        out.push(await readdir("/a"));
        out.push((await readdir("/a", { withFileTypes: true })).map((d) => [d.name, d.isFile(), d.isDirectory(), d.parentPath]));
        out.push(await readdir("/a", { recursive: true }));
        out.push((await readdir("/", { recursive: true, withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.parentPath + ":" + d.name));
        await copyFile("/a/t.txt", "/a/copy.txt");
        out.push(await readFile("/a/copy.txt", "utf8"));
        await rename("/a/copy.txt", "/a/b/moved.txt");
        out.push(await access("/a/b/moved.txt"), await access("/a/b/moved.txt", constants.R_OK));
        out.push(await realpath("a/b/../b/./moved.txt"));
        await truncate("/a/t.txt", 2);
        out.push(await readFile("/a/t.txt", "latin1"));
        const temp = await mkdtemp("/a/tmp-");
        out.push(/^\\/a\\/tmp-[a-z0-9]{6}$/.test(temp), (await stat(temp)).isDirectory());
        await rmdir(temp);
        await unlink("/a/b/moved.txt");
        await rm("/a/hex");
        await rm("/missing", { force: true });
        await rm("/a", { recursive: true });
        out.push(await readdir("/"));
        out;`);
      assert.deepEqual(result, [
        "/a", undefined,
        "hello!", [8, 9], [0xca, 0xfe], "yv4=",
        true, true, 6,
        true, true, true,
        6, true, false, false, true, "number", true,
        ["b", "hex", "t.txt", "view"],
        [["b", false, true, "/a"], ["hex", true, false, "/a"], ["t.txt", true, false, "/a"], ["view", true, false, "/a"]],
        ["b", "b/c", "hex", "t.txt", "view"],
        ["/:a", "/a:b", "/a/b:c"],
        "hello!",
        undefined, undefined,
        "/a/b/moved.txt",
        "he",
        true, true,
        [],
      ]);
    }));

  test("errors are the realm's own Error with Node's code, errno, syscall, path and message", () =>
    withSandbox(options(), async (sandbox) => {
      const [own, code, errno, syscall, path, message, keys] = await sandbox.eval<unknown[]>(`
        import { readFile } from "node:fs/promises";
        const e = await readFile("data/x.csv").catch((e) => e);
        [e instanceof Error && e.constructor === Error, e.code, e.errno, e.syscall, e.path, e.message, Object.keys(e).sort()]`);
      assert.deepEqual([own, code, errno, syscall, path, message], [true, "ENOENT", -2, "open", "data/x.csv", "ENOENT: no such file or directory, open 'data/x.csv'"]);
      assert.deepEqual(keys, ["code", "errno", "path", "syscall"]);
      const cases: Array<[string, string]> = [
        [`await p.mkdir("/d"); await p.mkdir("/d")`, "EEXIST"],
        [`await p.writeFile("/f", "1"); await p.writeFile("/f", "2", { flag: "wx" })`, "EEXIST"],
        [`await p.writeFile("/f", "1"); await p.copyFile("/f", "/f", p.constants.COPYFILE_EXCL)`, "EEXIST"],
        [`await p.mkdir("/d", { recursive: true }); await p.readFile("/d")`, "EISDIR"],
        [`await p.mkdir("/d", { recursive: true }); await p.writeFile("/d", "x")`, "EISDIR"],
        [`await p.mkdir("/d", { recursive: true }); await p.unlink("/d")`, "EISDIR"],
        [`await p.mkdir("/d", { recursive: true }); await p.rm("/d")`, "EISDIR"],
        [`await p.writeFile("/f", "1"); await p.readdir("/f")`, "ENOTDIR"],
        [`await p.writeFile("/f", "1"); await p.writeFile("/f/x", "1")`, "ENOTDIR"],
        [`await p.writeFile("/f", "1"); await p.rmdir("/f")`, "ENOTDIR"],
        [`await p.mkdir("/n/m", { recursive: true }); await p.rmdir("/n")`, "ENOTEMPTY"],
        [`await p.mkdir("/n/m", { recursive: true }); await p.mkdir("/o/q", { recursive: true }); await p.rename("/o", "/n")`, "ENOTEMPTY"],
        [`await p.mkdir("/n/m", { recursive: true }); await p.rename("/n", "/n/m/inside")`, "EINVAL"],
        [`await p.writeFile("/missing-dir/x", "1")`, "ENOENT"],
        [`await p.stat("/nope")`, "ENOENT"],
        [`await p.rm("/nope")`, "ENOENT"],
        [`await p.rename("/nope", "/x")`, "ENOENT"],
        [`await p.access("/nope")`, "ENOENT"],
        [`await p.readFile("a".repeat(256))`, "ENAMETOOLONG"],
        [`await p.symlink("/etc/passwd", "/link")`, "EPERM"],
        [`await p.rmdir("/")`, "EBUSY"],
        [`await p.readFile("a\\0b")`, "ERR_INVALID_ARG_VALUE"],
        [`await p.readFile(42)`, "ERR_INVALID_ARG_TYPE"],
        [`await p.writeFile("/f", { not: "bytes" })`, "ERR_INVALID_ARG_TYPE"],
      ];
      for (const [body, expected] of cases) {
        const fresh = await Sandbox.create(options());
        try {
          const [got, text] = await fresh.eval<[string, string]>(`import * as p from "node:fs/promises"; ${codeOf(body)}`);
          assert.equal(got, expected, `${body}: ${text}`);
        } finally {
          await fresh.close();
        }
      }
    }));

  test("the synchronous functions say which asynchronous one to use; callbacks work", () =>
    withSandbox(options(), async (sandbox) => {
      const [message, code] = await sandbox.eval<[string, string]>(`import fs from "node:fs"; try { fs.readFileSync("/x") } catch (e) { [e.message, e.code] }`);
      assert.match(message, /^readFileSync is not available in the sandbox: use `await readFile\(…\)` from node:fs\/promises/);
      assert.equal(code, "ERR_SYNC_FS_UNAVAILABLE");
      assert.match(await sandbox.eval<string>(`import { writeFileSync } from "fs"; try { writeFileSync("/x", "y") } catch (e) { e.message }`), /writeFile\(…\)/);
      assert.deepEqual(
        await sandbox.eval(`import fs from "node:fs"; await new Promise((resolve) => fs.writeFile("/cb", "via callback", (error) => error ? resolve(["error", error.code]) : fs.readFile("/cb", "utf8", (e, text) => resolve([e, text]))))`),
        [null, "via callback"],
      );
      assert.equal(await sandbox.eval(`import fs from "node:fs"; await new Promise((resolve) => fs.stat("/nope", (e) => resolve(e.code)))`), "ENOENT");
    }));

  test("every operation is audited, in run() and to onFile", async () => {
    const seen: FileRecord[] = [];
    await withSandbox({ ...options(), onFile: (record) => seen.push(record) }, async (sandbox) => {
      const result = await sandbox.run(`import * as p from "node:fs/promises";
        await p.writeFile("/a", "12345"); await p.appendFile("/a", "6"); await p.readFile("/a"); await p.rename("/a", "/b"); await p.copyFile("/b", "/c");
        await p.readdir("/"); await p.unlink("/c"); await p.stat("/nope").catch(() => {}); 1`);
      const expected: FileRecord[] = [
        { op: "write", path: "/a", bytes: 5 },
        { op: "append", path: "/a", bytes: 1 },
        { op: "read", path: "/a", bytes: 6 },
        { op: "rename", path: "/a", to: "/b", bytes: 0 },
        { op: "copy", path: "/b", to: "/c", bytes: 6 },
        { op: "readdir", path: "/", bytes: 0 },
        { op: "unlink", path: "/c", bytes: 0 },
        { op: "stat", path: "/nope", bytes: 0, error: "ENOENT" },
      ];
      assert.deepEqual(result.files, expected);
      assert.deepEqual(seen, expected);
      assert.deepEqual((await sandbox.run("1")).files, []);
      const own: FileRecord[] = [];
      await sandbox.run(`import { stat } from "node:fs/promises"; await stat("/")`, { onFile: (record) => own.push(record) });
      assert.deepEqual(own, [{ op: "stat", path: "/", bytes: 0 }]);
    });
  });
});

describe("limits", () => {
  const limited = { quotaBytes: 1000, maxFiles: 4, maxFileBytes: 600 };

  test("exactly at the quota is fine; one byte over is ENOSPC inside and ResourceLimitError on the host; nothing is lost", () =>
    withSandbox(options(limited), async (sandbox) => {
      await sandbox.fs.writeFile("/a", new Uint8Array(600).fill(1));
      await sandbox.eval(`import { writeFile } from "node:fs/promises"; await writeFile("/b", new Uint8Array(400).fill(2))`);
      assert.equal((await sandbox.fs.usage()).bytes, 1000);
      // One byte over: a new file, an append, a longer replacement.
      for (const body of [`await writeFile("/c", "x")`, `await appendFile("/b", "x")`, `await writeFile("/b", new Uint8Array(401))`]) {
        const [code, message] = await sandbox.eval<[string, string]>(`import { writeFile, appendFile } from "node:fs/promises"; ${codeOf(body)}`);
        assert.equal(code, "ENOSPC", body);
        assert.match(message, /^ENOSPC: no space left on device, open '\/[bc]'$/);
      }
      const onHost = await rejection(sandbox.fs.writeTextFile("/c", "x"));
      assert.ok(onHost instanceof ResourceLimitError, onHost.message);
      assert.match(onHost.message, /quotaBytes/);
      // Replacing a file counts what it frees: the same size again fits exactly.
      await sandbox.fs.writeFile("/b", new Uint8Array(400).fill(3));
      // Over maxFileBytes: EFBIG, even where the quota would allow it.
      await sandbox.fs.remove("/b");
      const [big] = await sandbox.eval<[string]>(`import { writeFile } from "node:fs/promises"; ${codeOf(`await writeFile("/a", new Uint8Array(601))`)}`);
      assert.equal(big, "EFBIG");
      assert.ok((await rejection(sandbox.fs.writeFile("/a", new Uint8Array(601)))) instanceof ResourceLimitError);
      // Every failed write left the files as they were.
      assert.deepEqual(await sandbox.fs.readFile("/a"), new Uint8Array(600).fill(1));
      assert.deepEqual(await sandbox.fs.usage(), { bytes: 600, entries: 1, ...limited });
      assert.equal(await sandbox.eval(`import { readdir } from "node:fs/promises"; (await readdir("/")).join()`), "a");
    }));

  test("maxFiles counts files and directories; an uncaught ENOSPC fails the eval with ResourceLimitError", () =>
    withSandbox(options(limited), async (sandbox) => {
      await sandbox.eval(`import { mkdir, writeFile } from "node:fs/promises"; await mkdir("/d/e", { recursive: true }); await writeFile("/d/e/1", ""); await writeFile("/2", "")`);
      const result = await sandbox.run(`import { writeFile } from "node:fs/promises"; await writeFile("/3", "")`);
      assert.ok(!result.ok && result.error instanceof ResourceLimitError, result.ok ? "ok" : result.error.message);
      assert.match(result.error.message, /ENOSPC/);
      assert.equal((await rejection(sandbox.fs.mkdir("/x"))).constructor, ResourceLimitError);
      // Overwriting an existing file needs no new entry.
      await sandbox.eval(`import { writeFile } from "node:fs/promises"; await writeFile("/2", "again")`);
      assert.equal((await sandbox.fs.usage()).entries, 4);
    }));

  test("huge numbers of tiny files stop at maxFiles", () =>
    withSandbox(options({ maxFiles: 300 }), async (sandbox) => {
      const [made, code] = await sandbox.eval<[number, string]>(`import { writeFile } from "node:fs/promises";
        let made = 0, code;
        try { for (let i = 0; i < 1000; i++) { await writeFile("/f" + i, "x"); made++; } } catch (e) { code = e.code; }
        [made, code]`);
      assert.deepEqual([made, code], [300, "ENOSPC"]);
      assert.equal((await sandbox.fs.readDir("/")).length, 300);
    }));
});

describe("limits that moves and concurrency cannot get around", () => {
  test("a directory cannot be moved so deep that what it holds passes 128 levels (a store reopened from disk would not count it)", () =>
    withDir((dir) =>
      withSandbox(options({ dir, quotaBytes: 100_000 }), async (sandbox) => {
        const chain = (top: string, prefix: string) => [top, ...Array.from({ length: 100 }, (_, i) => `${prefix}${i}`)].join("/");
        const moved = await sandbox.eval(`import { mkdir, rename, writeFile } from "node:fs/promises";
          await mkdir("/${chain("A", "a")}", { recursive: true });
          await writeFile("/${chain("A", "a")}/big", "x".repeat(50000));
          await mkdir("/${chain("B", "b")}", { recursive: true });
          ${codeOf(`await rename("/A", "/${chain("B", "b")}/A")`)}`);
        assert.deepEqual((moved as string[])[0], "ENAMETOOLONG");
        assert.equal((await sandbox.fs.usage()).bytes, 50000);
      }),
    ));

  test("writes replacing one file at once each need room of their own: the quota holds while they are pending", () =>
    withSandbox(options({ quotaBytes: 3_300_000 }), async (sandbox) => {
      // Larger than a chunk: each write streams, so they are pending at once.
      const outcome = (await sandbox.eval(`import { writeFile, readFile } from "node:fs/promises";
        await writeFile("/f", new Uint8Array(3_000_000));
        const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => writeFile("/f", new Uint8Array(3_000_000).fill(i + 1))));
        const contents = await readFile("/f");
        ({ codes: results.map((r) => r.status === "fulfilled" ? "ok" : r.reason.code), first: contents[0], length: contents.length })`)) as { codes: string[]; first: number; length: number };
      assert.ok(outcome.codes.includes("ok"), JSON.stringify(outcome));
      assert.ok(outcome.codes.includes("ENOSPC"), JSON.stringify(outcome));
      assert.equal(outcome.length, 3_000_000);
      assert.ok(outcome.first >= 1 && outcome.first <= 6);
      assert.ok((await sandbox.fs.usage()).bytes <= 3_300_000);
    }));
});

describe("large files", () => {
  test("sizes at the chunk's edges: empty, one chunk, one byte more", () =>
    withSandbox(options(), async (sandbox) => {
      const sizes = [0, 1, 1024 * 1024 - 1, 1024 * 1024, 1024 * 1024 + 1, 2 * 1024 * 1024];
      const back = await sandbox.eval<number[][]>(`import { readFile, writeFile } from "node:fs/promises";
        const out = [];
        for (const size of ${JSON.stringify(sizes)}) {
          await writeFile("/f" + size, new Uint8Array(size).map((_, i) => i % 256));
          const bytes = await readFile("/f" + size);
          out.push([bytes.length, bytes.every((b, i) => b === i % 256) ? 1 : 0]);
        }
        out`);
      assert.deepEqual(back, sizes.map((size) => [size, 1]));
      for (const size of sizes) assert.equal((await sandbox.fs.readFile(`/f${size}`)).byteLength, size);
    }));

  test("20 MB through the sandbox and back, in chunks, intact", () =>
    withSandbox({ ...options(), memoryMb: 256 }, async (sandbox) => {
      const size = 20 * 1024 * 1024 + 3;
      const data = new Uint8Array(size).map((_, i) => (i * 7) % 251);
      await sandbox.fs.writeFile("/in.bin", data);
      const sum = await sandbox.eval<number>(`import { readFile, writeFile, appendFile } from "node:fs/promises";
        const bytes = await readFile("/in.bin");
        let sum = 0; for (let i = 0; i < bytes.length; i += 4093) sum += bytes[i];
        await writeFile("/out.bin", bytes);
        await appendFile("/out.bin", new Uint8Array(2 * 1024 * 1024).fill(5));
        sum`);
      let expected = 0;
      for (let i = 0; i < size; i += 4093) expected += data[i]!;
      assert.equal(sum, expected);
      const back = await sandbox.fs.readFile("/out.bin");
      assert.equal(back.byteLength, size + 2 * 1024 * 1024);
      assert.deepEqual(back.subarray(0, size), data);
      assert.ok(back.subarray(size).every((byte) => byte === 5));
    }));
});

describe("isolation and lifetime", () => {
  test("two sandboxes never see each other's files", () =>
    withSandbox(options(), (one) =>
      withSandbox(options(), async (two) => {
        await one.eval(`import { writeFile } from "node:fs/promises"; await writeFile("/secret", "one's")`);
        assert.equal(await two.eval(`import { readdir } from "node:fs/promises"; (await readdir("/")).length`), 0);
        assert.equal((await rejection(two.fs.readTextFile("/secret"))).code, "ENOENT");
      })));

  test("all carriers of a sandbox share its files", () =>
    withSandbox({ ...options(), carriers: 2 }, async (sandbox) => {
      const writes = Array.from({ length: 6 }, (_, i) => sandbox.eval(`import { writeFile } from "node:fs/promises"; await new Promise((r) => setTimeout(r, 20)); await writeFile("/w${i}", "${i}")`));
      await Promise.all(writes);
      assert.equal(await sandbox.eval(`import { readdir } from "node:fs/promises"; (await readdir("/")).join()`), "w0,w1,w2,w3,w4,w5");
    }));

  test("concurrent writes to one file leave one of them, whole", () =>
    withSandbox(options(), async (sandbox) => {
      const sizes = await sandbox.eval<number[]>(`import { writeFile, readFile } from "node:fs/promises";
        await Promise.all(Array.from({ length: 8 }, (_, i) => writeFile("/same", new Uint8Array(100_000 + i * 300_000).fill(i))));
        const bytes = await readFile("/same");
        [bytes.length, bytes[0], bytes.every((b) => b === bytes[0]) ? 1 : 0]`);
      assert.equal(sizes[0], 100_000 + sizes[1]! * 300_000);
      assert.equal(sizes[2], 1);
      assert.equal((await sandbox.fs.usage()).bytes, sizes[0]);
    }));

  test("a write the eval left running is dropped when the eval ends", () =>
    withSandbox(options(), async (sandbox) => {
      await sandbox.fs.writeTextFile("/big", "before");
      // Not awaited: the eval ends before the host gives the write any credit.
      assert.equal(await sandbox.eval(`import { writeFile } from "node:fs/promises"; writeFile("/big", new Uint8Array(30 * 1024 * 1024)); writeFile("/other", new Uint8Array(5 * 1024 * 1024)); 1`), 1);
      assert.equal(await sandbox.fs.readTextFile("/big"), "before");
      assert.equal((await rejection(sandbox.fs.stat("/other"))).code, "ENOENT");
      assert.deepEqual(await sandbox.fs.usage().then(({ bytes, entries }) => [bytes, entries]), [6, 1]);
      // A persistent realm's later call of a function kept from an earlier eval is that later eval's.
      await withSandbox({ ...options(), persistent: true }, async (repl) => {
        await repl.eval(`import { writeFile } from "node:fs/promises"; globalThis.save = (text) => writeFile("/saved", text); 1`);
        await repl.eval(`await save("later")`);
        assert.equal(await repl.fs.readTextFile("/saved"), "later");
      });
    }));

  test("a carrier killed in the middle of a write loses nothing, and the files outlive it", () =>
    withSandbox({ ...options(), memoryMb: 128 }, async (sandbox) => {
      await sandbox.fs.writeTextFile("/kept", "v1");
      const result = await sandbox.run(`import { writeFile } from "node:fs/promises";
        writeFile("/kept", new Uint8Array(8 * 1024 * 1024).fill(2));
        const hoard = []; for (let i = 0; i < 64; i++) { const b = new Uint8Array(256 * 1024 * 1024); b.fill(1); hoard.push(b); } hoard.length`);
      assert.ok(!result.ok && result.error instanceof MemoryLimitError, result.ok ? "ok" : result.error.message);
      assert.equal(await sandbox.fs.readTextFile("/kept"), "v1");
      assert.equal(await sandbox.eval(`import { readFile } from "node:fs/promises"; await readFile("/kept", "utf8")`), "v1");
      assert.equal((await sandbox.fs.usage()).bytes, 2);
    }));
});

describe("traversal and names", () => {
  test("`..`, %2e%2e, backslashes and host paths stay inside the sandbox's root", () =>
    withSandbox(options(), async (sandbox) => {
      const result = await sandbox.eval<unknown[]>(`import * as p from "node:fs/promises";
        const out = [];
        await p.writeFile("../../../../escaped", "1");
        out.push(await p.readdir("/"));
        out.push(await p.readFile("/etc/passwd").catch((e) => e.code));
        out.push(await p.readFile("../../etc/passwd").catch((e) => e.code));
        out.push(await p.writeFile("%2e%2e/x", "1").catch((e) => e.code));
        await p.mkdir("%2e%2e"); await p.writeFile("%2e%2e/x", "1");
        await p.writeFile("\\\\..\\\\x", "1");
        out.push((await p.readdir("/")).sort());
        out.push(await p.readFile("a".repeat(256)).catch((e) => e.code), await p.writeFile(("d".repeat(200) + "/").repeat(21), "").catch((e) => e.code));
        out.push(await p.readFile("/x\\0/../escaped").catch((e) => e.code));
        out;`);
      assert.deepEqual(result, [["escaped"], "ENOENT", "ENOENT", "ENOENT", ["%2e%2e", "\\..\\x", "escaped"], "ENAMETOOLONG", "ENAMETOOLONG", "ERR_INVALID_ARG_VALUE"]);
    }));
});

describe("on disk", () => {
  test("files land in the directory, survive a carrier kill and the sandbox, and one open sandbox owns it", () =>
    withDir(async (root) => {
      const dir = join(root, "store");
      await withSandbox({ ...options({ dir, quotaBytes: 10 * 1024 * 1024 }), memoryMb: 128 }, async (sandbox) => {
        await sandbox.eval(`import { writeFile, mkdir } from "node:fs/promises"; await mkdir("/sub"); await writeFile("/sub/a.txt", "on disk"); await writeFile("../../../escaped", "kept in")`);
        assert.equal(await readFile(join(dir, "sub/a.txt"), "utf8"), "on disk");
        assert.equal(await readFile(join(dir, "escaped"), "utf8"), "kept in");
        assert.deepEqual((await readdir(root)).sort(), ["store"]);
        await assert.rejects(Sandbox.create(options({ dir })), /files\.dir is in use by another open sandbox/);
        // A carrier killed mid-write: the old content stays, and nothing half-written shows.
        const killed = await sandbox.run(`import { writeFile } from "node:fs/promises";
          writeFile("/sub/a.txt", new Uint8Array(6 * 1024 * 1024).fill(2));
          const hoard = []; for (let i = 0; i < 64; i++) { const b = new Uint8Array(256 * 1024 * 1024); b.fill(1); hoard.push(b); } hoard.length`);
        assert.ok(!killed.ok && killed.error instanceof MemoryLimitError);
        assert.equal(await sandbox.eval(`import { readFile } from "node:fs/promises"; await readFile("/sub/a.txt", "utf8")`), "on disk");
        assert.deepEqual((await sandbox.fs.readDir("/")).map((entry) => entry.name), ["escaped", "sub"]);
      });
      await withSandbox(options({ dir }), async (again) => {
        assert.equal(await again.fs.readTextFile("/sub/a.txt"), "on disk");
        assert.deepEqual(await again.fs.usage().then(({ bytes, entries }) => [bytes, entries]), [14, 3]);
      });
    }));

  test("links planted in the directory are never followed, and no host path reaches the sandbox", () =>
    withDir(async (root) => {
      const dir = join(root, "store");
      const outside = join(root, "outside");
      await mkdir(join(dir, "real"), { recursive: true });
      await mkdir(outside);
      await writeFile(join(outside, "secret"), "host secret");
      await symlink(outside, join(dir, "dirlink"));
      await symlink(join(outside, "secret"), join(dir, "filelink"));
      await withSandbox(options({ dir }), async (sandbox) => {
        const seen = await sandbox.eval<unknown[]>(`import * as p from "node:fs/promises";
          [await p.readdir("/"), await p.readFile("/filelink").catch((e) => e.code), await p.readFile("/dirlink/secret").catch((e) => e.code),
           await p.writeFile("/dirlink/new", "x").catch((e) => e.code), await p.readdir("/dirlink").catch((e) => e.code)]`);
        assert.deepEqual(seen, [["real"], "ENOENT", "ENOENT", "ENOENT", "ENOENT"]);
        // Writing over the link's name replaces the link, never its target.
        await sandbox.eval(`import { writeFile } from "node:fs/promises"; await writeFile("/filelink", "mine")`);
        assert.equal(await readFile(join(outside, "secret"), "utf8"), "host secret");
        // A directory swapped for a link after the sandbox opened the store is refused, not followed.
        await sandbox.eval(`import { writeFile } from "node:fs/promises"; await writeFile("/real/f", "1")`);
        await rm(join(dir, "real"), { recursive: true });
        await symlink(outside, join(dir, "real"));
        const [code, message] = await sandbox.eval<[string, string]>(`import { writeFile } from "node:fs/promises"; ${codeOf(`await writeFile("/real/g", "x")`)}`);
        assert.equal(code, "EIO");
        assert.deepEqual(await readdir(outside), ["secret"]);
        // The backend's own directory is not the sandbox's.
        assert.equal(await sandbox.eval(`import { readdir } from "node:fs/promises"; ${codeOf(`await readdir("/.paddock")`)}`).then((value) => (value as string[])[0]), "EPERM");
        for (const text of [message, JSON.stringify(seen)]) assert.ok(!text.includes(root), `a host path in ${text}`);
        const failed = await sandbox.run(`import { readFile } from "node:fs/promises"; await readFile("/nope")`);
        assert.ok(!failed.ok && failed.error instanceof ScriptError);
        assert.ok(!failed.error.message.includes(root) && !String(failed.error.stack).includes(root));
      });
    }));
});
