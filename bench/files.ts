/**
 * Files: write and read throughput of one large file inside a sandbox (in-memory store and on-disk
 * store) against the host's own node:fs on the same bytes in the same run, and small-file
 * operations per second. In-sandbox figures are timed inside the sandbox, around the awaited call:
 * they hold the chunked transfer both ways and the store's work.
 */
import { mkdtemp, readFile, rm, stat, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Sandbox, type SandboxOptions } from "../src/index.js";

export interface FilesPlan {
  /** Size of the large file, in bytes. */
  bytes: number;
  /** Timed repetitions of each large-file figure (the median is reported). */
  runs: number;
  /** Small files written, then read, then stat'ed, per run. */
  smallFiles: number;
}

export interface ThroughputRow {
  id: string;
  title: string;
  writeMBps: number;
  readMBps: number;
}

export interface SmallFilesRow {
  id: string;
  title: string;
  writesPerSecond: number;
  readsPerSecond: number;
  statsPerSecond: number;
}

export interface FilesResults {
  bytes: number;
  throughput: ThroughputRow[];
  smallFiles: SmallFilesRow[];
}

/** The same bytes on both sides, made by the same formula. */
const PATTERN = "(i * 7) % 251";

export async function benchFiles(plan: FilesPlan, log: (message: string) => void): Promise<FilesResults> {
  const scratch = await mkdtemp(join(tmpdir(), "paddock-bench-files-"));
  try {
    const data = new Uint8Array(plan.bytes).map((_, i) => (i * 7) % 251);
    const throughput: ThroughputRow[] = [];
    const smallFiles: SmallFilesRow[] = [];
    const add = <T extends { title: string }>(rows: T[], row: T, figures: string) => {
      rows.push(row);
      log(`files ${row.title}: ${figures}`);
    };

    const hostFile = join(scratch, "host.bin");
    const host = await timeRuns(plan.runs, async () => {
      const write = await timed(() => writeFile(hostFile, data));
      const read = await timed(async () => {
        if ((await readFile(hostFile)).byteLength !== plan.bytes) throw new Error("the host read back the wrong size");
      });
      return [write, read];
    });
    add(throughput, { id: "host-node-fs", title: "the host's own node:fs (temporary directory)", ...rates(plan.bytes, host) }, describeRates(plan.bytes, host));

    const memoryMb = Math.max(256, Math.ceil((plan.bytes * 4) / 1024 / 1024));
    const stores: Array<[string, string, SandboxOptions["files"]]> = [
      ["sandbox-memory", "node:fs/promises in a sandbox, in-memory store", { quotaBytes: plan.bytes * 4 }],
      ["sandbox-disk", "node:fs/promises in a sandbox, on-disk store (temporary directory)", { dir: join(scratch, "store"), quotaBytes: plan.bytes * 4 }],
    ];
    for (const [id, title, files] of stores) {
      const sandbox = await Sandbox.create({ files, memoryMb, timeoutMs: 600_000 });
      try {
        const figures = await timeRuns(plan.runs, async () => {
          const [write, read] = await sandbox.eval<[number, number]>(`import { writeFile, readFile } from "node:fs/promises";
            const data = new Uint8Array(${plan.bytes}); for (let i = 0; i < data.length; i++) data[i] = ${PATTERN};
            let started = performance.now(); await writeFile("/big.bin", data); const write = performance.now() - started;
            started = performance.now(); const back = await readFile("/big.bin"); const read = performance.now() - started;
            if (back.length !== data.length || back[12345] !== data[12345]) throw new Error("read back wrong");
            [write, read]`);
          return [write, read];
        });
        add(throughput, { id, title, ...rates(plan.bytes, figures) }, describeRates(plan.bytes, figures));
        // Twice, the first untimed: the loop's code and the carrier's paths warm up.
        const smallLoop = `import { writeFile, readFile, stat, mkdir } from "node:fs/promises";
          await mkdir("/small", { recursive: true });
          const n = ${plan.smallFiles};
          let started = performance.now(); for (let i = 0; i < n; i++) await writeFile("/small/" + i, "line " + i + "\\n"); const write = performance.now() - started;
          started = performance.now(); for (let i = 0; i < n; i++) await readFile("/small/" + i, "utf8"); const read = performance.now() - started;
          started = performance.now(); for (let i = 0; i < n; i++) await stat("/small/" + i); const statted = performance.now() - started;
          [write, read, statted]`;
        await sandbox.eval(smallLoop);
        const small = await sandbox.eval<[number, number, number]>(smallLoop);
        add(smallFiles, { id, title, ...opsPerSecond(plan.smallFiles, small) }, describeOps(plan.smallFiles, small));
      } finally {
        await sandbox.close();
      }
    }

    const hostSmall = join(scratch, "small");
    await mkdir(hostSmall);
    const smallLoop = async (): Promise<[number, number, number]> => [
      await timed(async () => {
        for (let i = 0; i < plan.smallFiles; i++) await writeFile(join(hostSmall, String(i)), `line ${i}\n`);
      }),
      await timed(async () => {
        for (let i = 0; i < plan.smallFiles; i++) await readFile(join(hostSmall, String(i)), "utf8");
      }),
      await timed(async () => {
        for (let i = 0; i < plan.smallFiles; i++) await stat(join(hostSmall, String(i)));
      }),
    ];
    await smallLoop();
    const small = await smallLoop();
    add(smallFiles, { id: "host-node-fs", title: "the host's own node:fs (temporary directory)", ...opsPerSecond(plan.smallFiles, small) }, describeOps(plan.smallFiles, small));
    return { bytes: plan.bytes, throughput, smallFiles };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

export function renderFiles(results: FilesResults): string[] {
  const mb = (results.bytes / 1e6).toFixed(0);
  return [
    `### Files: one ${mb} MB file, median of the runs (MB/s, 1 MB = 10^6 bytes)`,
    "",
    "| | write MB/s | read MB/s |",
    "|---|---:|---:|",
    ...results.throughput.map((row) => `| ${row.title} | ${row.writeMBps} | ${row.readMBps} |`),
    "",
    "### Files: small files, one at a time, awaited (operations/s)",
    "",
    "| | writeFile/s | readFile/s | stat/s |",
    "|---|---:|---:|---:|",
    ...results.smallFiles.map((row) => `| ${row.title} | ${row.writesPerSecond} | ${row.readsPerSecond} | ${row.statsPerSecond} |`),
  ];
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

/** Runs `once` `runs` times (after one untimed warm-up); the median of each of its figures (ms). */
async function timeRuns(runs: number, once: () => Promise<number[]>): Promise<number[]> {
  await once();
  const all: number[][] = [];
  for (let i = 0; i < runs; i++) all.push(await once());
  return all[0]!.map((_, column) => median(all.map((figures) => figures[column]!)));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function rates(bytes: number, [writeMs, readMs]: number[]): { writeMBps: number; readMBps: number } {
  const rate = (ms: number) => Math.round(bytes / 1e6 / (ms / 1000));
  return { writeMBps: rate(writeMs!), readMBps: rate(readMs!) };
}

function describeRates(bytes: number, figures: number[]): string {
  const { writeMBps, readMBps } = rates(bytes, figures);
  return `write ${writeMBps} MB/s, read ${readMBps} MB/s`;
}

function opsPerSecond(count: number, [write, read, statted]: [number, number, number]): Omit<SmallFilesRow, "id" | "title"> {
  const rate = (ms: number) => Math.round(count / (ms / 1000));
  return { writesPerSecond: rate(write), readsPerSecond: rate(read), statsPerSecond: rate(statted) };
}

function describeOps(count: number, figures: [number, number, number]): string {
  const { writesPerSecond, readsPerSecond, statsPerSecond } = opsPerSecond(count, figures);
  return `${writesPerSecond} writes/s, ${readsPerSecond} reads/s, ${statsPerSecond} stats/s`;
}
