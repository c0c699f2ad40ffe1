/** The `net` option of Sandbox.create: which hosts a sandbox may reach, with what, how much. */
import type { z } from "zod";
import { lazySchema } from "../../shared/schema.js";

const MiB = 1024 * 1024;

/** A resolver override: all addresses of a name (split-horizon DNS, tests). */
export type NetLookup = (hostname: string) => readonly string[] | Promise<readonly string[]>;

export const netOptionsSchema = lazySchema((z) => {
  const hostPatterns = z.array(z.string().min(1).max(300)).max(10_000);

  const secret = z.strictObject({
    /** The real credential. It stays on the host: the sandbox sees a placeholder. */
    value: z
      .string()
      .min(8, "is too short to be told apart from ordinary text (8 characters at least)")
      .max(8 * 1024)
      .regex(/^[\x20-\x7e]+$/, "must be printable ASCII (a header value)"),
    /** Host patterns (as in `allow`) of requests that get the real value. https only, unless a pattern says http://. */
    hosts: hostPatterns.min(1),
  });

  const lookup = z.custom<NetLookup>((value) => typeof value === "function", "expected a function (hostname) => addresses");

  return z.strictObject({
    /** Host patterns: "api.github.com", "*.example.com", "internal.test:8080", "https://x.dev", "*". */
    allow: hostPatterns,
    /** Private or otherwise non-public addresses that may be reached anyway: "10.1.2.0/24", "127.0.0.1". */
    allowPrivate: z.array(z.string().min(1).max(64)).max(1_000).default([]),
    lookup: lookup.optional(),
    /** Credentials, visible in the sandbox as `env.NAME` placeholders. */
    secrets: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, "must be an identifier (letters, digits, _)"), secret).default({}),
    /** Requests (each redirect hop counts) per eval. */
    maxRequests: z.number().int().min(1).max(100_000).default(50),
    /** Requests in flight at once in the sandbox; more wait their turn. */
    maxConcurrent: z.number().int().min(1).max(1_000).default(6),
    maxRequestBytes: z.number().int().min(0).max(1024 * MiB).default(10 * MiB),
    /** Response body bytes, after decompression. */
    maxResponseBytes: z.number().int().min(0).max(4096 * MiB).default(32 * MiB),
    /** Wall time of one request, redirects and body included. */
    timeoutMs: z.number().int().min(1).max(3_600_000).default(30_000),
    maxRedirects: z.number().int().min(0).max(20).default(20),
    /** PEM certificates of CAs to trust besides the usual ones (an internal CA). */
    ca: z.array(z.string().min(1).max(64 * 1024)).max(100).default([]),
  });
});

export type NetOptions = z.input<ReturnType<typeof netOptionsSchema>>;
export type ResolvedNetOptions = z.output<ReturnType<typeof netOptionsSchema>>;
