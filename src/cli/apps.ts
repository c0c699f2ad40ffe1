/**
 * `paddock serve-apps` (every subfolder of a root is an app, see src/apps/server.ts) and
 * `paddock serve <file>` (one file as an app). Both run until SIGINT or SIGTERM, then let the
 * requests in progress finish; a second signal stops at once. What happens (installs, failures, the
 * apps' console output) goes to stderr, each line naming its app.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { App, type AppOptions } from "../apps/app.js";
import { AppServer, type AppServerEvent } from "../apps/server.js";
import { ScriptError } from "../host/errors.js";
import type { LogEntry } from "../capabilities/console/messages.js";

export interface ServeAppsCommandOptions {
  root: string;
  port: number;
  hostname: string | undefined;
  dataDir: string | undefined;
  pollMs: number | undefined;
  pathRouting: boolean;
}

export async function serveAppsCommand(options: ServeAppsCommandOptions): Promise<number> {
  const server = await AppServer.start({
    root: options.root,
    port: options.port,
    pathRouting: options.pathRouting,
    ...(options.hostname !== undefined ? { hostname: options.hostname } : {}),
    ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}),
    ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
    onEvent: (event) => say(describeEvent(event)),
  });
  const names = server.apps().map(({ name }) => name);
  const where = `http://<app>.localhost:${server.port}/${options.pathRouting ? ` or ${server.url}/<app>/` : ""}`;
  say(`paddock serve-apps: serving ${options.root} at ${server.url}: each app at ${where} (${names.length === 0 ? "no apps yet" : `apps: ${names.join(", ")}`})`);
  await untilSignal();
  say("paddock serve-apps: stopping (the requests in progress finish first)");
  await server.close();
  return 0;
}

export interface ServeCommandOptions extends Pick<AppOptions, "memoryMb" | "requestTimeoutMs" | "maxLogBytes" | "net" | "modules"> {
  port: number;
  hostname: string | undefined;
}

export async function serveCommand(file: string, options: ServeCommandOptions): Promise<number> {
  const { port, hostname, ...limits } = options;
  const name = basename(file);
  const app = await App.create({
    ...limits,
    sources: { [name]: readFileSync(file, "utf8") },
    entry: name,
    onLog: (entry) => say(logLine(name, entry)),
    onError: (error, request) => say(`[${name}] ${request.method} ${request.url}: ${describeError(error)}`),
  });
  const listener = await app.listen({ port, ...(hostname !== undefined ? { hostname } : {}) }).catch(async (error: unknown) => {
    await app.close();
    throw error;
  });
  say(`paddock serve: ${file} at ${listener.url}/`);
  await untilSignal();
  say("paddock serve: stopping (the requests in progress finish first)");
  await Promise.all([listener.close(), app.close()]);
  return 0;
}

function describeEvent(event: AppServerEvent): string {
  switch (event.type) {
    case "installed":
    case "updated":
      return `paddock serve-apps: ${event.type} ${event.app} (started in ${event.ms} ms)`;
    case "removed":
      return `paddock serve-apps: removed ${event.app}`;
    case "failed":
      return `paddock serve-apps: ${event.app} did not start${event.serving ? " (its previous version goes on)" : " (not served)"}${event.retryInMs === undefined ? "" : `, trying again in ${event.retryInMs / 1000} s`}: ${describeError(event.error)}`;
    case "ignored":
      return `paddock serve-apps: ignored the folder "${event.folder}": ${event.reason}`;
    case "scan-failed":
      return `paddock serve-apps: could not read the apps' folder: ${describeError(event.error)}`;
    case "log":
      return logLine(event.app, event.entry);
    case "request-failed":
      return `[${event.app}] ${event.request.method} ${event.request.url}: ${describeError(event.error)}`;
  }
}

/** A ScriptError's stack is the app's own frames (where its bug is); other errors say enough in their message. */
function describeError(error: Error): string {
  return error instanceof ScriptError ? (error.stack ?? error.message) : `${error.name}: ${error.message}`;
}

function logLine(app: string, entry: LogEntry): string {
  return `[${app}] ${entry.message}`;
}

function say(line: string): void {
  process.stderr.write(line + "\n");
}

/** Resolves on the first SIGINT or SIGTERM; a second one ends the process at once. */
function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const first = () => {
      process.off("SIGINT", first).off("SIGTERM", first);
      const again = () => process.exit(130);
      process.once("SIGINT", again).once("SIGTERM", again);
      resolve();
    };
    process.once("SIGINT", first).once("SIGTERM", first);
  });
}
