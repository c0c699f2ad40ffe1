/**
 * Transforms: messages/s through a filter+reshape of a ~200-byte record, by batch size and number
 * of carriers, for values (callMany) and for JSON texts (callManyJson, what a stream of records
 * and the CLI use); single-call latency against the sync-pipe floor; the CLI's NDJSON MB/s. In the
 * same run: the same function in a node:vm context of the host (no isolation at all: an unsafe
 * reference), in a quickjs-emscripten context (compiled once, called per message), and the
 * published interpreter figure (100k calls/s per core).
 */
import vm from "node:vm";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Transform } from "../src/index.js";
import { elapsedUs, formatMegabytes, summarize, type Summary } from "./stats.js";

export interface TransformPlan {
  /** Messages per throughput figure. */
  messages: number;
  /** Single calls timed. */
  calls: number;
  /** Bytes of NDJSON the CLI is timed on. */
  cliBytes: number;
}

export interface TransformResults {
  recordBytes: number;
  cliBytes: number;
  /** Messages/s by carriers, then batch size: for values and for JSON texts. */
  throughput: Array<{ carriers: number; batchSize: number; values: number; json: number; hostCpuUsPerMessage: number }>;
  call: Summary;
  baselines: { nodeVm: number; quickjs: number | undefined; published: number };
  /** MB/s of NDJSON through `paddock transform`, with and without its start (an empty input's run). */
  cli: { withStart: number; steady: number; startMs: number };
}

const FUNCTION_BODY = `(msg) => msg.amount > 100 ? { id: msg.id, user: msg.user.toUpperCase(), amount: msg.amount, flagged: true } : undefined`;
const CODE = `export default ${FUNCTION_BODY}`;
/** The published restricted-interpreter figure (Sequin's "mini-Elixir"): calls/s per core. */
const PUBLISHED_PER_CORE = 100_000;
const BATCH_SIZES = [1, 10, 100, 1000, 10_000];
const IN_FLIGHT = 4;

function record(i: number): Record<string, unknown> {
  return { id: i, amount: i % 300, user: `user${i}`, tags: ["a", "b", "c"], ts: "2026-12-03T10:00:00.000Z", note: "a change event from the orders table, with enough text to be typical", region: "eu-north" };
}

export async function benchTransforms(plan: TransformPlan, progress: (line: string) => void): Promise<TransformResults> {
  const messages = Array.from({ length: plan.messages }, (_, i) => record(i));
  const texts = messages.map((message) => JSON.stringify(message));
  const recordBytes = Math.round(texts.reduce((sum, text) => sum + text.length, 0) / texts.length);
  const throughput: TransformResults["throughput"] = [];
  let call: Summary | undefined;
  for (const carriers of [1, 2]) {
    const transform = await Transform.create({ code: CODE, carriers });
    try {
      for (const batchSize of BATCH_SIZES) {
        // Small batches are slow per message: fewer of them keep the run short.
        const count = Math.min(plan.messages, batchSize * 2000);
        await pump((part) => transform.callMany(part), messages.slice(0, Math.min(count, 2000)), batchSize);
        const values = await pump((part) => transform.callMany(part), messages.slice(0, count), batchSize);
        const json = await pump((part) => transform.callManyJson(part), texts.slice(0, count), batchSize);
        throughput.push({ carriers, batchSize, values: values.perSecond, json: json.perSecond, hostCpuUsPerMessage: json.hostCpuUs });
        progress(`transforms ${carriers} carrier(s), batch ${batchSize}: ${values.perSecond} msg/s (values), ${json.perSecond} msg/s (JSON)`);
      }
      if (carriers === 1) {
        const samples: number[] = [];
        for (let i = 0; i < plan.calls + 100; i++) {
          const started = performance.now();
          await transform.call(messages[i % messages.length]);
          if (i >= 100) samples.push(elapsedUs(started));
        }
        call = summarize(samples);
      }
    } finally {
      await transform.close();
    }
  }
  const baselines = { nodeVm: nodeVmRate(texts), quickjs: await quickjsRate(texts), published: PUBLISHED_PER_CORE };
  progress(`transforms baselines: node:vm ${baselines.nodeVm}, quickjs ${baselines.quickjs ?? "n/a"} msg/s`);
  const cli = await cliRate(texts, plan.cliBytes);
  progress(`transforms CLI: ${cli.steady} MB/s (${cli.withStart} MB/s with its ${cli.startMs} ms start)`);
  return { recordBytes, cliBytes: plan.cliBytes, throughput, call: call!, baselines, cli };
}

/** Sends `items` in batches, IN_FLIGHT at a time; messages/s and the host's CPU per message. */
async function pump<T>(run: (batch: T[]) => Promise<unknown[]>, items: T[], batchSize: number): Promise<{ perSecond: number; hostCpuUs: number }> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const held: Array<Promise<unknown[]>> = [];
  for (let i = 0; i < items.length; i += batchSize) {
    held.push(run(items.slice(i, i + batchSize)));
    if (held.length >= IN_FLIGHT) await held.shift();
  }
  await Promise.all(held);
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { perSecond: Math.round(items.length / seconds), hostCpuUs: Math.round(((used.user + used.system) / items.length) * 100) / 100 };
}

/** The function in a node:vm context of the host, with the same JSON in and out per message. */
function nodeVmRate(texts: string[]): number {
  const context = vm.createContext({});
  const fn = vm.runInContext(FUNCTION_BODY, context) as (message: unknown) => unknown;
  const parse = vm.runInContext("JSON.parse", context) as (text: string) => unknown;
  for (const text of texts.slice(0, 10_000)) JSON.stringify(fn(parse(text)));
  const started = performance.now();
  for (const text of texts) JSON.stringify(fn(parse(text)));
  return Math.round(texts.length / ((performance.now() - started) / 1000));
}

/** The function compiled once in one QuickJS context, called per message with a JSON text in and out. */
async function quickjsRate(texts: string[]): Promise<number | undefined> {
  let quickjs: typeof import("quickjs-emscripten");
  try {
    quickjs = await import("quickjs-emscripten");
  } catch {
    return undefined; // a development dependency
  }
  const module = await quickjs.getQuickJS();
  const context = module.newContext();
  try {
    const fn = context.unwrapResult(context.evalCode(`(() => { const f = ${FUNCTION_BODY}; return (text) => { const r = f(JSON.parse(text)); return r === undefined ? "" : JSON.stringify(r); }; })()`));
    const count = Math.min(texts.length, 50_000);
    const once = (text: string) => {
      const arg = context.newString(text);
      const result = context.unwrapResult(context.callFunction(fn, context.undefined, arg));
      context.getString(result);
      result.dispose();
      arg.dispose();
    };
    for (const text of texts.slice(0, 2000)) once(text);
    const started = performance.now();
    for (const text of texts.slice(0, count)) once(text);
    fn.dispose();
    return Math.round(count / ((performance.now() - started) / 1000));
  } finally {
    context.dispose();
  }
}

/** `paddock transform` with 2 carriers over NDJSON of these records, process start included. */
async function cliRate(texts: string[], bytes: number): Promise<TransformResults["cli"]> {
  const dir = mkdtempSync(join(tmpdir(), "paddock-bench-transform-"));
  try {
    const lines: string[] = [];
    let size = 0;
    for (let i = 0; size < bytes; i++) {
      const line = texts[i % texts.length]!;
      lines.push(line);
      size += line.length + 1;
    }
    const input = join(dir, "in.ndjson");
    writeFileSync(input, lines.join("\n") + "\n");
    const fn = join(dir, "fn.js");
    writeFileSync(fn, CODE);
    const empty = join(dir, "empty.ndjson");
    writeFileSync(empty, "");
    const bin = fileURLToPath(new URL("../../bin/paddock.js", import.meta.url));
    const timed = async (file: string) => {
      const started = performance.now();
      await new Promise<void>((resolve, reject) => {
        execFile("sh", ["-c", `"${process.execPath}" "${bin}" transform "${fn}" --carriers 2 < "${file}" > /dev/null`], { maxBuffer: 1 << 20 }, (error) => (error ? reject(error) : resolve()));
      });
      return (performance.now() - started) / 1000;
    };
    const startSeconds = await timed(empty);
    const seconds = await timed(input);
    return { withStart: Math.round(size / 1e6 / seconds), steady: Math.round(size / 1e6 / Math.max(0.001, seconds - startSeconds)), startMs: Math.round(startSeconds * 1000) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function renderTransforms(results: TransformResults, floorP50Us: number | undefined): string[] {
  const rate = (value: number) => value.toLocaleString("en-US");
  const lines = [
    `### Transforms (filter + reshape of a ${results.recordBytes}-byte record; messages/s)`,
    "",
    "| carriers | batch | values (callMany) | JSON texts (callManyJson) | host CPU per message (JSON) |",
    "|---|---|---|---|---|",
    ...results.throughput.map((row) => `| ${row.carriers} | ${rate(row.batchSize)} | ${rate(row.values)} | ${rate(row.json)} | ${row.hostCpuUsPerMessage} µs |`),
    "",
    `Baselines, same run: node:vm in the host (no isolation) ${rate(results.baselines.nodeVm)}/s on one core; quickjs-emscripten ${results.baselines.quickjs === undefined ? "n/a" : rate(results.baselines.quickjs)}/s; published interpreter ${rate(results.baselines.published)}/s per core.`,
    `Single call(): p50 ${results.call.p50.toFixed(0)} µs, p99 ${results.call.p99.toFixed(0)} µs${floorP50Us === undefined ? "" : ` (sync-pipe floor p50 ${floorP50Us.toFixed(0)} µs)`}.`,
    `CLI (paddock transform, 2 carriers, ${formatMegabytes(results.cliBytes)} of NDJSON): ${results.cli.steady} MB/s once started; ${results.cli.withStart} MB/s counting its ${results.cli.startMs} ms start.`,
  ];
  return lines;
}
