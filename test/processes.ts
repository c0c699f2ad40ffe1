/**
 * What a test can see of processes from the outside, through /proc (Linux): this process's
 * children (its carriers), their memory, its own file descriptors.
 *
 * Importing this module has no side effects (node --test runs every .js file under dist/test/).
 */
import { readdirSync, readFileSync } from "node:fs";

/** Pids of the live (not zombie) children of `parent`, default this process. Empty where /proc is absent. */
export function childPids(parent = process.pid): number[] {
  const pids: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return pids;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = processStat(Number(entry));
    if (stat && stat.ppid === parent && stat.state !== "Z") pids.push(Number(entry));
  }
  return pids;
}

/** A process's state letter and parent, or undefined when it no longer exists. */
export function processStat(pid: number): { state: string; ppid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    // pid (comm) state ppid …; comm may contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0] ?? "?", ppid: Number(fields[1]) };
  } catch {
    return undefined;
  }
}

/** True while `pid` exists and is not a zombie (a zombie has ended; only its exit status is left). */
export function isRunning(pid: number): boolean {
  const stat = processStat(pid);
  return stat !== undefined && stat.state !== "Z";
}

/** A process's command line, shortened, for messages. */
export function commandLine(pid: number): string {
  try {
    const line = readFileSync(`/proc/${pid}/cmdline`, "latin1").split("\0").join(" ").trim();
    return line.length > 120 ? `${line.slice(0, 120)}…` : line;
  } catch {
    return "(gone)";
  }
}

/** Resident set size of `pid` in MB, or 0 when it is gone. */
export function rssMb(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "latin1"));
    return match ? Number(match[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Total RSS (MB) of this process's children. */
export function childrenRssMb(): number {
  return childPids().reduce((total, pid) => total + rssMb(pid), 0);
}

/** Open file descriptors of this process. */
export function openFdCount(): number {
  return readdirSync("/proc/self/fd").length;
}

/**
 * Open file descriptors once they have come down to `atMost`, or after `withinMs`: a killed
 * child's pipes close a little after its exit is reported.
 */
export async function settledFdCount(atMost: number, withinMs = 10_000): Promise<number> {
  await eventually(() => openFdCount() <= atMost, withinMs);
  return openFdCount();
}

/** Waits until `done()` holds, checking every `everyMs`, for at most `withinMs`; returns whether it held. */
export async function eventually(done: () => boolean, withinMs: number, everyMs = 25): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (!done()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  return true;
}
