/**
 * Real servers for the network tests, on node:http / node:net and nothing else:
 *
 * - an origin (`startOrigin`) with routes that exercise a sandboxed fetch (redirects, streams,
 *   stalls, compression, a decompression bomb, large and lying bodies), which records every request
 *   so that a test can assert what reached the server (an Authorization header, say);
 * - a trap (`startTrap`) that only counts TCP connections, for addresses nothing may reach: a test
 *   asserts `hits === 0` after an attack.
 *
 * Tests in the normal suite bind these on loopback only (127.0.0.0/8, ::1). Traps on "forbidden"
 * addresses (169.254.169.254, 10.0.0.1, …) exist only inside a private network namespace (see
 * netns.ts), where those addresses are local and nothing can leave the machine.
 *
 * A warning for callers: `/redirect?to=…` redirects wherever it is told. In the normal suite a
 * redirect to a non-loopback address is only safe when the policy under test refuses it, and a
 * broken policy would then send a request off the machine; such tests belong in the namespace.
 *
 * Importing this module has no side effects (node --test runs every .js file under dist/test/,
 * this one included, as a test file).
 */
import { createServer as createHttpServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createNetServer, isIPv6, type AddressInfo, type Server as NetServer, type Socket } from "node:net";
import { createGzip, gzipSync } from "node:zlib";

/** One request as the origin received it. */
export interface RecordedRequest {
  method: string;
  /** The request target as sent (path and query, or an absolute URL from a proxy-style client). */
  url: string;
  /** Lower-cased, merged by Node (`set-cookie` an array, others joined). */
  headers: IncomingHttpHeaders;
  /** Names as sent (case kept) and values, alternating, duplicates kept. */
  rawHeaders: string[];
  /**
   * The body bytes received so far; complete once `bodyComplete` is true. Kept up to
   * RECORDED_BODY_LIMIT bytes so that a runaway upload cannot exhaust the test process.
   */
  body: Buffer;
  /** Every body byte received, including any beyond what `body` keeps. */
  bodyBytes: number;
  bodyComplete: boolean;
  remoteAddress: string;
  /** 1-based index of the TCP connection the request came on (several on one = keep-alive). */
  connection: number;
}

export interface Origin {
  /** `http://host:port` plus `path`, with an IPv6 host in brackets. */
  url(path?: string): string;
  /** The URL origin, `http://host:port` (no trailing slash). */
  origin: string;
  host: string;
  port: number;
  /** Every request, in arrival order; a test may reset it with `requests.length = 0`. */
  requests: RecordedRequest[];
  /** TCP connections accepted so far. */
  readonly connections: number;
  /** Stops the server and destroys every open socket (hung, streaming and idle ones alike). */
  close(): Promise<void>;
}

export interface Trap {
  host: string;
  port: number;
  /** TCP connections accepted; counted on connect, before (and whether or not) any byte arrives. */
  readonly hits: number;
  /** `http://host:port` plus `path`, with an IPv6 host in brackets. */
  url(path?: string): string;
  close(): Promise<void>;
}

/** How much of a request body the origin keeps in `RecordedRequest.body`. */
export const RECORDED_BODY_LIMIT = 8 * 1024 * 1024;

/** Bytes the default `/bomb` inflates to (its gzip body is about 100 KiB). */
export const BOMB_INFLATED_BYTES = 100 * 1024 * 1024;

/** The body of `/json`. */
export const JSON_BODY = { ok: true, name: "paddock-origin", items: [1, 2, 3] } as const;

/** The JSON inside `/gzip`. */
export const GZIP_JSON = { compressed: true, message: "hello from gzip" } as const;

/** The cookies `/set-cookie` sets, as Set-Cookie header values. */
export const SET_COOKIES = ["session=s3cr3t; Path=/; HttpOnly", "theme=dark; Path=/"] as const;

/** The bytes `/text` repeats (ASCII, so bytes and characters agree). */
export const TEXT_PATTERN = "abcdefghijklmnopqrstuvwxyz0123456789\n";

/**
 * What to pass to listen() for `host`. A link-local IPv6 address (fe80::/10) cannot be bound or
 * connected to without a zone (EINVAL on Linux), so a bare one is bound on the loopback interface,
 * `fe80::1%lo`. A URL cannot carry a zone (`http://[fe80::1%25lo]/` is invalid), so no fetch can
 * reach such a listener; the trap still proves that much.
 */
export function listenHost(host: string): string {
  return /^fe[89ab][0-9a-f]?:/i.test(host) && !host.includes("%") ? `${host}%lo` : host;
}

function hostForUrl(host: string): string {
  return isIPv6(host.split("%")[0] ?? host) ? `[${host}]` : host;
}

function listen(server: NetServer, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once("error", onError);
    server.listen({ host: listenHost(host), port }, () => {
      server.off("error", onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Closes `server` after destroying `sockets`; resolves even if the server was never listening. */
function closeServer(server: NetServer, sockets: Set<Socket>): Promise<void> {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}

/** A non-negative integer query parameter, or `fallback` when absent; NaN when malformed. */
function intParam(query: URLSearchParams, name: string, fallback: number): number {
  const raw = query.get(name);
  if (raw === null) return fallback;
  return /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
}

/**
 * Writes `total` bytes of `pattern` to `res` in 64 KiB pieces, waiting for 'drain' (so a huge body
 * is never in memory at once). Resolves false if the response was closed (client gone) first.
 */
async function writeRepeated(res: ServerResponse, total: number, pattern: string): Promise<boolean> {
  const pieceSize = 64 * 1024;
  const piece = Buffer.from(pattern.repeat(Math.ceil(pieceSize / pattern.length)).slice(0, pieceSize), "latin1");
  let written = 0;
  while (written < total) {
    if (res.destroyed) return false;
    const n = Math.min(pieceSize, total - written);
    const ok = res.write(n === pieceSize ? piece : piece.subarray(0, n));
    written += n;
    if (!ok) {
      const drained = await new Promise<boolean>((resolve) => {
        const onDrain = (): void => { res.off("close", onClose); resolve(true); };
        const onClose = (): void => { res.off("drain", onDrain); resolve(false); };
        res.once("drain", onDrain);
        res.once("close", onClose);
      });
      if (!drained) return false;
    }
  }
  return true;
}

/** gzip bodies for `/bomb`, by inflated size: built once per process, streamed so as not to hold the inflated bytes. */
const bombs = new Map<number, Promise<Buffer>>();

export function gzipBomb(inflatedBytes: number = BOMB_INFLATED_BYTES): Promise<Buffer> {
  let bomb = bombs.get(inflatedBytes);
  if (!bomb) {
    bomb = new Promise<Buffer>((resolve, reject) => {
      const gzip = createGzip({ level: 9 });
      const chunks: Buffer[] = [];
      gzip.on("data", (chunk: Buffer) => chunks.push(chunk));
      gzip.on("end", () => resolve(Buffer.concat(chunks)));
      gzip.on("error", reject);
      const zeros = Buffer.alloc(1024 * 1024);
      let left = inflatedBytes;
      const pump = (): void => {
        while (left > 0) {
          const n = Math.min(zeros.length, left);
          left -= n;
          if (!gzip.write(n === zeros.length ? zeros : zeros.subarray(0, n))) {
            gzip.once("drain", pump);
            return;
          }
        }
        gzip.end();
      };
      pump();
    });
    bombs.set(inflatedBytes, bomb);
  }
  return bomb;
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(status, { "content-type": "application/json", "content-length": body.length });
  res.end(body);
}

function sendText(res: ServerResponse, status: number, text: string): void {
  const body = Buffer.from(text);
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": body.length });
  res.end(body);
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/**
 * Starts an origin on `host` (an ephemeral port). Routes (query parameters optional unless said):
 *
 * | route | answer |
 * |---|---|
 * | `/json` | `JSON_BODY` as application/json |
 * | `/text?bytes=N` | N bytes (default 16) of `TEXT_PATTERN` repeated, with content-length |
 * | `/echo` | JSON `{ method, url, headers, rawHeaders, body (utf8), bodyBytes }` of the request, after its whole body |
 * | `/status/N` | status N (200–599), body `status N` |
 * | `/redirect?to=URL&status=S` | S (301/302/303/307/308, default 302) with `Location: URL` |
 * | `/redirect-chain?n=K&status=S` | K hops (relative Locations) then 200 JSON `{ done: true, hops: K }` |
 * | `/stream?chunks=N&delayMs=D` | chunked; `chunk i\n` for i < N (default 5), one every D ms (default 50) |
 * | `/slow-headers?ms=D` | waits D ms (default 1000) before the 200 `slow` |
 * | `/hang` | never answers; its socket is destroyed by close() |
 * | `/reset` | destroys the socket without answering |
 * | `/gzip` | `GZIP_JSON`, gzip-encoded, `content-encoding: gzip` |
 * | `/bomb?mb=M` | gzip body (≈1/1000 of M) inflating to M MiB of zeros (default 100), `content-encoding: gzip`, `x-inflated-bytes` |
 * | `/big?bytes=N&declare=M` | N bytes (default 1 MiB); content-length M (default N, M ≥ N): when M > N the socket is destroyed after N bytes |
 * | `/headers?name=value…` | sets each query pair as a response header (repeated names → several values); body JSON of them |
 * | `/set-cookie` | `SET_COOKIES` as two Set-Cookie headers |
 *
 * Anything else is a 404 JSON. HEAD gets the same headers without a body (node:http drops it).
 */
export async function startOrigin(host = "127.0.0.1"): Promise<Origin> {
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  const connectionIds = new WeakMap<Socket, number>();

  const server = createHttpServer((req, res) => {
    const record: RecordedRequest = {
      method: req.method ?? "",
      url: req.url ?? "",
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      body: Buffer.alloc(0),
      bodyBytes: 0,
      bodyComplete: false,
      remoteAddress: req.socket.remoteAddress ?? "",
      connection: connectionIds.get(req.socket) ?? 0,
    };
    requests.push(record);
    // Every route's body is consumed and recorded, so a test can see what was uploaded even to /hang.
    const kept: Buffer[] = [];
    let keptBytes = 0;
    const bodyDone = new Promise<void>((resolve) => {
      req.on("data", (chunk: Buffer) => {
        record.bodyBytes += chunk.length;
        if (keptBytes < RECORDED_BODY_LIMIT) {
          const piece = chunk.subarray(0, RECORDED_BODY_LIMIT - keptBytes);
          kept.push(piece);
          keptBytes += piece.length;
          record.body = Buffer.concat(kept);
        }
      });
      req.on("end", () => {
        record.bodyComplete = true;
        resolve();
      });
      // An aborted upload never ends; the route that waits for it (/echo) just never answers.
      req.on("error", () => {});
    });
    route(req, res, bodyDone, record).catch((error: unknown) => {
      // A route bug should fail the test visibly, not hang it: answer 500 if still possible.
      if (!res.headersSent && !res.destroyed) sendText(res, 500, `origin error: ${String(error)}`);
      else res.destroy();
    });
  });
  // Keep-alive connections must not outlive the test; close() destroys them, and no timeout of
  // Node's may cut a deliberately slow route (/hang, /stream) short.
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  server.keepAliveTimeout = 5_000;
  server.on("connection", (socket: Socket) => {
    connections += 1;
    connectionIds.set(socket, connections);
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  // A malformed request from a sandbox under test must not crash the test process.
  server.on("clientError", (_error, socket: Socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    else socket.destroy();
  });

  const port = await listen(server, host, 0);
  const origin = `http://${hostForUrl(host)}:${port}`;
  let closing: Promise<void> | undefined;
  return {
    url: (path = "/") => `${origin}${path}`,
    origin,
    host,
    port,
    requests,
    get connections() {
      return connections;
    },
    close: () => (closing ??= closeServer(server, sockets)),
  };
}

async function route(req: IncomingMessage, res: ServerResponse, bodyDone: Promise<void>, record: RecordedRequest): Promise<void> {
  const url = new URL(req.url ?? "/", "http://origin.invalid");
  const query = url.searchParams;
  const path = url.pathname;

  if (path === "/json") return sendJson(res, 200, JSON_BODY);

  if (path === "/text") {
    const bytes = intParam(query, "bytes", 16);
    if (Number.isNaN(bytes)) return sendText(res, 400, "bytes must be a non-negative integer");
    res.writeHead(200, { "content-type": "text/plain; charset=utf-8", "content-length": bytes });
    if (await writeRepeated(res, bytes, TEXT_PATTERN)) res.end();
    return;
  }

  if (path === "/echo") {
    await bodyDone;
    return sendJson(res, 200, {
      method: record.method,
      url: record.url,
      headers: record.headers,
      rawHeaders: record.rawHeaders,
      body: record.body.toString("utf8"),
      bodyBytes: record.bodyBytes,
    });
  }

  const statusMatch = /^\/status\/(\d{3})$/.exec(path);
  if (statusMatch) {
    const status = Number(statusMatch[1]);
    if (status < 200 || status > 599) return sendText(res, 400, "status must be 200-599");
    // 204 and 304 may not carry a body; node:http would drop it and warn.
    if (status === 204 || status === 304) {
      res.writeHead(status);
      res.end();
      return;
    }
    return sendText(res, status, `status ${status}`);
  }

  if (path === "/redirect") {
    const to = query.get("to");
    const status = intParam(query, "status", 302);
    if (to === null) return sendText(res, 400, "to is required");
    if (!REDIRECT_STATUSES.has(status)) return sendText(res, 400, "status must be 301, 302, 303, 307 or 308");
    res.writeHead(status, { location: to, "content-type": "text/plain; charset=utf-8", "content-length": 8 });
    res.end("redirect");
    return;
  }

  if (path === "/redirect-chain") {
    const n = intParam(query, "n", 3);
    const status = intParam(query, "status", 302);
    const hops = intParam(query, "hops", n);
    if (Number.isNaN(n) || Number.isNaN(hops)) return sendText(res, 400, "n must be a non-negative integer");
    if (!REDIRECT_STATUSES.has(status)) return sendText(res, 400, "status must be 301, 302, 303, 307 or 308");
    if (n === 0) return sendJson(res, 200, { done: true, hops });
    res.writeHead(status, { location: `/redirect-chain?n=${n - 1}&status=${status}&hops=${hops}`, "content-length": 0 });
    res.end();
    return;
  }

  if (path === "/stream") {
    const chunks = intParam(query, "chunks", 5);
    const delayMs = intParam(query, "delayMs", 50);
    if (Number.isNaN(chunks) || Number.isNaN(delayMs)) return sendText(res, 400, "chunks and delayMs must be non-negative integers");
    res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
    // Headers go out now, so that a client sees the response start before the first chunk.
    res.flushHeaders();
    for (let i = 0; i < chunks; i++) {
      if (!(await delay(res, delayMs))) return;
      res.write(`chunk ${i}\n`);
    }
    res.end();
    return;
  }

  if (path === "/slow-headers") {
    const ms = intParam(query, "ms", 1_000);
    if (Number.isNaN(ms)) return sendText(res, 400, "ms must be a non-negative integer");
    if (await delay(res, ms)) sendText(res, 200, "slow");
    return;
  }

  if (path === "/hang") return; // close() destroys the socket.

  if (path === "/reset") {
    req.socket.destroy();
    return;
  }

  if (path === "/gzip") {
    const body = gzipSync(JSON.stringify(GZIP_JSON));
    res.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip", "content-length": body.length });
    res.end(body);
    return;
  }

  if (path === "/bomb") {
    const mb = intParam(query, "mb", BOMB_INFLATED_BYTES / (1024 * 1024));
    if (Number.isNaN(mb) || mb < 1 || mb > 4096) return sendText(res, 400, "mb must be 1-4096");
    const body = await gzipBomb(mb * 1024 * 1024);
    res.writeHead(200, {
      "content-type": "application/octet-stream",
      "content-encoding": "gzip",
      "content-length": body.length,
      "x-inflated-bytes": String(mb * 1024 * 1024),
    });
    res.end(body);
    return;
  }

  if (path === "/big") {
    const bytes = intParam(query, "bytes", 1024 * 1024);
    const declare = intParam(query, "declare", bytes);
    if (Number.isNaN(bytes) || Number.isNaN(declare) || declare < bytes) return sendText(res, 400, "bytes and declare must be integers, declare >= bytes");
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": declare });
    if (!(await writeRepeated(res, bytes, "x"))) return;
    // A body shorter than its content-length: the client must see a truncated (failed) body.
    if (declare > bytes) res.destroy();
    else res.end();
    return;
  }

  if (path === "/headers") {
    const set: Record<string, string[]> = {};
    for (const [name, value] of query) (set[name.toLowerCase()] ??= []).push(value);
    try {
      for (const [name, values] of Object.entries(set)) res.setHeader(name, values.length === 1 ? (values[0] ?? "") : values);
    } catch (error) {
      // An invalid name or value (node:http validates both); say so instead of crashing.
      for (const name of Object.keys(set)) res.removeHeader(name);
      return sendText(res, 400, `invalid header: ${(error as Error).message}`);
    }
    return sendJson(res, 200, set);
  }

  if (path === "/set-cookie") {
    res.setHeader("set-cookie", [...SET_COOKIES]);
    return sendText(res, 200, "cookies set");
  }

  return sendJson(res, 404, { error: "not found", path });
}

/** Waits `ms`; resolves false instead if the response is closed first (client gone, or close()). */
function delay(res: ServerResponse, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const onClose = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      res.off("close", onClose);
      resolve(!res.destroyed);
    }, ms);
    res.once("close", onClose);
  });
}

const TRAP_RESPONSE = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 4\r\nconnection: close\r\n\r\ntrap";

/**
 * Starts a trap on `host` (`port` 0 or absent: ephemeral). It counts TCP connections, whatever
 * arrives on them, and answers the first bytes of each with a 200 `trap`, so that an HTTP client
 * that got through sees a response (and a test sees hits > 0) instead of a timeout.
 */
export async function startTrap(host: string, port = 0): Promise<Trap> {
  let hits = 0;
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    hits += 1;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.once("data", () => socket.end(TRAP_RESPONSE));
  });
  const boundPort = await listen(server, host, port);
  const base = `http://${hostForUrl(host)}:${boundPort}`;
  let closing: Promise<void> | undefined;
  return {
    host,
    port: boundPort,
    get hits() {
      return hits;
    },
    url: (path = "/") => `${base}${path}`,
    close: () => (closing ??= closeServer(server, sockets)),
  };
}
