/**
 * Baseline: one long-lived, zero-permission Deno process that runs each eval in a fresh Worker
 * (a new isolate), the usual "sandbox in Deno" answer. Requests and results travel as JSON lines
 * over stdin/stdout, so it is timed end to end from Node exactly like Paddock.
 */
import { createInterface } from "node:readline";
import type { Baseline, Engine } from "../engine.js";
import { vmRssBytes } from "../proc.js";
import { DenoDir, dataUrl } from "./deno-process.js";

/** Runs inside each Worker: one eval, one reply. */
const WORKER_SOURCE = `
self.onmessage = async (event) => {
  try {
    self.postMessage({ ok: true, value: await (0, eval)(event.data) });
  } catch (error) {
    self.postMessage({ ok: false, error: String(error) });
  }
};`;

/** The Deno process: a Worker per request line, terminated as soon as it has answered. */
const DRIVER_SOURCE = `
const workerUrl = ${JSON.stringify(dataUrl(WORKER_SOURCE))};
const out = Deno.stdout.writable.getWriter();
const encoder = new TextEncoder();
const reply = (message) => out.write(encoder.encode(JSON.stringify(message) + "\\n"));
function run({ id, code }) {
  const worker = new Worker(workerUrl, { type: "module" });
  worker.onmessage = (event) => { worker.terminate(); reply({ id, ...event.data }); };
  worker.onerror = (event) => { event.preventDefault(); worker.terminate(); reply({ id, ok: false, error: event.message }); };
  worker.postMessage(code);
}
let pending = "";
for await (const text of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  pending += text;
  for (let end; (end = pending.indexOf("\\n")) >= 0; pending = pending.slice(end + 1)) run(JSON.parse(pending.slice(0, end)));
}
await out.close();
`;

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

export const denoWorker: Baseline = {
  id: "deno-worker",
  label: "Deno Worker per eval",
  features: ["webcrypto"],
  pace: "medium",
  note:
    "one long-lived zero-permission Deno process (pinned binary) gets each eval as a JSON line on stdin, runs it " +
    "in a new Worker (fresh isolate, terminated after its answer) and writes the JSON result to stdout; timed from Node",
  async start(): Promise<Engine> {
    const dir = new DenoDir();
    const child = dir.spawn(["run", "--quiet", "--no-prompt", "--no-remote", "--no-npm", "--no-config", "--no-lock", dataUrl(DRIVER_SOURCE)]);
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const waiting = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const message = JSON.parse(line) as Reply;
      const entry = waiting.get(message.id);
      waiting.delete(message.id);
      if (message.ok) entry?.resolve(message.value);
      else entry?.reject(new Error(`Deno Worker: ${message.error}`));
    });
    void exited.then(() => {
      for (const entry of waiting.values()) entry.reject(new Error(`the Deno Worker driver exited: ${stderr.trim()}`));
      waiting.clear();
    });
    let nextId = 1;
    return {
      eval(code) {
        const id = nextId++;
        return new Promise((resolve, reject) => {
          waiting.set(id, { resolve, reject });
          child.stdin.write(JSON.stringify({ id, code }) + "\n");
        });
      },
      idleRssBytes: () => (child.pid === undefined ? undefined : vmRssBytes(child.pid)),
      async close() {
        child.stdin.end();
        await exited;
        dir.remove();
      },
    };
  },
};
