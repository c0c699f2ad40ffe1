/**
 * A real npm registry on loopback for the module tests and the benchmark: packuments and gzipped tarballs over HTTP,
 * built from fixture packages (files given here, or a package repacked from this project's own
 * node_modules). Tarballs are written by hand, header by header, so that tests can also serve the
 * hostile ones no honest packer would make (traversal, links, devices, lying metadata).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { Header } from "tar";

/** This project's node_modules (from dist/bench/). */
const INSTALLED = fileURLToPath(new URL("../../node_modules/", import.meta.url));

export interface TarEntry {
  /** The path as written in the tarball (the packer's "package/" prefix included). */
  path: string;
  data?: string | Uint8Array;
  type?: "File" | "Directory" | "SymbolicLink" | "Link" | "CharacterDevice";
  linkpath?: string;
}

export interface FixtureVersion {
  name: string;
  version: string;
  /** Files by path inside the package; package.json is written from the fields unless given. */
  files?: Record<string, string | Uint8Array>;
  dependencies?: Record<string, string>;
  /** package.json fields besides name, version and dependencies (type, main, exports…). */
  manifest?: Record<string, unknown>;
  /** Raw tarball entries instead of `files` (hostile tarballs). */
  entries?: TarEntry[];
  /** The tarball served instead of the one built (bombs, garbage). */
  tarball?: Uint8Array;
  /** The integrity the packument claims instead of the real one. */
  integrity?: string;
  /** A tarball URL the packument gives instead of the registry's own. */
  tarballUrl?: string;
  /** The packument's entry for this version names another package. */
  lieName?: string;
  /** The "latest" dist-tag points here (else at the last version published). */
  latest?: boolean;
}

export function tarEntries(entries: TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const data = entry.data === undefined ? Buffer.alloc(0) : Buffer.from(entry.data);
    const type = entry.type ?? "File";
    const size = type === "File" ? data.byteLength : 0;
    const header = new Header({ path: entry.path, mode: type === "Directory" ? 0o755 : 0o644, size, type, linkpath: entry.linkpath ?? "", mtime: new Date(0), uid: 0, gid: 0 });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    blocks.push(block);
    if (size > 0) blocks.push(data, Buffer.alloc((512 - (size % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

export function integrityOf(data: Uint8Array): string {
  return `sha512-${createHash("sha512").update(data).digest("base64")}`;
}

export class TestRegistry {
  readonly requests: string[] = [];
  private readonly packages = new Map<string, Map<string, { fixture: FixtureVersion; tarball: Uint8Array }>>();
  private requiredToken: string | undefined;
  /** Paths whose answers are held back (slow-loris): the response never completes. */
  stall = new Set<string>();

  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(): Promise<TestRegistry> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    const registry = new TestRegistry(server, `http://127.0.0.1:${port}/`);
    server.on("request", (request, response) => registry.serve(request, response));
    return registry;
  }

  /** Requests must carry `Authorization: Bearer <token>` (a private registry). */
  requireToken(token: string): void {
    this.requiredToken = token;
  }

  publish(fixture: FixtureVersion): this {
    const tarball = fixture.tarball ?? tarEntries(fixture.entries ?? packageEntries(fixture));
    let versions = this.packages.get(fixture.name);
    if (!versions) this.packages.set(fixture.name, (versions = new Map()));
    versions.set(fixture.version, { fixture, tarball });
    return this;
  }

  /** Publishes a package installed in this project's node_modules, as it is on disk. */
  publishInstalled(name: string, root = INSTALLED): this {
    const dir = join(root, name);
    const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version: string; dependencies?: Record<string, string> };
    const files: Record<string, Uint8Array> = {};
    const walk = (at: string) => {
      for (const entry of readdirSync(at)) {
        const path = join(at, entry);
        const stats = statSync(path);
        if (stats.isDirectory()) {
          if (entry !== "node_modules") walk(path);
        } else files[relative(dir, path).split("\\").join("/")] = readFileSync(path);
      }
    };
    walk(dir);
    return this.publish({ name, version: manifest.version, files, ...(manifest.dependencies ? { dependencies: manifest.dependencies } : {}) });
  }

  tarballPath(name: string, version: string): string {
    return `/${name}/-/${name.split("/").pop()}-${version}.tgz`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private serve(request: IncomingMessage, response: ServerResponse): void {
    const path = decodeURIComponent(new URL(request.url ?? "/", this.url).pathname);
    this.requests.push(path);
    if (this.stall.has(path)) {
      response.writeHead(200, { "content-type": "application/json" });
      response.write("{");
      return;
    }
    if (this.requiredToken && request.headers.authorization !== `Bearer ${this.requiredToken}`) {
      response.writeHead(401).end();
      return;
    }
    for (const [name, versions] of this.packages) {
      if (path === `/${name}`) {
        const body = JSON.stringify(this.packument(name, versions));
        response.writeHead(200, { "content-type": "application/json" }).end(body);
        return;
      }
      for (const [version, { tarball }] of versions) {
        if (path === this.tarballPath(name, version)) {
          response.writeHead(200, { "content-type": "application/octet-stream" }).end(tarball);
          return;
        }
      }
    }
    response.writeHead(404, { "content-type": "application/json" }).end('{"error":"not found"}');
  }

  private packument(name: string, versions: Map<string, { fixture: FixtureVersion; tarball: Uint8Array }>) {
    const entries = [...versions.values()];
    return {
      name,
      "dist-tags": { latest: (entries.find((entry) => entry.fixture.latest) ?? entries.at(-1)!).fixture.version },
      versions: Object.fromEntries(entries.map(({ fixture, tarball }) => [fixture.version, {
        name: fixture.lieName ?? name,
        version: fixture.version,
        ...(fixture.dependencies ? { dependencies: fixture.dependencies } : {}),
        dist: {
          tarball: fixture.tarballUrl ?? new URL(this.tarballPath(name, fixture.version).slice(1), this.url).href,
          integrity: fixture.integrity ?? integrityOf(tarball),
        },
      }])),
    };
  }
}

function packageEntries(fixture: FixtureVersion): TarEntry[] {
  const files = { ...fixture.files };
  files["package.json"] ??= JSON.stringify({ name: fixture.name, version: fixture.version, ...(fixture.dependencies ? { dependencies: fixture.dependencies } : {}), ...fixture.manifest });
  return Object.entries(files).map(([path, data]) => ({ path: `package/${path}`, data }));
}
