/**
 * An app's code: its source files (given, or read once from a directory by the host), joined into
 * one module by esbuild. Relative imports between the files are resolved among them and nowhere
 * else; every other import (npm packages, node:fs) is left for the sandbox's own import policy.
 */
import { lstat, readdir, readFile } from "node:fs/promises";
import { extname, join, posix } from "node:path";
import type * as Esbuild from "esbuild";
import { lazyModule } from "../shared/lazy.js";
import { ScriptError } from "../host/errors.js";

const esbuild = lazyModule<typeof Esbuild>("esbuild");

const LOADERS: Record<string, Esbuild.Loader> = { ".js": "js", ".mjs": "js", ".jsx": "jsx", ".ts": "ts", ".mts": "ts", ".tsx": "tsx", ".json": "json" };
/** Entries looked for, in order, when none is named. */
const ENTRIES = ["main.ts", "main.js", "main.tsx", "main.jsx", "index.ts", "index.js", "mod.ts", "mod.js"];
/** What a directory app may hold: enough for a real app, little enough to read at once. */
export const SOURCE_LIMITS = { files: 1_000, bytes: 16 * 1024 * 1024, depth: 16 } as const;

export interface AppCode {
  code: string;
  filename: string;
}

/** The source files of a directory: its code and JSON files, by relative path ("lib/db.ts"). Links are not followed. */
export async function readSources(dir: string): Promise<Record<string, string>> {
  const sources: Record<string, string> = {};
  let files = 0;
  let bytes = 0;
  const walk = async (relative: string, depth: number): Promise<void> => {
    if (depth > SOURCE_LIMITS.depth) throw new TypeError(`App.create: the app's directory is nested deeper than ${SOURCE_LIMITS.depth} levels`);
    const entries = await readdir(join(dir, relative), { withFileTypes: true });
    for (const entry of entries) {
      const path = relative ? `${relative}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        // Data and dependencies are not code: an app imports packages through its module policy.
        if (entry.name === "node_modules" || entry.name.startsWith(".")) continue;
        await walk(path, depth + 1);
      } else if (entry.isFile() && LOADERS[extname(entry.name)] && entry.name !== "paddock.json") {
        const stat = await lstat(join(dir, path));
        if (++files > SOURCE_LIMITS.files) throw new TypeError(`App.create: the app's directory holds more than ${SOURCE_LIMITS.files} source files`);
        bytes += stat.size;
        if (bytes > SOURCE_LIMITS.bytes) throw new TypeError(`App.create: the app's sources are larger than ${SOURCE_LIMITS.bytes} bytes`);
        sources[path] = await readFile(join(dir, path), "utf8");
      }
    }
  };
  await walk("", 0);
  return sources;
}

/** The entry named, or the first of main.ts, main.js, index.ts… that the sources hold. */
export function entryOf(sources: Record<string, string>, entry: string | undefined): string {
  if (entry !== undefined) {
    if (!Object.hasOwn(sources, normalize(entry))) throw new TypeError(`App.create: the entry "${entry}" is not among the app's sources (${Object.keys(sources).slice(0, 10).join(", ") || "none"})`);
    return normalize(entry);
  }
  const found = ENTRIES.find((name) => Object.hasOwn(sources, name));
  if (!found) throw new TypeError(`App.create: no entry given, and the sources hold none of ${ENTRIES.join(", ")}`);
  return found;
}

/**
 * One module of the app's code. A single file goes as it is (the sandbox maps TypeScript positions
 * back to it); several are bundled from the entry, their relative imports resolved among them.
 */
export async function appCode(sources: Record<string, string>, entry: string): Promise<AppCode> {
  const paths = Object.keys(sources).map(normalize);
  const code = sources[entry]!;
  const relativeImport = /(?:from|import)\s*\(?\s*["']\.\.?\//;
  if (paths.length === 1 || !relativeImport.test(code)) return { code, filename: posix.basename(entry) };
  const byPath = new Map(Object.entries(sources).map(([path, text]) => [normalize(path), text]));
  const plugin: Esbuild.Plugin = {
    name: "paddock-app-sources",
    setup(build) {
      build.onResolve({ filter: /.*/ }, (args) => {
        if (args.kind === "entry-point") return { path: entry, namespace: "app" };
        if (!args.path.startsWith("./") && !args.path.startsWith("../")) return { path: args.path, external: true };
        const base = posix.dirname(args.importer);
        const target = posix.normalize(posix.join(base, args.path));
        if (target.startsWith("../")) return { errors: [{ text: `"${args.path}" climbs out of the app's sources` }] };
        const found = [target, ...Object.keys(LOADERS).map((ext) => target + ext), ...Object.keys(LOADERS).map((ext) => `${target}/index${ext}`)].find((path) => byPath.has(path));
        if (!found) return { errors: [{ text: `"${args.path}" (imported by ${args.importer}) is not among the app's sources` }] };
        return { path: found, namespace: "app" };
      });
      build.onLoad({ filter: /.*/, namespace: "app" }, (args) => ({ contents: byPath.get(args.path)!, loader: LOADERS[extname(args.path)] ?? "js" }));
    },
  };
  try {
    const result = await esbuild().build({
      entryPoints: [entry],
      bundle: true,
      write: false,
      format: "esm",
      platform: "neutral",
      target: "esnext",
      outfile: "app.js",
      logLevel: "silent",
      legalComments: "none",
      charset: "utf8",
      tsconfigRaw: {},
      plugins: [plugin],
    });
    return { code: result.outputFiles[0]!.text, filename: "app.js" };
  } catch (error) {
    const first = (error as { errors?: Array<{ text: string; location?: { file: string; line: number; column: number } | null }> }).errors?.[0];
    const where = first?.location ? `${first.location.file}:${first.location.line}:${first.location.column + 1}` : entry;
    throw new ScriptError(`${first?.text ?? "the app's sources could not be joined"} (${where})`, { errorName: "SyntaxError", line: first?.location?.line, column: first?.location ? first.location.column + 1 : undefined });
  } finally {
    void esbuild().stop();
  }
}

function normalize(path: string): string {
  return posix.normalize(path.replaceAll("\\", "/")).replace(/^(\.\/)+/, "").replace(/^\/+/, "");
}
