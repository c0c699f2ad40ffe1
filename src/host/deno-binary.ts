/**
 * Finds the Deno executable and says how to launch a carrier with it: `PADDOCK_DENO` if set, else
 * the binary inside the exact-pinned npm package's platform sub-package (resolved directly, so npm
 * install scripts need not have run).
 */
import { createRequire } from "node:module";
import { accessSync, constants, existsSync } from "node:fs";
import { devNull } from "node:os";
import { dirname, join, parse } from "node:path";

const PLATFORM_PACKAGES: Record<string, string> = {
  "linux-x64": "@deno/linux-x64-glibc",
  "linux-arm64": "@deno/linux-arm64-glibc",
  "darwin-x64": "@deno/darwin-x64",
  "darwin-arm64": "@deno/darwin-arm64",
  "win32-x64": "@deno/win32-x64",
  "win32-arm64": "@deno/win32-arm64",
};

/** Where the engine comes from, for error messages that tell the operator what to fix. */
export function engineSource(): string {
  return process.env.PADDOCK_DENO ? "the engine named by PADDOCK_DENO" : "the engine from the deno npm package";
}

/** What an errno from checking or executing the engine binary means, if it is about the binary. */
export function engineProblem(code: string | undefined): string | undefined {
  if (code === "ENOENT" || code === "ENOTDIR") return `${engineSource()} does not exist (set PADDOCK_DENO to a Deno 2.9 binary, or reinstall the deno package)`;
  if (code === "EACCES") return `${engineSource()} is not executable`;
  return undefined;
}

let cached: string | undefined;

export function denoBinary(): string {
  const override = process.env.PADDOCK_DENO;
  if (override) return override;
  if (cached) return cached;
  const target = `${process.platform}-${process.arch}`;
  const platformPackage = PLATFORM_PACKAGES[target];
  if (!platformPackage) throw new Error(`no Deno build for ${target}; set PADDOCK_DENO to a Deno 2.9 binary`);
  const fromDeno = createRequire(createRequire(import.meta.url).resolve("deno/package.json"));
  let packageJson: string;
  try {
    packageJson = fromDeno.resolve(`${platformPackage}/package.json`);
  } catch {
    throw new Error(`the npm package ${platformPackage} is not installed (run npm install, or set PADDOCK_DENO)`);
  }
  const binary = join(dirname(packageJson), process.platform === "win32" ? "deno.exe" : "deno");
  if (!existsSync(binary)) throw new Error(`the deno package's binary is missing; reinstall the deno package or set PADDOCK_DENO`);
  cached = binary;
  return binary;
}

/**
 * Linux's setpriv makes the kernel SIGKILL a carrier when the host dies, however it dies (SIGKILL,
 * a crash): a carrier busy in a loop never reads the end of its stdin, so it would outlive the host.
 */
export const SETPRIV = process.platform === "linux" ? ["/usr/bin/setpriv", "/bin/setpriv"].find((path) => existsSync(path)) : undefined;

export interface EngineLaunch {
  file: string;
  args: string[];
  /** A directory that reveals nothing: the filesystem root. */
  cwd: string;
  /**
   * DENO_DIR: a path under the null device, which nothing can create. Deno then keeps its caches in
   * memory: a carrier writes nothing to disk, so no carrier can leave files behind or share any
   * with another, and a full or unwritable temp dir cannot stop one from starting.
   */
  denoDir: string;
}

/** How to start `deno <args>`; throws an Error that names the problem when the binary is unusable. */
export function engineLaunch(args: string[]): EngineLaunch {
  const binary = denoBinary();
  try {
    accessSync(binary, constants.X_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(engineProblem(code) ?? `${engineSource()} cannot be used (${code ?? "unknown error"})`);
  }
  const wrapped = SETPRIV ? { file: SETPRIV, args: ["--pdeathsig", "KILL", "--", binary, ...args] } : { file: binary, args };
  return { ...wrapped, cwd: parse(process.execPath).root, denoDir: join(devNull, "paddock") };
}
