// Runs the test suite on a busy machine: one CPU hog per core for the whole run, so that every limit
// test meets the load a shared CI machine or a developer's laptop puts on it. The hogs are killed
// however the run ends (success, failure, an exception here, SIGINT or SIGTERM), and this script
// exits with the test command's exit code.
//
//   npm run test:busy                  # the README's test command, `npm test`
//   npm run test:busy -- <command…>    # another command under the same load
import { spawn } from "node:child_process";
import { availableParallelism, constants } from "node:os";

const cores = availableParallelism();
const command = process.argv.length > 2 ? process.argv.slice(2) : ["npm", "test"];

const HOG = "const parent = process.ppid; for (;;) { for (let i = 0; i < 1e8; i++); if (process.ppid !== parent) process.exit(0); }";

/** @type {import("node:child_process").ChildProcess[]} */
const hogs = [];
for (let i = 0; i < cores; i++) {
  // A busy loop that also ends itself if this script dies without cleaning up (SIGKILL): it checks,
  // every few hundred milliseconds, whether it has been handed to another parent.
  const hog = spawn(process.execPath, ["-e", HOG], { stdio: "ignore" });
  hog.on("error", (error) => console.error(`test:busy: CPU hog ${i} failed: ${error.message}`));
  hogs.push(hog);
}

let hogsKilled = false;
function killHogs() {
  if (hogsKilled) return;
  hogsKilled = true;
  for (const hog of hogs) {
    if (hog.exitCode === null && hog.signalCode === null) {
      try {
        hog.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}
// Whatever happens to this process, the hogs must not outlive it.
process.on("exit", killHogs);

/** @type {import("node:child_process").ChildProcess | undefined} */
let run;
for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM", "SIGHUP"])) {
  process.on(signal, () => {
    killHogs();
    // npm test runs in this terminal's process group and gets SIGINT from it too; a SIGTERM sent to
    // this script alone must reach the test run.
    if (run && run.exitCode === null && run.signalCode === null) run.kill(signal);
    process.exitCode = 128 + constants.signals[signal];
    // Leave when the test run has ended (its "exit" handler below), or soon in any case.
    setTimeout(() => process.exit(), 5_000).unref();
  });
}

console.error(`test:busy: ${hogs.length} CPU hog(s) on ${cores} core(s); running: ${command.join(" ")}`);
const started = performance.now();
try {
  run = spawn(command[0], command.slice(1), { stdio: "inherit" });
  const code = await new Promise((resolve, reject) => {
    run.on("error", reject);
    run.on("exit", (exitCode, signal) => resolve(exitCode ?? 128 + (constants.signals[signal] ?? 0)));
  });
  if (process.exitCode === undefined) process.exitCode = code;
  console.error(`test:busy: ${command.join(" ")} exited with ${code} after ${Math.round((performance.now() - started) / 1000)} s under load`);
} catch (error) {
  console.error(`test:busy: could not run ${command.join(" ")}: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
} finally {
  killHogs();
}

