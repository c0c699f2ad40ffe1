/**
 * Apps: a hello-world app through the host's listener against the same handler under Deno.serve
 * directly, and against a bare Node HTTP server (the ceiling of any Node host), all loaded by the
 * same loopback load generator (autocannon, pinned) in the same run; single-request latency over
 * one keep-alive connection; the start of an app from the warm pool and cold; an idle app's RSS.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { App, Sandbox, configurePool } from "../src/index.js";
import { denoBinary } from "../src/host/deno-binary.js";
import { vmRssBytes } from "./proc.js";
import { carrierPids, drainPool } from "./paddock.js";
import { elapsedUs, summarize, type Summary } from "./stats.js";

export interface AppPlan {
  /** Seconds of load per throughput figure (after a warm-up of a third of it). */
  seconds: number;
  connections: number;
  /** Sequential requests timed for latency. */
  requests: number;
  /** App starts timed, warm and cold. */
  starts: number;
}

interface Load {
  requestsPerSecond: number;
  /** Under load, in ms (autocannon's resolution). */
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

export interface AppResults {
  connections: number;
  seconds: number;
  paddock: Load;
  denoServe: Load;
  nodeHttp: Load;
  /** One request at a time over one keep-alive connection, in µs. */
  latency: { paddock: Summary; denoServe: Summary };
  start: { warm: Summary; cold: Summary };
  idleRssBytes: number;
  /** Host CPU per request under load, in µs. */
  hostCpuUsPerRequest: number;
}

const HANDLER_OBJECT = `{ fetch: () => new Response("Hello, world!") }`;
const HANDLER = `export default ${HANDLER_OBJECT};`;
const require = createRequire(import.meta.url);

export async function benchApps(plan: AppPlan, progress: (line: string) => void): Promise<AppResults | undefined> {
  let autocannon: string;
  try {
    autocannon = require.resolve("autocannon/autocannon.js");
  } catch {
    progress("apps: autocannon is not installed (a devDependency): the app rows are skipped");
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), "paddock-bench-apps-"));
  try {
    const app = await App.create({ sources: { "main.js": HANDLER } });
    const listener = await app.listen({ port: 0 });
    let paddock: Load;
    let hostCpuUsPerRequest: number;
    let paddockLatency: Summary;
    try {
      await load(autocannon, listener.url, plan, plan.seconds / 3);
      const cpu = process.cpuUsage();
      paddock = await load(autocannon, listener.url, plan, plan.seconds);
      const used = process.cpuUsage(cpu);
      hostCpuUsPerRequest = Math.round((used.user + used.system) / Math.max(1, paddock.requestsPerSecond * plan.seconds));
      progress(`apps: paddock ${Math.round(paddock.requestsPerSecond)} req/s`);
      paddockLatency = await latency(listener.url, plan.requests);
    } finally {
      await listener.close();
      await app.close(0);
    }
    const deno = await startServer(denoServe(dir));
    let denoServeLoad: Load;
    let denoLatency: Summary;
    try {
      await load(autocannon, deno.url, plan, plan.seconds / 3);
      denoServeLoad = await load(autocannon, deno.url, plan, plan.seconds);
      progress(`apps: Deno.serve ${Math.round(denoServeLoad.requestsPerSecond)} req/s`);
      denoLatency = await latency(deno.url, plan.requests);
    } finally {
      deno.child.kill("SIGKILL");
    }
    const node = await startServer(nodeHttp(dir));
    let nodeLoad: Load;
    try {
      await load(autocannon, node.url, plan, plan.seconds / 3);
      nodeLoad = await load(autocannon, node.url, plan, plan.seconds);
    } finally {
      node.child.kill("SIGKILL");
    }
    const start = { warm: await timeStarts("warm", plan.starts), cold: await timeStarts("cold", plan.starts) };
    return {
      connections: plan.connections,
      seconds: plan.seconds,
      paddock,
      denoServe: denoServeLoad,
      nodeHttp: nodeLoad,
      latency: { paddock: paddockLatency, denoServe: denoLatency },
      start,
      idleRssBytes: await idleRss(),
      hostCpuUsPerRequest,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function renderApps(results: AppResults): string[] {
  const rate = (load: Load) => Math.round(load.requestsPerSecond).toLocaleString("en-US");
  const row = (name: string, load: Load) => `| ${name} | ${rate(load)} | ${load.p50Ms} | ${load.p99Ms} | ${load.errors} |`;
  const { paddock, denoServe } = results.latency;
  return [
    `### Apps (hello world; autocannon, ${results.connections} connections, ${results.seconds} s, loopback)`,
    "",
    "| server | requests/s | p50 ms | p99 ms | errors |",
    "|---|---|---|---|---|",
    row("Paddock app, host listener", results.paddock),
    row("same handler, Deno.serve", results.denoServe),
    row("bare Node http server (the ceiling of a Node host)", results.nodeHttp),
    "",
    `Paddock: ${Math.round((results.paddock.requestsPerSecond / results.denoServe.requestsPerSecond) * 100)}% of Deno.serve's requests/s; host CPU ${results.hostCpuUsPerRequest} µs per request.`,
    `One request at a time (keep-alive): Paddock p50 ${paddock.p50.toFixed(0)} µs / p99 ${paddock.p99.toFixed(0)} µs, Deno.serve p50 ${denoServe.p50.toFixed(0)} µs / p99 ${denoServe.p99.toFixed(0)} µs: ${(paddock.p50 - denoServe.p50).toFixed(0)} µs added at p50.`,
    `App start to its first response: from the warm pool p50 ${(results.start.warm.p50 / 1000).toFixed(1)} ms (p99 ${(results.start.warm.p99 / 1000).toFixed(1)}); cold p50 ${(results.start.cold.p50 / 1000).toFixed(1)} ms. Idle app carrier RSS: ${(results.idleRssBytes / 1048576).toFixed(0)} MB.`,
  ];
}

/** Runs autocannon in a process of its own (so it does not share the host's event loop). */
function load(autocannon: string, url: string, plan: AppPlan, seconds: number): Promise<Load> {
  return new Promise((resolve, reject) => {
    const args = [autocannon, "--json", "-c", String(plan.connections), "-d", String(Math.max(1, Math.round(seconds))), `${url}/`];
    execFile(process.execPath, args, { maxBuffer: 64 * 1024 * 1024 }, (error, stdout) => {
      if (error) return reject(error);
      const result = JSON.parse(stdout) as { requests: { average: number }; latency: { p50: number; p99: number }; errors: number; non2xx: number };
      resolve({ requestsPerSecond: result.requests.average, p50Ms: result.latency.p50, p99Ms: result.latency.p99, errors: result.errors + result.non2xx });
    });
  });
}

/** Sequential GETs over one keep-alive connection, timed in a process of its own. */
function latency(url: string, requests: number): Promise<Summary> {
  const client = fileURLToPath(new URL("./http-latency.js", import.meta.url));
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [client, url, String(requests)], { maxBuffer: 64 * 1024 * 1024 }, (error, stdout) => {
      if (error) return reject(error);
      resolve(summarize(JSON.parse(stdout) as number[]));
    });
  });
}

function denoServe(dir: string): { command: string; args: string[] } {
  const file = join(dir, "serve.js");
  writeFileSync(file, `const handler = (${HANDLER_OBJECT}).fetch;\nDeno.serve({ port: 0, hostname: "127.0.0.1", onListen: ({ port }) => console.log(port) }, (request) => handler(request));\n`);
  return { command: denoBinary(), args: ["run", "--quiet", "--allow-net=127.0.0.1", file] };
}

function nodeHttp(dir: string): { command: string; args: string[] } {
  const file = join(dir, "node-http.mjs");
  writeFileSync(file, `import { createServer } from "node:http";\nconst server = createServer((request, response) => { response.writeHead(200, { "content-type": "text/plain;charset=UTF-8" }); response.end("Hello, world!"); });\nserver.listen(0, "127.0.0.1", () => console.log(server.address().port));\n`);
  return { command: process.execPath, args: [file] };
}

async function startServer({ command, args }: { command: string; args: string[] }): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<string>((resolve, reject) => {
    let text = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes("\n")) resolve(text.trim().split("\n")[0]!);
    });
    child.once("exit", (code) => reject(new Error(`${command} exited (${code}) before it listened`)));
  });
  return { url: `http://127.0.0.1:${port}`, child };
}

/** From App.create to the first response, with the pool warm (Sandbox.warm first, untimed) or off. */
async function timeStarts(kind: "warm" | "cold", samples: number): Promise<Summary> {
  const times: number[] = [];
  configurePool({ size: kind === "warm" ? 2 : 0 });
  try {
    for (let i = 0; i < samples; i++) {
      if (kind === "warm") {
        await Sandbox.warm();
        await sleep(30);
      }
      const started = performance.now();
      const app = await App.create({ sources: { "main.js": HANDLER } });
      await (await app.fetch("http://app/")).text();
      times.push(elapsedUs(started));
      await app.close(0);
    }
  } finally {
    drainPool();
  }
  return summarize(times);
}

async function idleRss(): Promise<number> {
  const app = await App.create({ sources: { "main.js": HANDLER } });
  try {
    await (await app.fetch("http://app/")).text();
    await sleep(200);
    const sandbox = (app as unknown as { sandbox: Sandbox }).sandbox;
    return carrierPids(sandbox).reduce((sum, pid) => sum + vmRssBytes(pid), 0);
  } finally {
    await app.close(0);
  }
}
