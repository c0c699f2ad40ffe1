/** Process facts read from /proc (Linux, which is where the carriers' memory watchdog runs too). */
import { readFileSync } from "node:fs";

/** Resident set size of `pid`, as the kernel reports it in /proc/<pid>/status. */
export function vmRssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/** CPU time counters, in clock ticks: the whole machine, and this process with its reaped children. */
export interface CpuSnapshot {
  machineBusy: number;
  machineTotal: number;
  self: number;
}

export function cpuSnapshot(): CpuSnapshot {
  // "cpu  user nice system idle iowait irq softirq steal ...": idle and iowait are the idle part.
  const fields = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = fields.reduce((sum, x) => sum + x, 0);
  const idle = fields[3]! + fields[4]!;
  // /proc/self/stat: fields 14-17 are utime, stime, cutime, cstime; the name (field 2) may hold spaces.
  const stat = readFileSync("/proc/self/stat", "utf8");
  const after = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
  const self = after.slice(11, 15).reduce((sum, x) => sum + x, 0);
  return { machineBusy: total - idle, machineTotal: total, self };
}

/**
 * How busy the machine was between two snapshots, and how much of that was not this benchmark
 * (children count once they have exited, which every carrier and Deno baseline has by the end).
 */
export function cpuShare(start: CpuSnapshot, end: CpuSnapshot): { busy: number; others: number } {
  const total = end.machineTotal - start.machineTotal;
  const busy = end.machineBusy - start.machineBusy;
  const mine = end.self - start.self;
  return { busy: busy / total, others: Math.max(0, busy - mine) / total };
}
