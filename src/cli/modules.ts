/** `paddock modules add|list|clear`: the module cache, filled ahead of time (an air-gapped deploy) or emptied. */
import { readdir, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { SandboxModules } from "../capabilities/modules/host.js";
import { modulesOptionsSchema } from "../capabilities/modules/options.js";
import { CACHE_TAG, defaultCacheDir } from "../capabilities/modules/store.js";
import { parseOptions } from "../host/options.js";
import type { ImportRecord } from "../capabilities/modules/host.js";

export interface CacheFlags {
  cacheDir: string | undefined;
  registry: string | undefined;
}

/** What the cache is made of: pacote's tarballs and packuments, unpacked packages, prepared units, resolutions. */
const CACHE_PARTS = ["npm", "packages", "prepared", "resolved", "urls"];

export async function modulesCommand(action: string | undefined, specifiers: string[], flags: CacheFlags): Promise<number> {
  const cacheDir = flags.cacheDir ?? defaultCacheDir();
  if (!isAbsolute(cacheDir) || cacheDir === "/") throw new TypeError(`paddock modules: the cache directory must be an absolute path (got "${cacheDir}")`);
  switch (action) {
    case "add": {
      if (specifiers.length === 0) throw new TypeError("paddock modules add: name at least one package (npm:lodash-es@4, date-fns…)");
      const options = parseOptions(modulesOptionsSchema(), { allow: ["npm:*"], cacheDir, ...(flags.registry ? { registry: flags.registry } : {}) }, "paddock modules add");
      const records: ImportRecord[] = [];
      // Each as an eval's static import would be: the package, its entry point and its dependencies, prepared.
      await new SandboxModules(options).prepareEval(specifiers.map((specifier) => ({ specifier, dynamic: false })), records);
      for (const record of records) console.log(`${record.specifier} → ${record.resolved} (${record.from === "registry" ? "downloaded" : "already cached"}) ${record.integrity ?? ""}`);
      return 0;
    }
    case "list": {
      const packages = await readdir(join(cacheDir, "packages")).catch(() => [] as string[]);
      for (const entry of packages.filter((name) => !name.includes(".tmp-")).sort()) console.log(entry.replace(/-[0-9a-f]{16}$/, "").replace("+", "/"));
      return 0;
    }
    case "clear": {
      // Only a directory Paddock made into its cache: a mistyped --cache-dir must not cost anyone a folder.
      if (!existsSync(join(cacheDir, CACHE_TAG))) {
        if (!existsSync(cacheDir)) return 0;
        throw new TypeError(`paddock modules clear: ${cacheDir} is not a Paddock module cache (it has no ${CACHE_TAG}); nothing was deleted`);
      }
      for (const part of CACHE_PARTS) await rm(join(cacheDir, part), { recursive: true, force: true });
      console.log(`cleared ${cacheDir}`);
      return 0;
    }
    default:
      throw new TypeError('paddock modules: expected "add <package…>", "list" or "clear"');
  }
}
