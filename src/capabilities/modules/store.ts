/**
 * The host's store of packages, shared by every sandbox of this process that uses the same
 * registry settings and cache directory: packuments, unpacked packages and prepared units, each
 * asked for once however many sandboxes ask at the same time. On disk it is shared by every
 * process using the cache directory: pacote's content-addressed cache holds tarballs (checked
 * against their integrity on every read), unpacked packages and prepared units are written to a
 * temporary name and renamed into place.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { checkedIntegrity, fetchPackument, fetchTarball, pickVersion, registryFor, registrySettings, type FetchSettings, type Manifest, type Packument } from "./registry.js";
import { exists, readTarball, writePackage, type UnpackLimits } from "./unpack.js";
import { bundleEntry, bundleUrl, type BundledUnit } from "./prepare.js";
import { ModuleError } from "../../host/errors.js";
import type { ResolvedModulesOptions } from "./options.js";

/** How long a packument is trusted before the registry is asked again (npm's own cache uses 5 minutes too). */
const PACKUMENT_TTL_MS = 5 * 60 * 1000;
/** Prepared units and packuments held in memory by a store (the disk cache holds the rest). */
const UNITS_IN_MEMORY = 1_000;
const PACKUMENTS_IN_MEMORY = 2_000;
/** Unpacking and bundling at once, in the whole process. */
const HEAVY_WORK_AT_ONCE = 2;

/** Runs at most `limit` tasks at once; the others wait their turn, in order. */
class WorkQueue {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    try {
      return await task();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}

const heavyWork = new WorkQueue(HEAVY_WORK_AT_ONCE);

/** Bumped when prepared code changes shape: older prepared files are then left unused. */
const PREPARE_VERSION = "5";

export interface PreparedUnit extends Omit<BundledUnit, "map"> {
  /** The code's source map (JSON), if it can still be read. */
  readMap(): string | undefined;
  key: string;
  manifest: Manifest;
  /** Whether this call had to download the package (else: memory or disk cache). */
  downloaded: boolean;
}

/** Marks a directory as Paddock's module cache (the CACHEDIR.TAG convention): `modules clear` empties only such a directory. */
export const CACHE_TAG = "CACHEDIR.TAG";
const CACHE_TAG_TEXT = "Signature: 8a477f597d28d172789f06886806bc55\n# This directory is Paddock's module cache (paddock modules clear empties it).\n";

/** A URL module, bundled with the URL modules it imports. */
export interface UrlUnit extends Omit<BundledUnit, "map"> {
  key: string;
  /** sha512 of the code: what a lock keeps for a URL. */
  integrity: string;
  /** Every URL whose text went into the code. */
  urls: string[];
  downloaded: boolean;
}

export function defaultCacheDir(): string {
  const env = process.env.PADDOCK_CACHE_DIR;
  if (env) return env;
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "paddock");
}

export function unitKey(manifest: Pick<Manifest, "name" | "version">, subpath: string): string {
  return `npm:${manifest.name}@${manifest.version}${subpath}`;
}

/** A unit's key with the integrity of the package it comes from: what identifies its contents. */
export function contentId(manifest: Manifest, subpath: string): string {
  return `${unitKey(manifest, subpath)}\0${checkedIntegrity(manifest) ?? ""}`;
}

export class PackageStore {
  private readonly fetchSettings: FetchSettings;
  private readonly packuments = new Map<string, { packument: Promise<Packument>; at: number }>();
  private readonly packages = new Map<string, Promise<{ root: string; packageDir: string; downloaded: boolean }>>();
  private readonly units = new Map<string, Promise<PreparedUnit>>();
  private readonly urlUnits = new Map<string, { unit: Promise<UrlUnit>; at: number }>();
  /** Resolutions made, by the package they picked, not yet on disk (see confirm). */
  private readonly unconfirmed = new Map<string, Map<string, Manifest>>();

  constructor(
    readonly cacheDir: string,
    registry: string | undefined,
    offline: boolean,
    private readonly limits: UnpackLimits & { maxPackageBytes: number; timeoutMs: number },
  ) {
    this.fetchSettings = { registry: registrySettings(registry), cache: join(cacheDir, "npm"), offline, packuments: new Map(), timeoutMs: limits.timeoutMs };
  }

  /**
   * The version `wanted` (a range or a dist-tag) picks. A resolution made in the last 5 minutes
   * (by any process sharing the cache; any time at all when offline) is read from disk: a new
   * process then imports a prepared package without loading npm's fetcher or asking the registry.
   */
  async manifest(name: string, wanted: string, specifier: string): Promise<Manifest> {
    const file = this.resolutionFile(name, wanted);
    if (!this.packuments.has(name)) {
      const known = await readResolution(file, name);
      const age = known ? Date.now() - known.at : Infinity;
      if (known && age > -60_000 && (this.fetchSettings.offline || age < PACKUMENT_TTL_MS)) return known.manifest;
    }
    const manifest = pickVersion(await this.packument(name), wanted, specifier);
    // Kept on disk once a unit of that version has been prepared from a checked tarball, not before.
    const id = contentId(manifest, "");
    const files = this.unconfirmed.get(id) ?? new Map<string, Manifest>();
    files.set(file, manifest);
    this.unconfirmed.set(id, files);
    return manifest;
  }

  /** The resolutions that picked this package, written now that a unit of it was prepared. */
  private async confirm(manifest: Manifest): Promise<void> {
    const id = contentId(manifest, "");
    const files = this.unconfirmed.get(id);
    if (!files) return;
    this.unconfirmed.delete(id);
    await Promise.all([...files].map(([file, picked]) => writeAtomically(file, JSON.stringify({ version: PREPARE_VERSION, at: Date.now(), manifest: essentials(picked) }))));
  }

  private resolutionFile(name: string, wanted: string): string {
    const id = createHash("sha256").update(`${registryFor(this.fetchSettings.registry, name)}\0${name}\0${wanted}`).digest("hex");
    return join(this.cacheDir, "resolved", id.slice(0, 2), `${id}.json`);
  }

  private async packument(name: string): Promise<Packument> {
    let entry = this.packuments.get(name);
    if (!entry || performance.now() - entry.at > PACKUMENT_TTL_MS) {
      if (this.packuments.size >= PACKUMENTS_IN_MEMORY) this.packuments.delete(this.packuments.keys().next().value!);
      // pacote's copy would answer with the old packument.
      if (entry) this.fetchSettings.packuments.clear();
      const packument = fetchPackument(this.fetchSettings, name);
      entry = { packument, at: performance.now() };
      this.packuments.set(name, entry);
      // A failure is not kept: the next import asks again (the registry may be back).
      packument.catch(() => this.packuments.delete(name));
    }
    return entry.packument;
  }

  /**
   * The unit of a URL module and everything it imports by URL, fetched through `load` (the
   * sandbox's policy). Prepared units are kept by URL, on disk too, and trusted like packuments
   * (5 minutes; always when offline); the URLs each holds are listed so that every sandbox checks
   * them against its own policy.
   */
  urlUnit(url: string, load: (url: string) => Promise<{ text: string; contentType: string }>): Promise<UrlUnit> {
    const known = this.urlUnits.get(url);
    if (known && performance.now() - known.at < PACKUMENT_TTL_MS) return known.unit;
    const unit = this.prepareUrl(url, load);
    this.urlUnits.set(url, { unit, at: performance.now() });
    unit.catch(() => this.urlUnits.delete(url));
    if (this.urlUnits.size > UNITS_IN_MEMORY) this.urlUnits.delete(this.urlUnits.keys().next().value!);
    return unit;
  }

  private async prepareUrl(url: string, load: (url: string) => Promise<{ text: string; contentType: string }>): Promise<UrlUnit> {
    const id = createHash("sha256").update(`${PREPARE_VERSION}\0url\0${url}`).digest("hex");
    const file = join(this.cacheDir, "urls", id.slice(0, 2), `${id}.json`);
    const cached = await readUrlUnit(file, url);
    if (cached && (this.fetchSettings.offline || (Date.now() - cached.at < PACKUMENT_TTL_MS && Date.now() >= cached.at - 60_000))) return { ...cached.unit, downloaded: false };
    if (this.fetchSettings.offline) throw new ModuleError(`${url} is not in the cache, and modules.offline forbids the network`, "offline");
    return heavyWork.run(async () => {
      await this.tag();
      const urls: string[] = [];
      const { map: _map, ...bundled } = await bundleUrl(url, (next) => {
        urls.push(next);
        return load(next);
      }, url);
      const integrity = `sha512-${createHash("sha512").update(bundled.code).digest("base64")}`;
      const unit = { ...bundled, key: url, integrity, urls: urls.sort() };
      await writeAtomically(file, JSON.stringify({ version: PREPARE_VERSION, at: Date.now(), unit }));
      return { ...unit, downloaded: true };
    });
  }

  /** The unit for `subpath` ("" or "/sub") of the package, prepared once (kept in memory while recently used, else on disk). */
  unit(manifest: Manifest, subpath: string): Promise<PreparedUnit> {
    const key = unitKey(manifest, subpath);
    // The same name and version may come with other contents (another registry, a republished
    // package): everything held is by integrity too.
    const id = contentId(manifest, subpath);
    let unit = this.units.get(id);
    if (unit) {
      this.units.delete(id);
    } else {
      unit = this.prepare(manifest, subpath, key);
      unit.catch(() => this.units.delete(id));
    }
    // A resolution is kept on disk once it has led to a prepared unit (a failed write costs only the shortcut).
    unit.then(() => this.confirm(manifest)).catch(() => {});
    this.units.set(id, unit);
    if (this.units.size > UNITS_IN_MEMORY) this.units.delete(this.units.keys().next().value!);
    return unit;
  }

  private tagged: Promise<void> | undefined;

  /** Writes the cache's tag once per store (before anything else is written into the directory). */
  private tag(): Promise<void> {
    this.tagged ??= mkdir(this.cacheDir, { recursive: true }).then(() => writeFile(join(this.cacheDir, CACHE_TAG), CACHE_TAG_TEXT));
    return this.tagged;
  }

  private async prepare(manifest: Manifest, subpath: string, key: string): Promise<PreparedUnit> {
    const integrity = checkedIntegrity(manifest) ?? "";
    const id = createHash("sha256").update(`${PREPARE_VERSION}\0${manifest.name}\0${manifest.version}\0${integrity}\0${subpath}`).digest("hex");
    const preparedFile = join(this.cacheDir, "prepared", id.slice(0, 2), `${id}.json`);
    // The source map is a file of its own, read only if a stack needs it.
    const mapFile = preparedFile.replace(/\.json$/, ".map");
    const readMap = () => readMapFile(mapFile);
    const cached = await readPrepared(preparedFile);
    if (cached) return { ...cached, key, manifest, downloaded: false, readMap };
    // Unpacking and bundling take CPU and memory: a few at a time for the whole process.
    return heavyWork.run(async () => {
      await this.tag();
      const { root, packageDir, downloaded } = await this.unpacked(manifest, integrity);
      const { map, ...bundled } = await bundleEntry(root, packageDir, manifest.name, subpath, key);
      await writeAtomically(mapFile, map);
      await writeAtomically(preparedFile, JSON.stringify({ version: PREPARE_VERSION, ...bundled }));
      return { ...bundled, key, manifest, downloaded, readMap: () => map };
    });
  }

  private unpacked(manifest: Manifest, integrity: string): Promise<{ root: string; packageDir: string; downloaded: boolean }> {
    const id = contentId(manifest, "");
    let entry = this.packages.get(id);
    if (!entry) {
      entry = this.unpack(manifest, integrity);
      this.packages.set(id, entry);
      entry.catch(() => this.packages.delete(id));
    }
    return entry;
  }

  private async unpack(manifest: Manifest, integrity: string) {
    const what = `npm:${manifest.name}@${manifest.version}`;
    const hash = createHash("sha256").update(integrity).digest("hex").slice(0, 16);
    const root = join(this.cacheDir, "packages", `${manifest.name.replace("/", "+")}@${manifest.version}-${hash}`);
    const packageDir = join(root, "node_modules", ...manifest.name.split("/"));
    if (await exists(join(packageDir, "package.json"))) return { root, packageDir, downloaded: false };
    const tarball = await fetchTarball(this.fetchSettings, manifest, this.limits.maxPackageBytes);
    const files = await readTarball(tarball, this.limits, what);
    const own = parsePackageJson(files.find((file) => file.path === "package.json")!.data);
    if (own?.name !== manifest.name || own.version !== manifest.version) {
      throw new ModuleError(`the tarball of ${what} holds another package (${String(own?.name)}@${String(own?.version)}): refused`, "invalid-package");
    }
    try {
      await writePackage(root, manifest.name, files);
    } catch (error) {
      throw new ModuleError(`${what} could not be unpacked (${(error as NodeJS.ErrnoException).code ?? "error"}): two of its paths collide`, "invalid-package");
    }
    return { root, packageDir, downloaded: true };
  }
}

/** What resolution and linking need of a manifest (a packument's version entry holds much more). */
function essentials(manifest: Manifest): Manifest {
  const { name, version, dependencies, optionalDependencies, peerDependencies, dist } = manifest;
  return { name, version, dependencies, optionalDependencies, peerDependencies, dist: { tarball: dist.tarball, integrity: dist.integrity, shasum: dist.shasum } };
}

async function readResolution(file: string, name: string): Promise<{ at: number; manifest: Manifest } | undefined> {
  try {
    const value = JSON.parse(await readFile(file, "utf8")) as { version?: unknown; at?: unknown; manifest?: Partial<Manifest> };
    const manifest = value.manifest;
    if (value.version !== PREPARE_VERSION || typeof value.at !== "number" || manifest?.name !== name || typeof manifest.version !== "string") return undefined;
    if (typeof manifest.dist?.tarball !== "string") return undefined;
    return { at: value.at, manifest: manifest as Manifest };
  } catch {
    return undefined;
  }
}

function parsePackageJson(data: Buffer): { name?: unknown; version?: unknown } | undefined {
  try {
    const value: unknown = JSON.parse(data.toString("utf8"));
    return typeof value === "object" && value !== null ? (value as { name?: unknown; version?: unknown }) : undefined;
  } catch {
    return undefined;
  }
}

/** A prepared unit from disk; anything unreadable or malformed (a torn write, corruption) counts as absent. */
async function readUrlUnit(file: string, url: string): Promise<{ at: number; unit: Omit<UrlUnit, "downloaded"> } | undefined> {
  try {
    const value = JSON.parse(await readFile(file, "utf8")) as { version?: unknown; at?: unknown; unit?: Partial<UrlUnit> };
    const unit = value.unit;
    if (value.version !== PREPARE_VERSION || typeof value.at !== "number" || unit?.key !== url || typeof unit.code !== "string" || typeof unit.integrity !== "string") return undefined;
    if (!isStrings(unit.externals) || !isStrings(unit.urls)) return undefined;
    return { at: value.at, unit: { key: unit.key, code: unit.code, integrity: unit.integrity, externals: unit.externals, urls: unit.urls } };
  } catch {
    return undefined;
  }
}

function isStrings(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

function readMapFile(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

async function readPrepared(file: string): Promise<Omit<BundledUnit, "map"> | undefined> {
  try {
    const value = JSON.parse(await readFile(file, "utf8")) as { version?: unknown; code?: unknown; externals?: unknown };
    if (value.version !== PREPARE_VERSION || typeof value.code !== "string") return undefined;
    if (!isStrings(value.externals)) return undefined;
    return { code: value.code, externals: value.externals };
  } catch {
    return undefined;
  }
}

async function writeAtomically(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(temporary, text);
  await rename(temporary, file);
}


const stores = new Map<string, PackageStore>();

/** The store for these options: one per cache directory, registry and mode in this process. */
export function storeFor(options: ResolvedModulesOptions): PackageStore {
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const id = JSON.stringify([cacheDir, options.registry ?? null, options.offline, options.maxPackageBytes, options.maxUnpackedBytes, options.maxPackageFiles, options.timeoutMs]);
  let store = stores.get(id);
  if (!store) {
    store = new PackageStore(cacheDir, options.registry, options.offline, {
      maxPackageBytes: options.maxPackageBytes, maxUnpackedBytes: options.maxUnpackedBytes, maxFiles: options.maxPackageFiles, timeoutMs: options.timeoutMs,
    });
    stores.set(id, store);
  }
  return store;
}
