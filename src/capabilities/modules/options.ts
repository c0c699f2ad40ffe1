/** The `modules` option of Sandbox.create: which packages a sandbox may import, from where, how much. */
import type { z } from "zod";
import { lazySchema } from "../../shared/schema.js";

const MiB = 1024 * 1024;

export const moduleLockSchema = lazySchema((z) =>
  z.strictObject({
    lockVersion: z.literal(1),
    /** By what the code asked for ("name@range", "name@latest"): the exact version it resolved to, and its integrity. */
    packages: z.record(z.string().min(1).max(512), z.strictObject({ version: z.string().min(1).max(256), integrity: z.string().min(1).max(1024) })),
  }),
);

/** A sandbox's resolutions (Sandbox.modulesLock()), to pass back as `modules.lock`: the same imports resolve the same way later. */
export type ModuleLock = z.output<ReturnType<typeof moduleLockSchema>>;

export const modulesOptionsSchema = lazySchema((z) =>
  z.strictObject({
    /** Patterns: "npm:lodash-es", "npm:lodash@^4", "npm:@scope/*", "npm:*"; URL prefixes "https://esm.sh/*". */
    allow: z.array(z.string().min(1).max(512)).max(10_000),
    /** Private or otherwise non-public addresses URL modules may come from anyway: "10.1.2.0/24", "127.0.0.1". */
    allowPrivate: z.array(z.string().min(1).max(64)).max(1_000).default([]),
    /** Every package, dependencies included, must match `allow` (by default a package's dependencies come with it). */
    strict: z.boolean().default(false),
    /** The npm registry; by default the one npm itself uses (.npmrc, npm_config_registry). */
    registry: z.url({ protocol: /^https?$/ }).optional(),
    /** The shared on-disk cache; default PADDOCK_CACHE_DIR or the user's cache directory. */
    cacheDir: z.string().min(1).max(4096).optional(),
    /** Never touch the network: only what the cache holds can be imported. */
    offline: z.boolean().default(false),
    /** A package's tarball, compressed. */
    maxPackageBytes: z.number().int().min(1024).max(1024 * MiB).default(32 * MiB),
    /** A package's files once unpacked, and how many there may be. */
    maxUnpackedBytes: z.number().int().min(1024).max(4096 * MiB).default(256 * MiB),
    maxPackageFiles: z.number().int().min(1).max(1_000_000).default(20_000),
    /** Prepared modules (package entry points) one eval may load, dependencies included. */
    maxModulesPerEval: z.number().int().min(1).max(100_000).default(500),
    /** Resolutions to keep: what they name resolves to the locked version, whose integrity must match. */
    lock: moduleLockSchema().optional(),
    /** Resolving and downloading an eval's imports; separate from the eval's own timeoutMs. */
    timeoutMs: z.number().int().min(1).max(3_600_000).default(60_000),
  }),
);

export type ModulesOptions = z.input<ReturnType<typeof modulesOptionsSchema>>;
export type ResolvedModulesOptions = z.output<ReturnType<typeof modulesOptionsSchema>>;
