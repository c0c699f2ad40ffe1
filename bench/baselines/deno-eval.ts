/** Baseline: one `deno eval` process per eval, the simplest isolation there is. */
import type { Baseline, Engine } from "../engine.js";
import { DenoDir } from "./deno-process.js";

export const denoEval: Baseline = {
  id: "deno-eval",
  label: "`deno eval` per call",
  features: ["webcrypto"],
  pace: "slow",
  note:
    "a new `deno eval` process per eval (pinned binary, private DENO_DIR; note `deno eval` grants all permissions); " +
    "the code runs by indirect eval and the value comes back as JSON on stdout; timed from spawn to exit",
  async start(): Promise<Engine> {
    const dir = new DenoDir();
    return {
      eval: (code) => evalInProcess(dir, code),
      close: async () => dir.remove(),
    };
  },
};

function evalInProcess(dir: DenoDir, code: string): Promise<unknown> {
  // Indirect eval gives a script's completion value, as Paddock does; a promise is awaited.
  const program = `console.log(JSON.stringify(await (0, eval)(${JSON.stringify(code)})));`;
  const child = dir.spawn(["eval", "--quiet", "--no-config", "--no-lock", program]);
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
  child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  child.stdin.end();
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (status) => {
      if (status !== 0) reject(new Error(`deno eval exited with ${status}: ${stderr.trim()}`));
      else resolve(JSON.parse(stdout) as unknown);
    });
  });
}
