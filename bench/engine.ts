/** What the generic measurements need from Paddock and from each baseline. */
import type { Feature } from "./scenarios.js";

export interface Engine {
  /** Evaluates `code` in a fresh realm (context, isolate or process) and resolves to its completion value. */
  eval(code: string): Promise<unknown>;
  /** Resident memory of the engine's own process while idle; absent for in-process engines. */
  idleRssBytes?(): number | undefined;
  /** Releases every process, sandbox and runtime the engine holds. */
  close(): Promise<void>;
}

/** fast: well under a millisecond per eval; medium: ~10–20 ms (a new isolate); slow: ~30–60 ms (a new process). */
export type Pace = "fast" | "medium" | "slow";

/** A baseline: how it runs, and how to start it (after Paddock's measurements are done). */
export interface Baseline {
  /** Column key in the results. */
  readonly id: string;
  /** Column header. */
  readonly label: string;
  readonly features: readonly Feature[];
  /** Cost class: slower engines run fewer samples so that the whole run stays within a few minutes. */
  readonly pace: Pace;
  /** How the baseline was run, printed under the table. */
  readonly note: string;
  start(): Promise<Engine>;
}
