// Builds the host (tsc → dist/) and the carrier (one ESM bundle → dist/carrier.js, which the host
// hands to Deno as a data: URL so that no file path of the host ever appears inside a sandbox).
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
for (const project of ["tsconfig.json", "src/carrier/tsconfig.json"]) {
  execFileSync(process.execPath, [tsc, "-p", project], { cwd: root, stdio: "inherit" });
}
await build({
  entryPoints: [`${root}/src/carrier/main.ts`],
  outfile: `${root}/dist/carrier.js`,
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "esnext",
  external: ["node:*"],
  minify: true,
  legalComments: "none",
  logLevel: "warning",
  metafile: true,
}).then(({ metafile }) => {
  // The carrier travels as a data: URL on Deno's command line, where one argument may not exceed
  // 128 KiB; a bundle that grew past this pulled in something it should not have (zod, say).
  const bytes = metafile.outputs["dist/carrier.js"]?.bytes ?? Object.values(metafile.outputs)[0].bytes;
  if (bytes > 90 * 1024) throw new Error(`dist/carrier.js is ${bytes} bytes; the carrier must stay under 90 KiB (see scripts/build.mjs)`);
});
