/**
 * What a user waits for before Paddock does anything: importing the package, and a one-shot
 * `paddock eval` from the shell (Node start, import, a carrier start, one eval, exit).
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { elapsedUs, summarize, type Summary } from "./stats.js";

const PACKAGE_ENTRY = fileURLToPath(new URL("../src/index.js", import.meta.url));
const CLI = fileURLToPath(new URL("../../bin/paddock.js", import.meta.url));

export interface Startup {
  /** `node -e 'await import("paddock")'`, spawn to exit. */
  importPackage: Summary;
  /** `paddock eval "1+1"`, spawn to exit (the pool is not used by a one-shot eval). */
  cliEval: Summary;
}

export async function measureStartup(samples: number): Promise<Startup> {
  const importPackage = await timeRuns(samples, ["--input-type=module", "-e", `await import(${JSON.stringify(PACKAGE_ENTRY)})`], "");
  const cliEval = await timeRuns(samples, [CLI, "eval", "1+1"], "2\n");
  return { importPackage, cliEval };
}

/** Runs `node args` samples times (after one untimed run) and checks what it printed. */
async function timeRuns(samples: number, args: readonly string[], expected: string): Promise<Summary> {
  const times: number[] = [];
  for (let i = 0; i <= samples; i++) {
    const start = performance.now();
    const output = await run(args);
    if (output !== expected) throw new Error(`node ${args.join(" ")} printed ${JSON.stringify(output.slice(0, 200))}`);
    if (i > 0) times.push(elapsedUs(start));
  }
  return summarize(times);
}

function run(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    let errors = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => (output += text));
    child.stderr.setEncoding("utf8").on("data", (text: string) => (errors += text));
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve(output) : reject(new Error(`node ${args.join(" ")} exited with ${code}: ${errors.slice(0, 300)}`))));
  });
}
