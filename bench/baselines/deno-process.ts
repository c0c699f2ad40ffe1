/** What the two Deno baselines share: the pinned binary, started like Paddock starts its carriers. */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { denoBinary } from "../../src/host/deno-binary.js";

/** A Deno cache directory of its own, so the baselines neither read nor leave a user's cache. */
export class DenoDir {
  readonly path = mkdtempSync(join(tmpdir(), "paddock-bench-"));

  spawn(args: readonly string[]): ChildProcessWithoutNullStreams {
    const child = spawn(denoBinary(), args, {
      cwd: this.path,
      env: { DENO_DIR: this.path, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", DENO_NO_PACKAGE_JSON: "1" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    // Writing to a process that has died fails with EPIPE; its exit is what the callers report.
    child.stdin.on("error", () => {});
    return child;
  }

  remove(): void {
    rmSync(this.path, { recursive: true, force: true });
  }
}

/** A module as a data: URL, so no file is written and no host path reaches Deno. */
export function dataUrl(source: string): string {
  return "data:text/javascript;base64," + Buffer.from(source).toString("base64");
}
