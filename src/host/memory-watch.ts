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
}

const watches = new Set<Watch>();
let timer: ReturnType<typeof setInterval> | undefined;

function sample(): void {
  for (const watch of watches) {
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

/** Starts watching `pid`; returns the function that stops. */
export function watchMemory(pid: number, limitBytes: number, onBreach: (rssBytes: number) => void): () => void {
  const watch: Watch = { pid, limitBytes, onBreach };
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
