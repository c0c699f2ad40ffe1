/**
 * Imports: what an eval importing a package costs once it is cached in the carrier (the package is
 * evaluated again in every fresh realm), the first import in a new process with the package on
 * disk, the first import from a registry, and a carrier's memory with ten packages loaded. The
 * registry is a real one on loopback serving real packages from this project's node_modules
 * (devDependencies: an installed paddock shows those rows as n/a).
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Sandbox } from "../src/index.js";
import { TestRegistry } from "./npm-registry.js";
import { measureIdleRss, sampleSequentially } from "./measure.js";
import { elapsedUs, summarize, type Summary } from "./stats.js";
import { createPaddock } from "./paddock.js";

export interface ModulesPlan {
  samples: number;
  warmup: number;
  pauseMs: number;
  /** Processes started (or fresh caches) per first-import figure. */
  starts: number;
}

export interface ModulesResults {
  rows: Array<{ id: string; title: string; figures: Summary | undefined; note?: string }>;
  /** RSS of a persistent sandbox's carrier with ten packages imported. */
  rssTenPackages: number | undefined;
}

const INSTALLED = fileURLToPath(new URL("../../node_modules/", import.meta.url));
const REAL = ["lodash-es", "zod", "date-fns", "semver", "acorn", "ipaddr.js"] as const;

/** Each package's import and a use of it. */
const WARM: Array<{ id: string; title: string; code: string; needs?: string }> = [
  { id: "noop", title: "reference: noop `0` on the same sandbox", code: "0" },
  { id: "tiny", title: "a small package (one function)", code: `import { add } from "tiny"; add(1, 2)` },
  { id: "lodash-es", title: "lodash-es (the whole package is evaluated)", code: `import { chunk } from "lodash-es"; chunk([1, 2, 3], 2).length`, needs: "lodash-es" },
  { id: "zod", title: "zod", code: `import { z } from "zod"; z.string().parse("x")`, needs: "zod" },
  { id: "date-fns", title: "date-fns", code: `import { addDays } from "date-fns"; addDays(new Date(0), 1).getTime()`, needs: "date-fns" },
];

export async function benchModules(plan: ModulesPlan): Promise<ModulesResults> {
  const registry = await TestRegistry.start();
  const cacheDir = mkdtempSync(join(tmpdir(), "paddock-bench-modules-"));
  const installed = REAL.filter((name) => existsSync(join(INSTALLED, name, "package.json")));
  registry.publish({ name: "tiny", version: "1.0.0", manifest: { type: "module" }, files: { "index.js": "export const add = (a, b) => a + b;" } });
  for (const name of installed) registry.publishInstalled(name);
  const modules = { allow: ["npm:*"], registry: registry.url, cacheDir };
  const rows: ModulesResults["rows"] = [];
  try {
    const sandbox = await Sandbox.create({ modules });
    try {
      for (const scenario of WARM) {
        if (scenario.needs && !installed.includes(scenario.needs as (typeof REAL)[number])) {
          rows.push({ id: `warm-${scenario.id}`, title: `warm import per eval: ${scenario.title}`, figures: undefined, note: "not installed" });
          continue;
        }
        const figures = await sampleSequentially(plan, async () => {
          const started = performance.now();
          const result = await sandbox.run(scenario.code);
          if (!result.ok) throw result.error;
          return elapsedUs(started);
        });
        rows.push({ id: `warm-${scenario.id}`, title: `warm import per eval: ${scenario.title}`, figures });
      }
    } finally {
      await sandbox.close();
    }
    // Another process of the host: its own store, the same disk cache (the registry still up).
    rows.push({ id: "first-disk", title: "first import in a new process, package prepared on disk: a small package", figures: await firstInNewProcess(plan, registry.url, cacheDir, "tiny") });
    if (installed.includes("lodash-es")) rows.push({ id: "first-disk-lodash", title: "the same for lodash-es (a cold carrier compiles and runs 290 KB)", figures: await firstInNewProcess(plan, registry.url, cacheDir, "lodash-es") });
    rows.push({ id: "first-registry-tiny", title: "first import from the loopback registry: a small package (download, unpack, bundle)", figures: await firstFromRegistry(plan, registry.url, "tiny") });
    if (installed.includes("lodash-es")) rows.push({ id: "first-registry-lodash", title: "first import from the loopback registry: lodash-es (640 files)", figures: await firstFromRegistry(plan, registry.url, "lodash-es") });
    return { rows, rssTenPackages: await rssWithTenPackages(registry, modules, installed) };
  } finally {
    await registry.close();
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

/** Times the first importing eval in a new Node process (its sandbox created first, untimed). */
async function firstInNewProcess(plan: ModulesPlan, registryUrl: string, cacheDir: string, name: string): Promise<Summary> {
  const entry = fileURLToPath(new URL("../src/index.js", import.meta.url));
  const script = `
    const { Sandbox } = await import(${JSON.stringify(entry)});
    const sandbox = await Sandbox.create({ modules: { allow: ["npm:*"], registry: ${JSON.stringify(registryUrl)}, cacheDir: ${JSON.stringify(cacheDir)} } });
    const started = performance.now();
    const result = await sandbox.run(${JSON.stringify(`import * as m from "${name}"; Object.keys(m).length`)});
    const us = (performance.now() - started) * 1000;
    await sandbox.close();
    if (!result.ok) throw result.error;
    console.log(us);`;
  const samples: number[] = [];
  for (let i = 0; i < plan.starts; i++) {
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ["--input-type=module", "-e", script], { timeout: 120_000 }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
    });
    samples.push(Number(out.trim()));
  }
  return summarize(samples);
}

/** Times the first importing eval with an empty cache (a new directory each time). */
async function firstFromRegistry(plan: ModulesPlan, registryUrl: string, name: string): Promise<Summary> {
  const samples: number[] = [];
  for (let i = 0; i < plan.starts; i++) {
    const cacheDir = mkdtempSync(join(tmpdir(), "paddock-bench-first-"));
    const sandbox = await Sandbox.create({ modules: { allow: ["npm:*"], registry: registryUrl, cacheDir } });
    try {
      const started = performance.now();
      const result = await sandbox.run(`import * as m from "${name}"; Object.keys(m).length`);
      if (!result.ok) throw result.error;
      samples.push(elapsedUs(started));
    } finally {
      await sandbox.close();
      rmSync(cacheDir, { recursive: true, force: true });
    }
  }
  return summarize(samples);
}

/** A persistent sandbox (its realm and modules stay) imports ten packages; its carrier's RSS, idle. */
async function rssWithTenPackages(registry: TestRegistry, modules: { allow: string[]; registry: string; cacheDir: string }, installed: readonly string[]): Promise<number | undefined> {
  const names = [...installed];
  for (let i = names.length; i < 10; i++) {
    registry.publish({ name: `filler-${i}`, version: "1.0.0", files: { "index.js": `module.exports = Array.from({ length: 1000 }, (_, i) => ${i} * i);` } });
    names.push(`filler-${i}`);
  }
  const engine = await createPaddock({ modules, persistent: true });
  try {
    const result = await engine.sandbox.run(names.map((name, i) => `import * as m${i} from "${name}";`).join("\n") + `\n[${names.map((_, i) => `m${i}`).join(", ")}].length`);
    if (!result.ok) throw result.error;
    return await measureIdleRss(engine);
  } finally {
    await engine.close();
  }
}
