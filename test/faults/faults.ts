/**
 * Shared pieces of the fault suites: the scale switch, and engines that misbehave on purpose
 * (executables used in place of Deno through PADDOCK_DENO).
 *
 * Importing this module has no side effects (node --test runs every .js file under dist/test/).
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { denoBinary } from "../../src/host/deno-binary.js";

/** `npm run test:faults` runs the suites at the issue's full scale; `npm test` at a smaller one. */
export const FULL_SCALE = process.env.PADDOCK_FAULTS_FULL === "1";

/** A directory of engine scripts, removed by `remove()`. */
export class Engines {
  readonly dir = mkdtempSync(join(tmpdir(), "paddock-engines-"));
  private count = 0;

  /** A `/bin/sh` script; `$DENO` in it is the real engine. */
  script(body: string): string {
    const path = join(this.dir, `engine-${this.count++}.sh`);
    writeFileSync(path, `#!/bin/sh\nDENO=${shellQuote(denoBinary())}\n${body}\n`);
    chmodSync(path, 0o755);
    return path;
  }

  /** A file that is there but may not be executed. */
  notExecutable(): string {
    const path = join(this.dir, `engine-${this.count++}.txt`);
    writeFileSync(path, "not a program\n");
    chmodSync(path, 0o644);
    return path;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}
