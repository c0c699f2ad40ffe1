/**
 * Finds the Deno executable: `PADDOCK_DENO` if set, else the binary inside the exact-pinned npm
 * package's platform sub-package (resolved directly, so npm install scripts need not have run).
 */
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";

const PLATFORM_PACKAGES: Record<string, string> = {
  "linux-x64": "@deno/linux-x64-glibc",
  "linux-arm64": "@deno/linux-arm64-glibc",
  "darwin-x64": "@deno/darwin-x64",
  "darwin-arm64": "@deno/darwin-arm64",
  "win32-x64": "@deno/win32-x64",
  "win32-arm64": "@deno/win32-arm64",
};

let cached: string | undefined;

export function denoBinary(): string {
  const override = process.env.PADDOCK_DENO;
  if (override) return override;
  if (cached) return cached;
  const target = `${process.platform}-${process.arch}`;
  const platformPackage = PLATFORM_PACKAGES[target];
  if (!platformPackage) throw new Error(`paddock: no Deno build for ${target}; set PADDOCK_DENO to a Deno 2.9 binary`);
  const fromDeno = createRequire(createRequire(import.meta.url).resolve("deno/package.json"));
  let packageJson: string;
  try {
    packageJson = fromDeno.resolve(`${platformPackage}/package.json`);
  } catch {
    throw new Error(`paddock: the npm package ${platformPackage} is not installed (run npm install, or set PADDOCK_DENO)`);
  }
  const binary = join(dirname(packageJson), process.platform === "win32" ? "deno.exe" : "deno");
  if (!existsSync(binary)) throw new Error(`paddock: ${binary} is missing; reinstall the deno package or set PADDOCK_DENO`);
  cached = binary;
  return binary;
}
