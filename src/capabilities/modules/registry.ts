/**
 * The npm registry as the host reaches it: configured the way npm itself is (.npmrc files,
 * npm_config_* variables, scoped registries, auth tokens), fetched and cached by pacote, npm's own
 * fetcher (integrity-checked, content-addressed cache, safe for concurrent processes). Credentials
 * stay in this module's options: errors name the registry by its origin only.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { lazyModule } from "../../shared/lazy.js";
import { ModuleError } from "../../host/errors.js";

/** The parts of pacote and npm-pick-manifest used here (neither ships types). */
interface Pacote {
  packument(spec: string, options: object): Promise<Packument>;
  tarball: { stream<T>(spec: string, handler: (stream: Readable) => Promise<T>, options: object): Promise<T> };
}
export interface Manifest {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  dist: { tarball: string; integrity?: string; shasum?: string };
}
export interface Packument {
  name: string;
  "dist-tags"?: Record<string, string>;
  versions: Record<string, Manifest>;
}
type PickManifest = (packument: Packument, wanted: string, options?: object) => Manifest;

const pacote = lazyModule<Pacote>("pacote");
const pickManifest = lazyModule<PickManifest>("npm-pick-manifest");
const ini = lazyModule<typeof import("ini")>("ini");

const DEFAULT_REGISTRY = "https://registry.npmjs.org/";

export interface RegistrySettings {
  /** Options for pacote / npm-registry-fetch: registries, scoped registries, credentials. */
  readonly npmOptions: Readonly<Record<string, string>>;
  readonly defaultRegistry: string;
}

/**
 * npm's configuration, in npm's order of precedence: npm_config_* variables, the project's .npmrc
 * (the working directory's), the user's; `registry` (the sandbox's option) wins over all of them.
 */
export function registrySettings(registry: string | undefined): RegistrySettings {
  const merged: Record<string, string> = {};
  const userConfig = process.env.npm_config_userconfig ?? process.env.NPM_CONFIG_USERCONFIG ?? join(homedir(), ".npmrc");
  for (const file of [userConfig, join(process.cwd(), ".npmrc")]) Object.assign(merged, readNpmrc(file));
  for (const [key, value] of Object.entries(process.env)) {
    const match = /^npm_config_(.+)$/i.exec(key);
    if (match?.[1] && value !== undefined) merged[match[1].toLowerCase()] = value;
  }
  if (registry) merged.registry = registry;
  const defaultRegistry = withSlash(merged.registry ?? DEFAULT_REGISTRY);
  const npmOptions: Record<string, string> = { registry: defaultRegistry };
  for (const [key, value] of Object.entries(merged)) {
    // Scoped registries and credentials (keyed by registry: "//host/path/:_authToken").
    if (/^@[^:]+:registry$/.test(key)) npmOptions[key] = withSlash(value);
    else if (key.startsWith("//") || key === "_auth" || key === "strict-ssl" || key === "ca" || key === "cafile") npmOptions[key] = value;
  }
  return { npmOptions, defaultRegistry };
}

function readNpmrc(file: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return {};
  }
  const parsed = ini().parse(text) as Record<string, unknown>;
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (typeof value === "string") out[key] = value.replace(/\$\{([^}]+)\}/g, (_, name: string) => process.env[name] ?? "");
    else if (typeof value === "boolean") out[key] = String(value);
  }
  return out;
}

function withSlash(url: string): string {
  return url.endsWith("/") ? url : url + "/";
}

/** The registry a package comes from (its scope's, or the default). */
export function registryFor(settings: RegistrySettings, name: string): string {
  const scope = name.startsWith("@") ? name.slice(0, name.indexOf("/")) : undefined;
  return (scope && settings.npmOptions[`${scope}:registry`]) || settings.defaultRegistry;
}

/** What may be said of a registry in an error: its origin, never a path or credentials. */
export function shownRegistry(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return "(an invalid registry URL)";
  }
}

export interface FetchSettings {
  registry: RegistrySettings;
  cache: string;
  offline: boolean;
  /** pacote's own packument cache: without it, fetching a tarball asks for the packument again. */
  packuments: Map<string, unknown>;
  /** One request's time limit (modules.timeoutMs): a stalled request is abandoned, not waited for. */
  timeoutMs: number;
}

function pacoteOptions(settings: FetchSettings): object {
  return {
    ...settings.registry.npmOptions,
    cache: settings.cache,
    offline: settings.offline,
    fullMetadata: false,
    timeout: settings.timeoutMs,
    // npm retries for minutes by default; an import waits at most modules.timeoutMs anyway.
    retry: { retries: 1, minTimeout: 200, maxTimeout: 1000 },
    packumentCache: settings.packuments,
    // Only registry packages: never git, file, directory or remote-tarball specs.
    allowGit: "none", allowFile: "none", allowDirectory: "none", allowRemote: "none",
    // Pacote's own log events are not wanted on the host's console.
    silent: true,
  };
}

export async function fetchPackument(settings: FetchSettings, name: string): Promise<Packument> {
  const registry = registryFor(settings.registry, name);
  let packument: Packument;
  try {
    packument = await pacote().packument(name, pacoteOptions(settings));
  } catch (error) {
    throw registryError(error, `npm:${name}`, registry);
  }
  if (packument?.name !== name || typeof packument.versions !== "object" || packument.versions === null) {
    throw new ModuleError(`the registry ${shownRegistry(registry)} answered for npm:${name} with metadata of another package`, "invalid-package");
  }
  return packument;
}

/** The version of `name` that `wanted` (a range or dist-tag) picks, as npm would pick it. */
export function pickVersion(packument: Packument, wanted: string, specifier: string): Manifest {
  let manifest: Manifest;
  try {
    manifest = pickManifest()(packument, wanted);
  } catch {
    const versions = Object.keys(packument.versions);
    const shown = versions.length > 12 ? [...versions.slice(0, 3), "…", ...versions.slice(-8)] : versions;
    throw new ModuleError(`no version of npm:${packument.name} matches "${wanted}" (${specifier}); versions published: ${shown.join(", ") || "none"}`, "not-found");
  }
  if (manifest.name !== packument.name || typeof manifest.dist?.tarball !== "string") {
    throw new ModuleError(`the registry's metadata for npm:${packument.name}@${manifest.version} names another package or no tarball`, "invalid-package");
  }
  return manifest;
}

/**
 * The package's tarball, checked against the integrity its metadata published (pacote refuses a
 * mismatch, and heals a corrupted cache entry by fetching again), no larger than `maxBytes`.
 */
export async function fetchTarball(settings: FetchSettings, manifest: Manifest, maxBytes: number): Promise<Buffer> {
  const registry = registryFor(settings.registry, manifest.name);
  const spec = `${manifest.name}@${manifest.version}`;
  // A registry's metadata may point tarballs anywhere; the host fetches only from the registry itself.
  if (!sameHost(manifest.dist.tarball, registry)) {
    throw new ModuleError(`the metadata of npm:${spec} points its tarball away from the registry ${shownRegistry(registry)}: refused`, "invalid-package");
  }
  const integrity = checkedIntegrity(manifest);
  if (!integrity) throw new ModuleError(`the registry publishes no usable integrity for npm:${spec} (a sha512, sha384 or sha256 digest, or a sha1 shasum): refused`, "integrity");
  try {
    return await pacote().tarball.stream(spec, (stream) => collect(stream, maxBytes, spec), { ...pacoteOptions(settings), integrity, resolved: manifest.dist.tarball });
  } catch (error) {
    if (error instanceof ModuleError) throw error;
    throw registryError(error, `npm:${spec}`, registry);
  }
}

const DIGEST_BYTES: Record<string, number> = { sha512: 64, sha384: 48, sha256: 32 };

/**
 * The integrity a tarball must match, if the metadata gives one that really checks something: a
 * well-formed digest of a strong algorithm (pacote would let an empty or malformed one pass), or
 * else the legacy sha1 shasum of packages published before npm recorded integrity.
 */
export function checkedIntegrity(manifest: Manifest): string | undefined {
  const match = /^(sha512|sha384|sha256)-([A-Za-z0-9+/]+={0,2})$/.exec(manifest.dist.integrity?.trim() ?? "");
  if (match && Buffer.from(match[2]!, "base64").byteLength === DIGEST_BYTES[match[1]!]) return match[0];
  if (manifest.dist.integrity === undefined && /^[0-9a-f]{40}$/i.test(manifest.dist.shasum ?? "")) {
    return `sha1-${Buffer.from(manifest.dist.shasum!, "hex").toString("base64")}`;
  }
  return undefined;
}

function collect(stream: Readable, maxBytes: number, spec: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on("data", (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size > maxBytes) {
        stream.destroy();
        reject(new ModuleError(`the tarball of npm:${spec} is larger than modules.maxPackageBytes (${maxBytes} bytes)`, "limit"));
        return;
      }
      chunks.push(chunk);
    });
    stream.on("error", reject);
    stream.on("end", () => resolve(Buffer.concat(chunks)));
  });
}

function sameHost(url: string, registry: string): boolean {
  try {
    return new URL(url).host === new URL(registry).host;
  } catch {
    return false;
  }
}

function registryError(error: unknown, what: string, registry: string): ModuleError {
  const { code, statusCode } = (error ?? {}) as { code?: string; statusCode?: number };
  const where = shownRegistry(registry);
  if (code === "EINTEGRITY") return new ModuleError(`the tarball of ${what} from ${where} does not match the integrity its metadata published: refused`, "integrity");
  if (code === "ENOTCACHED") return new ModuleError(`${what} is not in the cache, and modules.offline forbids the network`, "offline");
  if (code === "E404" || statusCode === 404) return new ModuleError(`${what} does not exist on the registry ${where}`, "not-found");
  if (statusCode === 401 || statusCode === 403) return new ModuleError(`the registry ${where} refused access to ${what} (HTTP ${statusCode}): check the credentials in .npmrc`, "unreachable");
  if (statusCode) return new ModuleError(`the registry ${where} answered HTTP ${statusCode} for ${what}`, "unreachable");
  return new ModuleError(`the registry ${where} could not be reached for ${what}${code ? ` (${code})` : ""}`, "unreachable");
}
