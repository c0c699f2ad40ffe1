/** `paddock modules add|list|clear`: the module cache, filled ahead of time (an air-gapped deploy) or emptied. */
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { SandboxModules } from "../capabilities/modules/host.js";
import { modulesOptionsSchema } from "../capabilities/modules/options.js";
import { defaultCacheDir } from "../capabilities/modules/store.js";
import { parseOptions } from "../host/options.js";
import type { ImportRecord } from "../capabilities/modules/host.js";

export interface CacheFlags {
  cacheDir: string | undefined;
  registry: string | undefined;
}

/** What the cache is made of: pacote's tarballs and packuments, unpacked packages, prepared units. */
const CACHE_PARTS = ["npm", "packages", "prepared"];

export async function modulesCommand(action: string | undefined, specifiers: string[], flags: CacheFlags): Promise<number> {
  const cacheDir = flags.cacheDir ?? defaultCacheDir();
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
      for (const part of CACHE_PARTS) await rm(join(cacheDir, part), { recursive: true, force: true });
      console.log(`cleared ${cacheDir}`);
      return 0;
    }
    default:
      throw new TypeError('paddock modules: expected "add <package…>", "list" or "clear"');
  }
}
