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
import { withEsbuild } from "../../shared/esbuild.js";
import { ModuleError } from "../../host/errors.js";

export interface BundledUnit {
  code: string;
  /** Source map of `code` (JSON), its sources relative to the package's directory. */
  map: string;
  /** Specifiers of other packages (and built-ins) the code requires, as written. */
  externals: string[];
}

const BUILTINS = new Set(builtinModules);
const SCRIPT_LOADERS: Record<string, Esbuild.Loader> = { ".js": "js", ".mjs": "js", ".cjs": "js", ".jsx": "jsx", ".ts": "ts", ".mts": "ts", ".cts": "ts", ".tsx": "tsx" };

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
  const externals = new Set<string>();
  const confine: Esbuild.Plugin = {
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
        return { contents: withoutSourceMap(await readFile(args.path, "utf8")), loader };
      });
    },
  };
  return bundleModule(name + subpath, { resolveDir: root, absWorkingDir: packageDir, plugin: confine, externals, what });
}

/**
 * Bundles the module at `url` with every module it imports by URL (relative, root-relative or
 * absolute), each fetched through `load` (which applies the policy); bare specifiers stay external.
 */
export async function bundleUrl(url: string, load: (url: string) => Promise<{ text: string; contentType: string }>, what: string): Promise<BundledUnit> {
  const externals = new Set<string>();
  // A fetch refused or failed is the import's error as it is (a PolicyError, a limit), not the bundler's.
  let failed: unknown;
  const fetchUrls: Esbuild.Plugin = {
    name: "paddock-urls",
    setup(build) {
      build.onResolve({ filter: /.*/ }, (args) => {
        if (args.kind === "entry-point") return undefined;
        const base = args.namespace === "url" ? args.importer : undefined;
        const relative = args.path.startsWith("./") || args.path.startsWith("../") || args.path.startsWith("/");
        if (/^https?:\/\//i.test(args.path) || (relative && base)) return { path: new URL(args.path, base).href, namespace: "url" };
        externals.add(args.path);
        return { path: args.path, external: true };
      });
      build.onLoad({ filter: /.*/, namespace: "url" }, async (args) => {
        try {
          const { text, contentType } = await load(args.path);
          return { contents: withoutSourceMap(text), loader: urlLoader(args.path, contentType) };
        } catch (error) {
          failed ??= error;
          throw error;
        }
      });
    },
  };
  try {
    return await bundleModule(url, { resolveDir: undefined, absWorkingDir: undefined, plugin: fetchUrls, externals, what });
  } catch (error) {
    throw failed ?? error;
  }
}

function withoutSourceMap(text: string): string {
  return text.replace(/^[ \t]*\/\/[#@] sourceMappingURL=.*$/gm, "");
}

function urlLoader(url: string, contentType: string): Esbuild.Loader {
  if (/json/i.test(contentType)) return "json";
  return SCRIPT_LOADERS[extname(new URL(url).pathname)] ?? "js";
}

interface BundleSetup {
  resolveDir: string | undefined;
  absWorkingDir: string | undefined;
  plugin: Esbuild.Plugin;
  /** Filled by the plugin with what it left external. */
  externals: Set<string>;
  what: string;
}

type Attempt = { ok: true; unit: BundledUnit; entryFormat: string | undefined } | { ok: false; failure: { text: string; location?: { file: string; line: number } | null } };

/**
 * An ES module entry is bundled as ES modules re-exported (esbuild hoists them into one scope,
 * which evaluates ~2× faster than module-by-module); a CommonJS entry is required, so that
 * require() from other packages gets its module.exports as it is.
 */
async function bundleModule(target: string, setup: BundleSetup): Promise<BundledUnit> {
  const quoted = JSON.stringify(target);
  return withEsbuild(async (esbuild) => {
    let bundle = await tryBundle(esbuild, `export * from ${quoted};\nexport { default } from ${quoted};\n`, setup);
    if (!bundle.ok && bundle.failure.text.startsWith("No matching export")) bundle = await tryBundle(esbuild, `export * from ${quoted};\n`, setup);
    if (bundle.ok && bundle.entryFormat !== "esm") bundle = await tryBundle(esbuild, `module.exports = require(${quoted});\n`, setup);
    if (!bundle.ok) {
      const { text, location } = bundle.failure;
      const where = location ? ` (${location.file.replace(/^node_modules\//, "")}:${location.line})` : "";
      throw new ModuleError(`${setup.what} could not be prepared: ${text}${where}`, "unsupported");
    }
    return bundle.unit;
  });
}

async function tryBundle(esbuild: typeof Esbuild, stub: string, setup: BundleSetup): Promise<Attempt> {
  setup.externals.clear();
  let result: Esbuild.BuildResult<{ write: false; metafile: true }>;
  try {
    result = await esbuild.build({
      stdin: { contents: stub, ...(setup.resolveDir ? { resolveDir: setup.resolveDir } : {}), sourcefile: "paddock-entry.js", loader: "js" },
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
      ...(setup.absWorkingDir ? { absWorkingDir: setup.absWorkingDir } : {}),
      logLevel: "silent",
      legalComments: "none",
      charset: "utf8",
      plugins: [setup.plugin],
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
  return { ok: true, unit: { code, map: output("unit.js.map"), externals: [...setup.externals].sort() }, entryFormat };
}
