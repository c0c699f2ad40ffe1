/**
 * Host-owned HTTP listeners for apps: Node's own HTTP server parses every request (no parser of
 * ours), with timeouts against slow clients and a bound on header size; each request and its
 * response stream between the socket and the app's carrier with backpressure both ways. The app
 * never holds a socket, and nothing of the connection (hop-by-hop headers, framing) is its to set.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { App, ResponseSink } from "./app.js";
import type { ResponseHead } from "../host/serve.js";

export interface ListenOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  hostname?: string;
  /** A client must send its whole head within this (default 10,000 ms), else 408. */
  headersTimeoutMs?: number;
  /** A client must send its whole request within this (default 60,000 ms), else 408. */
  requestBodyTimeoutMs?: number;
  /** Largest request head (default 16 KiB); a larger one is answered 431. */
  maxHeaderBytes?: number;
}

export interface Listener {
  url: string;
  port: number;
  hostname: string;
  /** Stops accepting connections and closes idle ones; requests in progress finish. */
  close(): Promise<void>;
}

/** Headers about the connection, not the message: the host's, never passed through. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "http2-settings"]);

/** An HTTP server for `route`'s apps, with the host's limits on slow and oversized clients. */
export function createAppServer(route: (request: IncomingMessage, response: ServerResponse) => void, options: ListenOptions = {}): Server {
  const headersTimeout = options.headersTimeoutMs ?? 10_000;
  const server = createServer(
    {
      headersTimeout,
      requestTimeout: Math.max(headersTimeout, options.requestBodyTimeoutMs ?? 60_000),
      maxHeaderSize: options.maxHeaderBytes ?? 16 * 1024,
      keepAliveTimeout: 5_000,
      // Timeouts are checked this often (Node's default, 30 s, would let a slow client stay 30 s longer).
      connectionsCheckingInterval: 1_000,
      insecureHTTPParser: false,
    },
    route,
  );
  // A client that breaks HTTP gets a 400 and its connection closed; the server goes on.
  server.on("clientError", (error: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return socket.destroy();
    const status = error.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : error.code === "ERR_HTTP_REQUEST_TIMEOUT" ? "408 Request Timeout" : "400 Bad Request";
    socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
  });
  return server;
}

/** Listens on `options.port` (0: a free one) and resolves with the listener's address. */
export function listen(server: Server, options: ListenOptions = {}): Promise<Listener> {
  const hostname = options.hostname ?? "127.0.0.1";
  return new Promise<Listener>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, hostname, () => {
      server.off("error", reject);
      const { port } = server.address() as AddressInfo;
      const host = hostname.includes(":") ? `[${hostname}]` : hostname;
      resolve({
        url: `http://${host}:${port}`,
        port,
        hostname,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeIdleConnections();
          }),
      });
    });
  });
}

/** Hands a request the server parsed to `app`; `target` is the path the app sees (a prefix removed, say). */
export function serveNodeRequest(app: App, request: IncomingMessage, response: ServerResponse, target = request.url ?? "/"): void {
  const method = request.method ?? "GET";
  let url: string;
  try {
    // An absolute-form target ("GET http://x/p") gives its path; the host is the Host header's.
    // Joined as text, so that a path like "//elsewhere/x" stays a path.
    url = new URL(`http://${hostOf(request)}${target.startsWith("/") ? target : pathOf(target)}`).href;
  } catch {
    response.writeHead(400, { "content-length": "0", connection: "close" }).end();
    return;
  }
  const headers: Array<[string, string]> = [];
  const raw = request.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!HOP_BY_HOP.has(name)) headers.push([name, raw[i + 1]!]);
  }
  const length = request.headers["content-length"];
  const hasBody = method !== "GET" && method !== "HEAD" && ((length !== undefined && length !== "0") || request.headers["transfer-encoding"] !== undefined);
  const whenGone = (abort: () => void) =>
    response.once("close", () => {
      if (!response.writableFinished) abort();
    });
  void app.handle({ method, url, headers, body: hasBody }, hasBody ? request : undefined, length === undefined ? undefined : Number(length), nodeSink(response), whenGone);
}

function pathOf(target: string): string {
  try {
    const url = new URL(target);
    return url.pathname + url.search;
  } catch {
    return "/";
  }
}

/** The Host header if it is a plain host[:port], else "localhost": it becomes the URL the app sees. */
function hostOf(request: IncomingMessage): string {
  const host = request.headers.host;
  return host !== undefined && /^[a-z0-9.-]{1,253}(?::\d{1,5})?$/i.test(host) ? host : "localhost";
}

/** Writes the app's response to the socket, passing chunks on only as the socket takes them. */
function nodeSink(response: ServerResponse): ResponseSink {
  let failed = false;
  const guard = (write: () => void) => {
    if (failed || response.destroyed) return;
    try {
      write();
    } catch {
      // The app's framing did not hold (a Content-Length its body did not match): the connection
      // cannot be trusted to frame the next response, so it ends.
      failed = true;
      response.destroy();
    }
  };
  /** Writes the head (not yet sent: Node sends it with the first bytes of the body); false if Node refused it. */
  const writeHead = ({ status, statusText, headers }: ResponseHead, length?: number): boolean => {
    const flat: string[] = [];
    let declared = false;
    for (const [name, value] of headers) {
      if (HOP_BY_HOP.has(name)) continue;
      if (name === "content-length") declared = true;
      flat.push(name, value);
    }
    if (length !== undefined && !declared && status !== 204 && status !== 304) flat.push("content-length", String(length));
    // A body longer or shorter than the Content-Length the app declared is an error, never two
    // responses on one connection.
    response.strictContentLength = true;
    try {
      response.writeHead(status, statusText, flat);
      return true;
    } catch {
      // A head Node will not write (a reason phrase with control characters, say): 502.
      guard(() => response.writeHead(502, { "content-type": "text/plain; charset=utf-8" }).end("Bad Gateway\n"));
      failed = true;
      return false;
    }
  };
  return {
    head(head) {
      writeHead(head);
    },
    whole(head, body) {
      // One write for head and body, with their length: the common case of a small response.
      if (writeHead(head, body?.byteLength ?? 0)) guard(() => response.end(body));
    },
    data(chunk, passed) {
      if (failed || response.destroyed) return passed();
      guard(() => {
        if (response.write(chunk)) passed();
        else response.once("drain", passed);
      });
    },
    end() {
      guard(() => response.end());
    },
    broken() {
      failed = true;
      response.destroy();
    },
  };
}
