/**
 * The cost of mediation: a sandboxed fetch to a loopback server against the same request made by
 * the host itself, with the same HTTP client (undici, keep-alive), in the same run. The sandboxed
 * figure is timed inside the sandbox, around `fetch` and reading the body, so it holds exactly
 * what mediation adds: the carrier⇄host round trip, the policy, and the Response in the realm.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Agent } from "undici";
import { Sandbox } from "../src/index.js";
import { elapsedUs, summarize, type Summary } from "./stats.js";
import { ASYNC_NOOP_TITLE, sampleAsyncNoop, sampleSequentially } from "./measure.js";

export interface MediationPlan {
  samples: number;
  warmup: number;
  /** Untimed idle pause between samples, the same for every row (agent pace). */
  pauseMs: number;
}

export interface MediationResults {
  bodyBytes: number;
  rows: Array<{ id: string; title: string; figures: Summary }>;
  /** p50 of the sandboxed fetch minus p50 of the host's own request. */
  addedP50Us: number;
}

const BODY = JSON.stringify({ id: 42, name: "paddock", tags: ["sandbox", "fetch"], items: Array.from({ length: 8 }, (_, i) => ({ i, ok: i % 2 === 0 })) });

export async function benchMediation(plan: MediationPlan): Promise<MediationResults> {
  const server = createServer((_request, response) => {
    response.setHeader("content-type", "application/json");
    response.end(BODY);
  });
  await listen(server);
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  const agent = new Agent();
  const sandbox = await Sandbox.create({ net: { allow: [`127.0.0.1:${port}`], allowPrivate: ["127.0.0.1"], maxRequests: 10 } });
  try {
    const direct = await sampleSequentially(plan, async () => {
      const started = performance.now();
      const response = await agent.request({ origin, path: "/data", method: "GET" });
      const text = await response.body.text();
      check(text);
      return elapsedUs(started);
    });
    const inside = `const started = performance.now(); const response = await fetch("${origin}/data"); const text = await response.text(); [performance.now() - started, text]`;
    const wall: number[] = [];
    const sandboxed = await sampleSequentially(plan, async () => {
      const started = performance.now();
      const [ms, text] = await sandbox.eval<[number, string]>(inside);
      wall.push(elapsedUs(started));
      check(text);
      return ms * 1000;
    });
    const asyncNoop = await sampleAsyncNoop(sandbox, plan);
    const rows = [
      { id: "direct", title: "host's own request (undici, keep-alive), response read", figures: direct },
      { id: "sandboxed", title: "sandboxed `fetch` + `text()`, timed inside the sandbox", figures: sandboxed },
      { id: "eval", title: "the whole eval doing that fetch, as the host caller sees it", figures: summarize(wall.slice(plan.warmup)) },
      { id: "async-noop", title: ASYNC_NOOP_TITLE, figures: asyncNoop },
    ];
    return { bodyBytes: Buffer.byteLength(BODY), rows, addedP50Us: Math.round((sandboxed.p50 - direct.p50) * 10) / 10 };
  } finally {
    await sandbox.close();
    await agent.close();
    server.close();
  }
}

function check(text: string): void {
  if (text !== BODY) throw new Error(`the response body came back wrong (${text.length} characters)`);
}

function listen(server: Server): Promise<void> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
}
