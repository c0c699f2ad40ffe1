/**
 * Turns one entry point of an unpacked package (the package itself, or a subpath such as
 * "lodash-es/chunk") into one unit of code the carrier can evaluate: esbuild bundles the entry
 * with the package's own files into a CommonJS-style function body. Imports of other packages
 * stay `require("name")` calls, which the carrier links to their own units, so a dependency is
 * prepared (and sent to a carrier) once however many packages use it.
 */
import { builtinModules } from "node:module";
import { extname, sep } from "node:path";
import { readFile } from "node:fs/promises";
import type * as Esbuild from "esbuild";
import { lazyModule } from "../../shared/lazy.js";
import { ModuleError } from "../../host/errors.js";

const esbuild = lazyModule<typeof Esbuild>("esbuild");

export interface BundledUnit {
  code: string;
  /** Source map of `code` (JSON), its sources relative to the package's directory. */
  map: string;
  /** Specifiers of other packages (and built-ins) the code requires, as written. */
  externals: string[];
}

const BUILTINS = new Set(builtinModules);
const SCRIPT_LOADERS: Record<string, Esbuild.Loader> = { ".js": "js", ".mjs": "js", ".cjs": "js", ".jsx": "jsx", ".ts": "ts", ".mts": "ts", ".cts": "ts", ".tsx": "tsx" };
let building = 0;

export function isBuiltin(specifier: string): boolean {
  return specifier.startsWith("node:") || BUILTINS.has(specifier) || BUILTINS.has(specifier.split("/")[0]!);
}

/** "name" of "name/sub" or "@scope/name/sub"; undefined for relative and absolute paths. */
export function packageNameOf(specifier: string): string | undefined {
  if (specifier.startsWith(".") || specifier.startsWith("/") || specifier === "") return undefined;
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? (parts.length >= 2 ? `${parts[0]}/${parts[1]}` : undefined) : parts[0];
}

/**
 * Bundles `name + subpath` found under `root` (which holds node_modules/<name>). Nothing outside
 * the package is read: other packages and built-ins are left external (the resolver decides what
 * each is), absolute paths and relative paths that climb out of the package are errors.
 */
export async function bundleEntry(root: string, packageDir: string, name: string, subpath: string, what: string): Promise<BundledUnit> {
  const target = JSON.stringify(name + subpath);
  building++;
  try {
    // An ES module entry is bundled as ES modules re-exported (esbuild hoists them into one scope,
    // which evaluates ~2× faster than module-by-module); a CommonJS entry is required, so that
    // require() from other packages gets its module.exports as it is.
    let bundle = await tryBundle(`export * from ${target};\nexport { default } from ${target};\n`);
    if (!bundle.ok && bundle.failure.text.startsWith("No matching export")) bundle = await tryBundle(`export * from ${target};\n`);
    if (bundle.ok && bundle.entryFormat !== "esm") bundle = await tryBundle(`module.exports = require(${target});\n`);
    if (!bundle.ok) {
      const { text, location } = bundle.failure;
      const where = location ? ` (${location.file.replace(/^node_modules\//, "")}:${location.line})` : "";
      throw new ModuleError(`${what} could not be prepared: ${text}${where}`, "unsupported");
    }
    return bundle.unit;
  } finally {
    // esbuild serves builds from a child process; prepared units are cached on disk, so builds
    // come in bursts: the process is stopped after each burst rather than left running.
    if (--building === 0) void esbuild().stop();
  }

  type Attempt = { ok: true; unit: BundledUnit; entryFormat: string | undefined } | { ok: false; failure: { text: string; location?: { file: string; line: number } | null } };

  async function tryBundle(stub: string): Promise<Attempt> {
    const externals = new Set<string>();
    let result: Esbuild.BuildResult<{ write: false; metafile: true }>;
    try {
      result = await esbuild().build({
        stdin: { contents: stub, resolveDir: root, sourcefile: "paddock-entry.js", loader: "js" },
        bundle: true,
        write: false,
        metafile: true,
        outfile: "unit.js",
        sourcemap: "external",
        sourcesContent: false,
        format: "cjs",
        platform: "browser",
        // The package's ESM build where it has one (listed before "require" in its exports).
        conditions: ["import", "module", "deno", "worker"],
        mainFields: ["browser", "module", "main"],
        target: "esnext",
        define: { "process.env.NODE_ENV": '"production"', global: "globalThis" },
        tsconfigRaw: {},
        // Positions in errors are then relative to the package (no host path).
        absWorkingDir: packageDir,
        logLevel: "silent",
        legalComments: "none",
        charset: "utf8",
        plugins: [confine(externals)],
      });
    } catch (error) {
      const first = (error as { errors?: Array<{ text: string; location?: { file: string; line: number } | null }> }).errors?.[0];
      return { ok: false, failure: first ?? { text: "the bundler failed" } };
    }
    const output = (suffix: string) => result.outputFiles.find((file) => file.path.endsWith(suffix))?.text ?? "";
    // The map's own reference comment would point at a file that does not exist.
    const code = output("unit.js").replace(/\n\/\/# sourceMappingURL=\S+\s*$/, "\n");
    const entry = result.metafile.inputs["<stdin>"]?.imports.find((item) => !item.external)?.path;
    const entryFormat = entry ? result.metafile.inputs[entry]?.format : undefined;
    return { ok: true, unit: { code, map: output("unit.js.map"), externals: [...externals].sort() }, entryFormat };
  }

  function confine(externals: Set<string>): Esbuild.Plugin {
    return {
      name: "paddock-confine",
      setup(build) {
        build.onResolve({ filter: /.*/ }, (args) => {
          if (args.kind === "entry-point") return undefined;
          const path = args.path;
          if (path.startsWith("/")) return { errors: [{ text: `absolute import "${path}" is not allowed in a package` }] };
          // Relative paths, and the package's own name (its exports map), resolve inside the package.
          const packageName = path.startsWith("node:") ? path : packageNameOf(path);
          if (packageName === undefined || packageName === name) return undefined;
          externals.add(path);
          return { path, external: true };
        });
        build.onLoad({ filter: /.*/ }, async (args) => {
          if (args.namespace !== "file") return undefined;
          if (!args.path.startsWith(packageDir + sep)) return { errors: [{ text: "an import reaches a file outside the package" }] };
          const loader = SCRIPT_LOADERS[extname(args.path)];
          if (!loader) return undefined;
          // Read here rather than by esbuild, which would follow a sourceMappingURL comment to a
          // map file anywhere on the disk.
          const text = await readFile(args.path, "utf8");
          return { contents: text.replace(/^[ \t]*\/\/[#@] sourceMappingURL=.*$/gm, ""), loader };
        });
      },
    };
  }
}
