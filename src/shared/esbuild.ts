/**
 * esbuild, for every part of the host that bundles (module preparation, apps' sources). It serves
 * builds from one child process per host process; builds come in bursts (prepared units are cached,
 * an app's sources are joined once per start), so the process is stopped after each burst rather
 * than left running. One count for all its users: stopping it while another build runs would
 * leave that build's promise unsettled for ever.
 */
import type * as Esbuild from "esbuild";
import { lazyModule } from "./lazy.js";

const esbuild = lazyModule<typeof Esbuild>("esbuild");
let building = 0;

/** Runs `work` with esbuild; its process stops once no work of any caller is left. */
export async function withEsbuild<T>(work: (esbuild: typeof Esbuild) => Promise<T>): Promise<T> {
  building++;
  try {
    return await work(esbuild());
  } finally {
    if (--building === 0) void esbuild().stop();
  }
}
