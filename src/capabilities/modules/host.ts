/**
 * The host half of modules for one sandbox: each import the eval's code names is checked against
 * the sandbox's policy, resolved to a version, and linked — with the dependencies it brings — to
 * prepared units from the shared store. The carrier receives only code and links.
 */
import { ModuleError, PolicyError, ResourceLimitError, TimeoutError, type SandboxError } from "../../host/errors.js";
import { ModulePolicy, isPackageName, semver } from "./policy.js";
import { contentId, storeFor, unitKey, type PackageStore, type PreparedUnit } from "./store.js";
import { isBuiltin, packageNameOf } from "./prepare.js";
import { checkedIntegrity, type Manifest } from "./registry.js";
import { BoundedCache } from "../../shared/bounded-cache.js";
import { UrlFetcher, shown } from "./urls.js";
import { TraceMap, originalPositionFor } from "@jridgewell/trace-mapping";
import type { ModuleLink, ModuleUnit } from "./messages.js";
import type { ModuleLock, ResolvedModulesOptions } from "./options.js";

/** One import of an eval, as the audit log sees it. */
export interface ImportRecord {
  specifier: string;
  /** The unit it resolved to ("npm:lodash-es@4.17.21/chunk"); null if it did not resolve. */
  resolved: string | null;
  integrity: string | null;
  /** Where its code came from: already in the carrier, the host's cache, the registry, or its URL. */
  from: "carrier" | "cache" | "registry" | "url" | null;
  ms: number;
  verdict: "allowed" | "refused";
  /** The allow pattern that admitted it, or why it was refused or failed. */
  rule: string;
}

/** An import named by the eval's code: static (the eval needs it) or a literal import() (it may fail alone). */
export interface NamedImport {
  specifier: string;
  dynamic: boolean;
}

export interface EvalModules {
  /** What each import of the eval's own code reaches. */
  imports: Record<string, ModuleLink>;
  /** Every unit those reach, dependencies included. */
  units: Map<string, ModuleUnit>;
  /** The errors failed import() calls reject with, by message (to give the host's error back, reason included). */
  failures: Map<string, ModuleError>;
  /** The carrier already held every unit: the records say so. */
  servedByCarrier(): void;
}

interface LinkedUnit {
  unit: ModuleUnit;
  downloaded: boolean;
  /** Units its links reach, not yet linked themselves. */
  next: Array<{ manifest: Manifest; subpath: string }>;
}

/** How long a set of imports, once resolved, is served without asking the store (its packuments' lifetime). */
const RESOLVED_TTL_MS = 5 * 60 * 1000;
const RESOLVED_SETS = 256;
const RESOLVED_SETS_CHARS = 1024 * 1024;

function servedBy(records: ImportRecord[]): () => void {
  return () => {
    for (const record of records) if (record.from === "cache") record.from = "carrier";
  };
}

const NO_IMPORTS: EvalModules = { imports: {}, units: new Map(), failures: new Map(), servedByCarrier: () => {} };

export class SandboxModules implements StackMapper {
  private readonly policy: ModulePolicy;
  private readonly store: PackageStore;
  /** Linked units of this sandbox (links depend on its policy), by key. */
  private readonly linked = new Map<string, Promise<LinkedUnit>>();
  /** Import lists resolved before, by their JSON: an agent's code repeats its imports. */
  private readonly resolvedSets = new BoundedCache<{ modules: EvalModules; records: ImportRecord[]; at: number }>(RESOLVED_SETS, RESOLVED_SETS_CHARS);
  /** URL modules' fetcher, made at the first URL import. */
  private urls: UrlFetcher | undefined;
  private readonly closing = new AbortController();
  /** Units whose download an import record has already reported. */
  private readonly reported = new Set<string>();
  /** What this sandbox resolved, by "name@wanted" (see modulesLock). */
  private readonly resolutions = new Map<string, { version: string; integrity: string }>();
  /** Each linked unit's source map (JSON), made into a TraceMap when a stack first needs it. */
  private readonly maps = new Map<string, (() => string | undefined) | TraceMap>();

  constructor(readonly options: ResolvedModulesOptions) {
    this.policy = new ModulePolicy(options.allow, options.strict);
    this.store = storeFor(options);
  }

  mapStack(stack: string): string {
    // Only frame lines: the message is the user's own text, whatever it looks like.
    return stack
      .split("\n")
      .map((line) => (line.startsWith("    at ") ? line.replace(UNIT_POSITION, (whole, key: string, row: string, column: string) => this.mapPosition(key, Number(row), Number(column)) ?? whole) : line))
      .join("\n");
  }

  private mapPosition(key: string, line: number, column: number): string | undefined {
    if (line < 1 || column < 1) return undefined;
    try {
      let map = this.maps.get(key);
      if (typeof map === "function") {
        const text = map();
        if (text === undefined) return undefined;
        map = new TraceMap(text);
        this.maps.set(key, map);
      }
      if (map === undefined) return undefined;
      const found = originalPositionFor(map, { line, column: column - 1 });
      if (found.source === null || found.line === null || found.source.startsWith("..") || found.source.startsWith("/")) return undefined;
      const pkg = /^npm:(?:@[^/]+\/)?[^/@]+@[^/]+/.exec(key)?.[0] ?? key;
      return `${pkg}/${found.source}:${found.line}:${found.column + 1}`;
    } catch {
      // A map file that cannot be read as one (damaged on disk): the frame stays as it was.
      this.maps.delete(key);
      return undefined;
    }
  }

  /**
   * Resolves the eval's imports. A static import that fails fails the eval (with the error
   * thrown); a dynamic one becomes an error its import() rejects with.
   */
  async prepareEval(named: readonly NamedImport[], records: ImportRecord[]): Promise<EvalModules> {
    // Every eval of the sandbox says it has a module policy, also one that imports nothing.
    if (named.length === 0) return NO_IMPORTS;
    const started = performance.now();
    const id = JSON.stringify(named);
    const known = this.resolvedSets.get(id);
    if (known && started - known.at < RESOLVED_TTL_MS) {
      const ms = Math.round((performance.now() - started) * 1000) / 1000;
      const fresh = known.records.map((record) => ({ ...record, from: "cache" as const, ms }));
      records.push(...fresh);
      return { ...known.modules, servedByCarrier: servedBy(fresh) };
    }
    if (known) this.resolvedSets.delete(id);
    const timeoutMs = this.options.timeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(`resolving the eval's imports took longer than modules.timeoutMs (${timeoutMs} ms)`)), timeoutMs);
    });
    try {
      const modules = await Promise.race([this.resolveAll(named, records), late]);
      // The same imports resolve the same way for a while (the registry is asked again after that).
      if (modules.failures.size === 0) this.resolvedSets.set(id, { modules, records: records.map((record) => ({ ...record })), at: started });
      return modules;
    } finally {
      clearTimeout(timer);
    }
  }

  private async resolveAll(named: readonly NamedImport[], records: ImportRecord[]): Promise<EvalModules> {
    const imports: Record<string, ModuleLink> = {};
    const units = new Map<string, ModuleUnit>();
    const failures = new Map<string, ModuleError>();
    const unique = [...new Map(named.map((entry) => [entry.specifier, entry])).values()];
    // Counted before anything is fetched: each specifier needs one module at least.
    if (unique.length > this.options.maxModulesPerEval) throw this.tooManyModules(unique.length);
    await Promise.all(unique.map(async ({ specifier, dynamic }) => {
      const started = performance.now();
      const record: ImportRecord = { specifier, resolved: null, integrity: null, from: null, ms: 0, verdict: "refused", rule: "" };
      records.push(record);
      try {
        if (/^https?:/i.test(specifier)) {
          const unit = await this.resolveUrl(specifier, record);
          units.set(unit.key, unit);
          imports[specifier] = unit.key;
          return;
        }
        const { manifest, subpath, rule } = await this.resolveRoot(specifier);
        record.verdict = "allowed";
        record.rule = rule;
        const key = unitKey(manifest, subpath);
        const downloaded = await this.collect(manifest, subpath, units);
        imports[specifier] = key;
        Object.assign(record, { resolved: key, integrity: checkedIntegrity(manifest) ?? null, from: downloaded ? "registry" : "cache" });
      } catch (error) {
        const failure = asSandboxError(error);
        if (!record.rule) record.rule = failure instanceof PolicyError ? "not in modules.allow" : failure.message;
        if (!dynamic) throw failure;
        imports[specifier] = { error: { name: failure.name, message: failure.message } };
        if (failure instanceof ModuleError) failures.set(failure.message, failure);
      } finally {
        record.ms = Math.round((performance.now() - started) * 1000) / 1000;
      }
    }));
    if (units.size > this.options.maxModulesPerEval) throw this.tooManyModules(units.size);
    return { imports, units, failures, servedByCarrier: servedBy(records) };
  }

  /** A URL module: admitted by a URL pattern, fetched through this sandbox's own policy, every URL in it checked again. */
  private async resolveUrl(specifier: string, record: ImportRecord): Promise<ModuleUnit> {
    let url: URL;
    try {
      url = new URL(specifier);
    } catch {
      throw new ModuleError(`"${specifier}" is not a valid URL`, "not-found");
    }
    const rule = this.policy.admitsUrl(url);
    if (!rule) throw new PolicyError(`import of ${shown(url)} refused: not in modules.allow`);
    record.verdict = "allowed";
    record.rule = rule;
    this.urls ??= new UrlFetcher((next) => this.policy.admitsUrl(next), this.policy.urlPatterns, this.options.allowPrivate, { maxBytes: this.options.maxPackageBytes, timeoutMs: this.options.timeoutMs });
    const fetcher = this.urls;
    const prepared = await this.store.urlUnit(url.href, (next) => fetcher.fetch(next, this.closing.signal));
    // A unit prepared for another sandbox may hold URLs this sandbox's policy does not admit.
    const outside = prepared.urls.find((held) => !this.policy.admitsUrl(new URL(held)));
    if (outside) throw new PolicyError(`import of ${shown(url)} refused: it imports ${shown(new URL(outside))}, which is not in modules.allow`);
    const locked = this.options.lock?.packages[url.href];
    if (locked && locked.integrity !== prepared.integrity) {
      throw new ModuleError(`${shown(url)} no longer matches modules.lock (its contents changed): refused`, "integrity");
    }
    this.resolutions.set(url.href, { version: "url", integrity: prepared.integrity });
    const links: Record<string, ModuleLink> = {};
    for (const external of prepared.externals) {
      links[external] = { error: { name: "Error", message: `Cannot find module "${external}" (imported by ${shown(url)}): a URL module can import other URLs only` } };
    }
    Object.assign(record, { resolved: prepared.key, integrity: prepared.integrity, from: prepared.downloaded ? "url" : "cache" });
    return { key: prepared.key, code: prepared.code, links };
  }

  /** Stops this sandbox's URL fetches (its sandbox is closing). */
  close(): Promise<void> {
    this.closing.abort();
    return this.urls?.close() ?? Promise.resolve();
  }

  /** An import of the eval's own code: which package, version and subpath, and the rule that allows it. */
  private async resolveRoot(specifier: string): Promise<{ manifest: Manifest; subpath: string; rule: string }> {
    const parsed = parseSpecifier(specifier);
    const { name, range, subpath } = parsed;
    if (!this.policy.mayImport(name)) throw new PolicyError(`import of npm:${name} refused: not in modules.allow`);
    const manifest = await this.manifest(name, range ?? "latest", specifier);
    const verdict = this.policy.check(name, manifest.version, true);
    if (!verdict.ok) throw new PolicyError(`import of npm:${name}@${manifest.version} refused: no modules.allow pattern admits this version`);
    return { manifest, subpath, rule: verdict.rule };
  }

  /** The version `wanted` picks, or the one the lock pinned for it (whose integrity must still match). */
  private async manifest(name: string, wanted: string, specifier: string): Promise<Manifest> {
    const id = `${name}@${wanted}`;
    const locked = this.options.lock?.packages[id];
    const manifest = await this.store.manifest(name, locked ? locked.version : wanted, specifier);
    const integrity = checkedIntegrity(manifest) ?? "";
    if (locked && integrity !== locked.integrity) {
      throw new ModuleError(`npm:${name}@${manifest.version} on the registry does not match modules.lock (its integrity differs from the one locked for "${id}"): refused`, "integrity");
    }
    if (integrity) this.resolutions.set(id, { version: manifest.version, integrity });
    return manifest;
  }

  /** Everything this sandbox resolved so far, as `modules.lock` takes it. */
  lock(): ModuleLock {
    const packages: ModuleLock["packages"] = { ...this.options.lock?.packages };
    for (const [id, resolution] of [...this.resolutions].sort(([a], [b]) => (a < b ? -1 : 1))) packages[id] = { ...resolution };
    return { lockVersion: 1, packages };
  }

  /**
   * The unit and everything it links to, added to `units` only once all of them linked (a failed
   * import adds nothing); true if anything had to be downloaded.
   */
  private async collect(manifest: Manifest, subpath: string, units: Map<string, ModuleUnit>): Promise<boolean> {
    const found = new Map<string, ModuleUnit>();
    const seen = new Set<string>(units.keys());
    let downloaded = false;
    let wave = [{ manifest, subpath }];
    while (wave.length > 0) {
      const fresh = wave.filter(({ manifest, subpath }) => !seen.has(unitKey(manifest, subpath)));
      for (const item of fresh) seen.add(unitKey(item.manifest, item.subpath));
      if (seen.size > this.options.maxModulesPerEval) throw this.tooManyModules(seen.size);
      const linked = await Promise.all(fresh.map(({ manifest, subpath }) => this.link(manifest, subpath)));
      wave = [];
      for (const entry of linked) {
        found.set(entry.unit.key, entry.unit);
        if (entry.downloaded && !this.reported.has(entry.unit.key)) {
          this.reported.add(entry.unit.key);
          downloaded = true;
        }
        wave.push(...entry.next);
      }
    }
    for (const [key, unit] of found) units.set(key, unit);
    return downloaded;
  }

  private tooManyModules(count: number): ResourceLimitError {
    return new ResourceLimitError(`the eval's imports need more than modules.maxModulesPerEval (${this.options.maxModulesPerEval}) modules, dependencies included (${count} so far)`);
  }

  private link(manifest: Manifest, subpath: string): Promise<LinkedUnit> {
    const id = contentId(manifest, subpath);
    let linked = this.linked.get(id);
    if (!linked) {
      linked = this.store.unit(manifest, subpath).then((prepared) => this.linkUnit(prepared));
      this.linked.set(id, linked);
      linked.catch(() => this.linked.delete(id));
    }
    return linked;
  }

  private async linkUnit(prepared: PreparedUnit): Promise<LinkedUnit> {
    const links: Record<string, ModuleLink> = {};
    const next: LinkedUnit["next"] = [];
    await Promise.all(prepared.externals.map(async (specifier) => {
      const target = await this.dependency(prepared.manifest, specifier);
      if ("error" in target) {
        links[specifier] = target;
      } else {
        links[specifier] = unitKey(target.manifest, target.subpath);
        next.push(target);
      }
    }));
    this.maps.set(prepared.key, prepared.readMap);
    return { unit: { key: prepared.key, code: prepared.code, links }, downloaded: prepared.downloaded, next };
  }

  /** What `require(specifier)` in a unit of `from` reaches: one of its declared dependencies. */
  private async dependency(from: Manifest, specifier: string): Promise<{ manifest: Manifest; subpath: string } | { error: { name: string; message: string } }> {
    const owner = `npm:${from.name}@${from.version}`;
    const notFound = (why: string) => ({ error: { name: "Error", message: `Cannot find module "${specifier}" (required by ${owner}): ${why}` } });
    const name = specifier.startsWith("node:") ? undefined : packageNameOf(specifier);
    const declared = name === undefined ? undefined : from.dependencies?.[name] ?? from.optionalDependencies?.[name] ?? from.peerDependencies?.[name];
    if (name === undefined || declared === undefined) {
      return isBuiltin(specifier) ? notFound("Node.js built-in modules are not available in the sandbox") : notFound(`it is not a dependency of ${owner}`);
    }
    let target = name;
    let range = declared;
    const alias = /^npm:((?:@[^/@]+\/)?[^/@]+)(?:@(.*))?$/.exec(declared);
    if (alias) {
      target = alias[1]!;
      range = alias[2] ?? "latest";
    }
    if (!isPackageName(target) || (semver().validRange(range) === null && !/^[a-z][a-z0-9._-]*$/i.test(range))) {
      return notFound(`its dependency spec "${declared}" is not a registry version (git, file and URL dependencies are not supported)`);
    }
    let manifest: Manifest;
    try {
      manifest = await this.manifest(target, range, specifier);
    } catch (error) {
      return { error: { name: "ModuleError", message: asSandboxError(error).message } };
    }
    const verdict = this.policy.check(target, manifest.version, false);
    if (!verdict.ok) return { error: { name: "PolicyError", message: `import of npm:${target}@${manifest.version} (a dependency of ${owner}) refused: modules.strict requires every package in modules.allow` } };
    return { manifest, subpath: specifier.slice(name.length) };
  }
}

/** A stack frame's position in a unit: "npm:name@1.2.3/sub:12:5". */
const UNIT_POSITION = /(npm:(?:@[^\s/@():]+\/)?[^\s/@():]+@[^\s/():]+(?:\/[^\s():]*)?):(\d+):(\d+)/g;

export interface StackMapper {
  /** Frames in units, mapped to the package's own files: "npm:name@1.2.3/lib/x.js:40:7". */
  mapStack(stack: string): string;
}

/** "npm:name@range/sub" or a bare "name/sub". */
export function parseSpecifier(specifier: string): { name: string; range: string | undefined; subpath: string } {
  if (specifier.startsWith("node:") || (isBuiltin(specifier) && !specifier.startsWith("npm:"))) {
    throw new PolicyError(`import of "${specifier}" refused: Node.js built-in modules are not available in the sandbox`);
  }
  if (/^(jsr|file|data|blob):/i.test(specifier)) {
    throw new PolicyError(`import of "${specifier}" refused: only npm packages ("npm:name" or a bare "name") and http(s) URLs can be imported; ${specifier.split(":")[0]}: imports are not supported`);
  }
  if (specifier.startsWith(".") || specifier.startsWith("/")) {
    throw new PolicyError(`import of "${specifier}" refused: the eval's code has no files to import relatively; import packages by name`);
  }
  const body = specifier.startsWith("npm:") ? specifier.slice(4).replace(/^\//, "") : specifier;
  const match = /^((?:@[^/@]+\/)?[^/@]+)(?:@([^/]*))?(\/.*)?$/.exec(body);
  if (!match || !isPackageName(match[1]!)) throw new ModuleError(`"${specifier}" does not name an npm package (expected "npm:name", "npm:name@range/sub" or "name")`, "not-found");
  const subpath = match[3] ?? "";
  if (subpath.split("/").some((part) => part === "..")) throw new ModuleError(`"${specifier}" climbs out of its package`, "not-found");
  return { name: match[1]!, range: match[2] || undefined, subpath };
}

function asSandboxError(error: unknown): SandboxError {
  if (error instanceof PolicyError || error instanceof ModuleError || error instanceof TimeoutError || error instanceof ResourceLimitError) return error;
  // Anything else is the host's own failure (a full disk, say): its message may hold host paths.
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return new ModuleError(`the import could not be prepared on the host${typeof code === "string" && /^E[A-Z]+$/.test(code) ? ` (${code})` : ""}`, "unsupported");
}
