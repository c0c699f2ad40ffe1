/**
 * The app server: every subfolder of a root folder is an app (an App of its own: its own sandbox,
 * carrier and limits), all behind one host-owned listener. Requests are routed by name only, from
 * the Host header (`blog.localhost`) or the first path segment (`/blog/…`, the prefix removed), so
 * no request can reach two apps and no app can name another's files or requests.
 *
 * Apps are installed, updated and removed by adding, changing and deleting folders: the root is
 * polled (Node 20 has no recursive fs.watch on Linux), each folder's sources are
 * summed up as a signature, and a folder whose signature changed and then held still for one poll
 * is started as a new App, swapped in, and the old App closed (it drains what it was serving).
 */
import type { Dirent } from "node:fs";
import { lstat, readdir, readFile } from "node:fs/promises";
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import type { LogEntry } from "../capabilities/console/messages.js";
import { modulesOptionsSchema } from "../capabilities/modules/options.js";
import { filesOptionsSchema } from "../capabilities/files/options.js";
import type { SandboxError } from "../host/errors.js";
import { parseOptions, sandboxOptionsSchema } from "../host/options.js";
import { lazySchema } from "../shared/schema.js";
import { App, appOptionsSchema, type AppOptions, type AppStats } from "./app.js";
import { createAppServer, hostLines, listen, serveNodeRequest, type Listener } from "./listener.js";
import { listSources } from "./sources.js";

/** Folder names that are app names: one DNS label, lower case, so that `<name>.localhost` works. */
const APP_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** `<name>.localhost`, any port, the root's trailing dot allowed; matched on the lower-cased Host. */
const APP_HOST = /^([a-z0-9][a-z0-9-]{0,62})\.localhost\.?(?::\d{1,5})?$/;
/** The most a paddock.json may weigh: a page of settings, not data. */
const MAX_CONFIG_BYTES = 1024 * 1024;
/** How long a client is told to wait before asking again while the server stops. */
const RETRY_AFTER_S = 10;
/**
 * A version that failed for a reason other than its folder's content (a start timeout on a loaded
 * machine, a carrier that could not start, its top-level code failing on a fetch) is tried again
 * after 1 s, then 2 s, 4 s… up to this.
 */
const MAX_RETRY_MS = 60_000;

/**
 * What an app's paddock.json may set: its limits and grants, checked by the same schemas as the
 * App and Sandbox options they become. Not functions (JSON has none), not its sources, and not
 * the host's own configuration: where packages come from and are kept (modules.registry,
 * modules.cacheDir) is the server's to say, not a stranger's.
 * Nor where its files live: it may size its store, and the server gives it its own folder
 * (see AppServer.optionsOf).
 */
const paddockJsonSchema = lazySchema((z) => {
  const sandbox = sandboxOptionsSchema().shape;
  const app = appOptionsSchema().shape;
  return z.strictObject({
    memoryMb: sandbox.memoryMb,
    net: sandbox.net,
    env: sandbox.env,
    modules: modulesOptionsSchema().omit({ cacheDir: true, registry: true }).optional(),
    maxTimers: sandbox.maxTimers,
    maxLogBytes: sandbox.maxLogBytes,
    entry: app.entry,
    maxConcurrentRequests: app.maxConcurrentRequests,
    requestTimeoutMs: app.requestTimeoutMs,
    maxRequestBodyBytes: app.maxRequestBodyBytes,
    requestBodyIdleTimeoutMs: app.requestBodyIdleTimeoutMs,
    startTimeoutMs: app.startTimeoutMs,
    idleTimeoutMs: app.idleTimeoutMs,
    files: filesOptionsSchema().omit({ dir: true }).optional(),
  });
});

export interface AppServerOptions {
  /** The folder whose subfolders are the apps. */
  root: string;
  /** 0 (the default) picks a free port; AppServer.url says which. */
  port?: number;
  /** Default 127.0.0.1. */
  hostname?: string;
  /**
   * Where the apps' files live, one folder per app (`<dataDir>/<name>`), kept across updates and
   * restarts. It must not be inside `root` (it would be served as an app). Without it, each app's
   * files are in memory, and an update starts them empty.
   */
  dataDir?: string;
  /** How often the root is looked at for new, changed and removed apps (default 1000 ms). */
  pollMs?: number;
  /**
   * Route by path prefix too (`/<name>/…`; default true). Prefixes put every app on one browser
   * origin, where one app's pages can read another's responses with the user's cookies; with
   * false, apps are reached only as `<name>.localhost`, an origin each.
   */
  pathRouting?: boolean;
  /** Installs, updates, removals, failures, the apps' console output and failed requests. */
  onEvent?: (event: AppServerEvent) => void;
}

export type AppServerEvent =
  /** An app serves: its first version (`installed`) or a new one in place of the old (`updated`); `ms` to start it. */
  | { type: "installed" | "updated"; app: string; ms: number }
  | { type: "removed"; app: string }
  /**
   * A version did not start (a bad paddock.json, code that throws…); `serving`: an older version goes
   * on; `retryInMs`: when it is tried again, unless only a change to its folder can help (a TypeError:
   * its paddock.json, its sources).
   */
  | { type: "failed"; app: string; error: Error; serving: boolean; retryInMs: number | undefined }
  /** A folder of the root that is not served (its name is not an app name, or it is a link). */
  | { type: "ignored"; folder: string; reason: string }
  /** The root could not be read (said once until it can be again); the apps served go on, and polls go on trying. */
  | { type: "scan-failed"; error: Error }
  | { type: "log"; app: string; entry: LogEntry }
  /** A request that failed inside the app or at its limits (the client saw only a status). */
  | { type: "request-failed"; app: string; error: SandboxError; request: { method: string; url: string } };

export interface AppServerApp {
  name: string;
  /** False when its only version failed to start (its requests are answered 503). */
  serving: boolean;
  /** The serving version's, if one serves. */
  stats: AppStats | undefined;
}

const serverOptionsSchema = lazySchema((z) =>
  z.strictObject({
    root: z.string().min(1),
    port: z.number().int().min(0).max(65_535).default(0),
    hostname: z.string().min(1).default("127.0.0.1"),
    dataDir: z.string().min(1).optional(),
    pollMs: z.number().int().min(10).max(3_600_000).default(1_000),
    pathRouting: z.boolean().default(true),
    onEvent: z.custom<(event: AppServerEvent) => void>((value) => typeof value === "function", "expected a function").optional(),
  }),
);

type ResolvedOptions = ReturnType<ReturnType<typeof serverOptionsSchema>["parse"]>;

/** One app name's state. */
interface Slot {
  /** The version serving requests. */
  app: App | undefined;
  /** Its only version failed to start: requests get 503 until a version starts. */
  failed: boolean;
  /** The signature last installed (or tried). */
  applied: string | undefined;
  /** The signature the last poll saw: a change is acted on once it holds for a poll. */
  seen: string | undefined;
  /** An install or update is under way; polls leave the slot alone. */
  busy: boolean;
  /** The old version stopped and the new one is starting (an app with a store on disk): requests get 503. */
  handingOver?: boolean;
  /** Failures in a row of the signature last tried. */
  failures: number;
  /** When a failed signature is tried again (Date.now() time), if it is. */
  retryAt: number | undefined;
}

export class AppServer implements AsyncDisposable {
  private readonly slots = new Map<string, Slot>();
  /** Folders reported as ignored at the last poll, so that each is reported once. */
  private ignored = new Set<string>();
  /** The last poll could not read the root. */
  private scanFailing = false;
  /** Installs under way and old versions draining: close() waits for them. */
  private readonly pending = new Set<Promise<void>>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closing: Promise<void> | undefined;
  private listener: Listener | undefined;
  private server: Server | undefined;

  /** `root` and `dataDir` absolute. */
  private constructor(private readonly options: ResolvedOptions) {}

  /** Starts every app of `root` (waiting until each serves or failed), then listens. */
  static async start(options: AppServerOptions): Promise<AppServer> {
    const resolved = parseOptions(serverOptionsSchema(), options, "AppServer.start");
    const root = resolve(resolved.root);
    const stat = await lstat(root).catch(() => undefined);
    if (!stat?.isDirectory()) throw new TypeError(`AppServer.start: root "${resolved.root}" is not a directory`);
    const dataDir = resolved.dataDir === undefined ? undefined : resolve(resolved.dataDir);
    if (dataDir !== undefined && isInside(dataDir, root)) throw new TypeError(`AppServer.start: dataDir "${resolved.dataDir}" is inside root (it would be served as an app)`);
    const server = new AppServer({ ...resolved, root, dataDir });
    await server.scan(true);
    await Promise.all(server.pending);
    try {
      server.server = createAppServer((request, response) => server.route(request, response));
      server.listener = await listen(server.server, { port: resolved.port, hostname: resolved.hostname });
    } catch (error) {
      await server.close();
      throw error;
    }
    server.schedule();
    return server;
  }

  /** The listener's address, `http://127.0.0.1:8080` say: an app is at `/<name>/`, or at `http://<name>.localhost:8080/`. */
  get url(): string {
    return this.listener!.url;
  }

  get port(): number {
    return this.listener!.port;
  }

  /** The apps known now (served, or failed to start), by name. */
  apps(): AppServerApp[] {
    const apps: AppServerApp[] = [];
    for (const [name, slot] of this.slots) {
      if (slot.app || slot.failed) apps.push({ name, serving: slot.app !== undefined, stats: slot.app?.stats() });
    }
    return apps.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Stops polling and listening; the apps finish the requests in progress, then stop. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearTimeout(this.timer);
      const stopped = this.listener?.close();
      // Installs under way see `closing` when they finish, and close what they started.
      while (this.pending.size > 0) await Promise.all(this.pending);
      const apps = [...this.slots.values()].flatMap((slot) => (slot.app ? [slot.app] : []));
      this.slots.clear();
      await Promise.all(apps.map((app) => app.close()));
      // Whatever is still connected has nothing more to get (a client that never finished its head).
      this.server?.closeAllConnections();
      await stopped;
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      void this.scan(false).finally(() => {
        if (!this.closing) this.schedule();
      });
    }, this.options.pollMs);
  }

  /**
   * Compares the root's folders with the apps: removes apps whose folder is gone, and installs or
   * updates those whose signature changed (at once when `initial`, else once it held for a poll,
   * so that a folder being copied in is not started half-copied).
   */
  private async scan(initial: boolean): Promise<void> {
    let entries: Dirent[];
    try {
      entries = await readdir(this.options.root, { withFileTypes: true });
    } catch (error) {
      // Once per outage, not once per poll.
      if (!this.scanFailing) this.emit({ type: "scan-failed", error: asError(error) });
      this.scanFailing = true;
      return;
    }
    this.scanFailing = false;
    const present = new Set<string>();
    const ignored = new Set<string>();
    for (const entry of entries) {
      const name = entry.name;
      // Files beside the apps (a README) and hidden folders (.git) are not apps, nor worth a warning.
      if (name.startsWith(".") || !(entry.isDirectory() || entry.isSymbolicLink())) continue;
      const problem = entry.isSymbolicLink() ? "it is a link (links are not followed)" : APP_NAME.test(name) ? undefined : "its name is not an app name (a-z, 0-9 and -, at most 63 characters, not starting with -)";
      if (problem === undefined) {
        present.add(name);
        continue;
      }
      ignored.add(name);
      if (!this.ignored.has(name)) this.emit({ type: "ignored", folder: name, reason: problem });
    }
    this.ignored = ignored;
    for (const [name, slot] of this.slots) if (!present.has(name) && !slot.busy) this.remove(name, slot);
    await Promise.all(
      [...present].map(async (name) => {
        let slot = this.slots.get(name);
        if (slot?.busy) return;
        const signature = await signatureOf(join(this.options.root, name));
        if (this.closing) return;
        if (!slot) this.slots.set(name, (slot = { app: undefined, failed: false, applied: undefined, seen: undefined, busy: false, failures: 0, retryAt: undefined }));
        const settled = initial || signature === slot.seen;
        slot.seen = signature;
        const retry = slot.retryAt !== undefined && Date.now() >= slot.retryAt;
        if (!settled || (signature === slot.applied && !retry) || slot.busy) return;
        slot.busy = true;
        this.track(this.install(name, slot, signature).finally(() => (slot.busy = false)));
      }),
    );
  }

  /** Starts the folder's current version; once it serves, it takes the old version's place. */
  private async install(name: string, slot: Slot, signature: string): Promise<void> {
    if (signature !== slot.applied) slot.failures = 0;
    slot.applied = signature;
    slot.retryAt = undefined;
    const started = performance.now();
    let app: App;
    try {
      const dir = join(this.options.root, name);
      const options = this.optionsOf(name, dir, await readConfig(dir));
      // A store on disk has one owner at a time: the old version stops (its requests in progress
      // finish, new ones get 503 with Retry-After) before the new one opens it.
      if (options.files?.dir !== undefined && slot.app) {
        const old = slot.app;
        slot.handingOver = true;
        try {
          await old.close();
        } finally {
          if (slot.app === old) slot.app = undefined;
        }
      }
      app = await App.create(options);
    } catch (error) {
      slot.handingOver = false;
      if (!slot.app) slot.failed = true;
      const retryInMs = error instanceof TypeError ? undefined : Math.min(MAX_RETRY_MS, 1_000 * 2 ** slot.failures++);
      if (retryInMs !== undefined) slot.retryAt = Date.now() + retryInMs;
      return this.emit({ type: "failed", app: name, error: asError(error), serving: slot.app !== undefined, retryInMs });
    }
    if (this.closing) return app.close();
    const old = slot.app;
    // The swap: requests routed from here on reach the new version; the old one drains and stops.
    slot.app = app;
    slot.failed = false;
    slot.handingOver = false;
    this.emit({ type: old ? "updated" : "installed", app: name, ms: Math.round(performance.now() - started) });
    if (old) this.track(old.close());
  }

  private remove(name: string, slot: Slot): void {
    this.slots.delete(name);
    if (slot.app) this.track(slot.app.close());
    if (slot.app || slot.failed) this.emit({ type: "removed", app: name });
  }

  /** App `name`'s options: its folder and its paddock.json, with the server's listeners. */
  private optionsOf(name: string, dir: string, config: PaddockJson): AppOptions {
    // Each app's store is its own folder of dataDir (the name is a plain folder name, checked when
    // the folder was found), never one the app chose.
    const dataDir = this.options.dataDir;
    return {
      ...config,
      ...(dataDir === undefined ? {} : { files: { ...config.files, dir: join(dataDir, name) } }),
      dir,
      onLog: (entry) => this.emit({ type: "log", app: name, entry }),
      onError: (error, request) => this.emit({ type: "request-failed", app: name, error, request }),
    };
  }

  /**
   * Routes a request: by the Host header if it names a known app (its path as it is), else by the
   * first path segment (removed from the path the app sees). Only origin-form targets (`/path`)
   * and one Host line: an absolute-form target (`GET http://b.localhost/`, what clients send to
   * proxies) or a second Host line would give the request a second name to be routed by.
   */
  private route(request: IncomingMessage, response: ServerResponse): void {
    if (this.closing) return answer(response, 503, { "retry-after": String(RETRY_AFTER_S) });
    const target = request.url ?? "/";
    // Two Host lines would give the request two names to be routed by (RFC 9112 answers them 400).
    if (!target.startsWith("/") || hostLines(request.rawHeaders) > 1) return answer(response, 400);
    let url: URL;
    try {
      // Parsed as the app will parse it (dot segments resolved, "%2e%2e" included), so that the
      // name routed by is the one the app's path is relative to.
      url = new URL(`http://paddock${target}`);
    } catch {
      return answer(response, 400);
    }
    const byHost = APP_HOST.exec((request.headers.host ?? "").toLowerCase())?.[1];
    const hostSlot = byHost === undefined ? undefined : this.known(byHost);
    if (hostSlot) return this.serve(hostSlot, request, response, url.pathname + url.search);
    if (!this.options.pathRouting) return answer(response, 404);
    const [, segment, rest] = /^\/([^/]*)(\/.*)?$/.exec(url.pathname)!;
    const slot = segment ? this.known(segment) : undefined;
    if (!slot) return answer(response, 404);
    if (rest === undefined) return answer(response, 308, { location: `/${segment}/${url.search}` });
    this.serve(slot, request, response, rest + url.search);
  }

  private serve(slot: Slot, request: IncomingMessage, response: ServerResponse, target: string): void {
    if (slot.app) return serveNodeRequest(slot.app, request, response, target);
    // Until the next try, or (when only a change can help) as long as a poll or two and a start take.
    const waitMs = slot.retryAt === undefined ? 2 * this.options.pollMs : slot.retryAt - Date.now();
    answer(response, 503, { "retry-after": String(Math.max(1, Math.ceil(waitMs / 1000))) });
  }

  /** The slot of an app that is served or failed; a folder not yet installed is not known. */
  private known(name: string): Slot | undefined {
    const slot = this.slots.get(name);
    return slot && (slot.app || slot.failed || slot.handingOver) ? slot : undefined;
  }

  private track(work: Promise<void>): void {
    const tracked = work.catch(() => {}).finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
  }

  private emit(event: AppServerEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch {
      // The listener's failure is the listener's.
    }
  }
}

type PaddockJson = ReturnType<ReturnType<typeof paddockJsonSchema>["parse"]>;

/** The folder's paddock.json, checked; {} without one. Links are not followed. */
async function readConfig(dir: string): Promise<PaddockJson> {
  const path = join(dir, "paddock.json");
  const stat = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return undefined;
    throw error;
  });
  let json: unknown = {};
  if (stat) {
    if (!stat.isFile()) throw new TypeError("paddock.json is not a file");
    if (stat.size > MAX_CONFIG_BYTES) throw new TypeError(`paddock.json is larger than ${MAX_CONFIG_BYTES} bytes`);
    const text = await readFile(path, "utf8");
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new TypeError(`paddock.json is not JSON (${asError(error).message})`);
    }
  }
  return parseOptions(paddockJsonSchema(), json, "paddock.json");
}

/**
 * What a folder's version is made of: its source files' paths, sizes and modification times, and
 * its paddock.json's. A folder that cannot be listed (too many files, say) has its error as its
 * signature, so that installing it reports the error once.
 */
async function signatureOf(dir: string): Promise<string> {
  try {
    const files = await listSources(dir);
    const config = await lstat(join(dir, "paddock.json")).catch(() => undefined);
    if (config) files.push({ path: "paddock.json", size: config.size, mtimeMs: config.mtimeMs });
    files.sort((a, b) => (a.path < b.path ? -1 : 1));
    return JSON.stringify(files.map(({ path, size, mtimeMs }) => [path, size, mtimeMs]));
  } catch (error) {
    return `!${asError(error).message}`;
  }
}

/** A response of the server's own: a status and its reason phrase, nothing about the host. */
function answer(response: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  const text = `${STATUS_CODES[status]}\n`;
  response.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": String(Buffer.byteLength(text)), ...headers }).end(text);
}

function isInside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === "" || (rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
