/**
 * Memory outside the V8 heap (ArrayBuffers, Wasm memory) is not bounded by heap flags, so the host
 * samples the resident size of busy carriers and kills one that passes its limit. One shared timer
 * serves every watched carrier; it runs only while some carrier is busy.
 */
import { readFileSync } from "node:fs";

const SAMPLE_EVERY_MS = 5;

interface Watch {
  pid: number;
  limitBytes: number;
  onBreach: (rssBytes: number) => void;
  /** How often to sample this carrier now, in ms (at least SAMPLE_EVERY_MS). */
  everyMs: () => number;
  sampledAt: number;
}

const watches = new Set<Watch>();
let timer: ReturnType<typeof setInterval> | undefined;

function sample(): void {
  const now = performance.now();
  for (const watch of watches) {
    if (now - watch.sampledAt < watch.everyMs() - 1) continue;
    watch.sampledAt = now;
    const rss = readRssBytes(watch.pid);
    if (rss !== undefined && rss > watch.limitBytes) {
      watches.delete(watch);
      watch.onBreach(rss);
    }
  }
  if (watches.size === 0 && timer) {
    clearInterval(timer);
    timer = undefined;
  }
}

/**
 * Starts watching `pid`, every SAMPLE_EVERY_MS or as often as `everyMs` says (an idle app's
 * carrier is sampled less often); returns the function that stops.
 */
export function watchMemory(pid: number, limitBytes: number, onBreach: (rssBytes: number) => void, everyMs: () => number = () => SAMPLE_EVERY_MS): () => void {
  const watch: Watch = { pid, limitBytes, onBreach, everyMs, sampledAt: 0 };
  watches.add(watch);
  if (!timer) {
    timer = setInterval(sample, SAMPLE_EVERY_MS);
    timer.unref();
  }
  return () => watches.delete(watch);
}

export function readRssBytes(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const status = readFileSync(`/proc/${pid}/status`, "latin1");
    const match = /VmRSS:\s+(\d+) kB/.exec(status);
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
