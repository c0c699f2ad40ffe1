/**
 * Which packages a sandbox may import. A pattern names a package (or a scope, or every package)
 * and optionally a semver range the resolved version must satisfy.
 */
import type * as Semver from "semver";
import { lazyModule } from "../../shared/lazy.js";

/** npm's semver, loaded with the first module policy. */
export const semver = lazyModule<typeof Semver>("semver");

export interface ModuleVerdict {
  ok: boolean;
  /** The pattern that admitted the package, or why none did. */
  rule: string;
}

interface Pattern {
  text: string;
  /** "*" for every package, "@scope/*" for a scope, else an exact name. */
  name: string;
  range: string | undefined;
}

/** npm's rules for a package name: lower case, URL-safe, at most 214 characters. */
const PACKAGE_NAME = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/;

export function isPackageName(name: string): boolean {
  return name.length <= 214 && PACKAGE_NAME.test(name);
}

export class ModulePolicy {
  private readonly patterns: Pattern[] = [];
  /** URL patterns: a URL, or a prefix ending in "*". */
  readonly urlPatterns: string[] = [];

  constructor(allow: readonly string[], readonly strict: boolean) {
    for (const text of allow) {
      if (/^https?:/i.test(text)) this.urlPatterns.push(parseUrlPattern(text));
      else this.patterns.push(parsePattern(text));
    }
  }

  /** The URL pattern that admits `url`, if one does. */
  admitsUrl(url: URL): string | undefined {
    const href = url.href;
    return this.urlPatterns.find((pattern) => (pattern.endsWith("*") ? href.startsWith(pattern.slice(0, -1)) : href === pattern));
  }

  /** May `name@version` be imported? `direct`: named by the eval's code (not a dependency). */
  check(name: string, version: string, direct: boolean): ModuleVerdict {
    for (const pattern of this.patterns) {
      if (!nameMatches(pattern.name, name)) continue;
      if (pattern.range !== undefined && !semver().satisfies(version, pattern.range, { includePrerelease: true })) continue;
      return { ok: true, rule: pattern.text };
    }
    if (!direct && !this.strict) return { ok: true, rule: "dependency of an allowed package" };
    return { ok: false, rule: "not in modules.allow" };
  }

  /** Could some version of `name` be allowed? (Checked before anything is downloaded.) */
  mayImport(name: string): boolean {
    return this.patterns.some((pattern) => nameMatches(pattern.name, name));
  }
}

function nameMatches(pattern: string, name: string): boolean {
  if (pattern === "*") return true;
  if (pattern.endsWith("/*")) return name.startsWith(pattern.slice(0, -1));
  return pattern === name;
}

function parseUrlPattern(text: string): string {
  const fail = (why: string) => new TypeError(`modules.allow: "${text}" ${why}`);
  let url: URL;
  try {
    url = new URL(text.endsWith("*") ? text.slice(0, -1) : text);
  } catch {
    throw fail("is not a valid URL pattern (e.g. \"https://esm.sh/*\")");
  }
  if (url.username || url.password) throw fail("holds credentials");
  if (url.hash || (text.endsWith("*") && url.search)) throw fail("may not have a fragment, or a query before its *");
  if (text.endsWith("*") && !url.pathname.endsWith("/")) throw fail("must end in \"/*\" to allow a prefix (a whole path segment)");
  // Normalized, so that the prefix is compared with URLs as the URL parser writes them.
  return text.endsWith("*") ? url.href + "*" : url.href;
}

function parsePattern(text: string): Pattern {
  const fail = (why: string) => new TypeError(`modules.allow: "${text}" ${why}`);
  if (!text.startsWith("npm:")) throw fail('must start with "npm:" (e.g. "npm:lodash-es", "npm:@scope/*", "npm:*") or be a URL pattern ("https://esm.sh/*")');
  const body = text.slice(4);
  if (body === "*") return { text, name: "*", range: undefined };
  const at = body.indexOf("@", 1);
  const name = at === -1 ? body : body.slice(0, at);
  const range = at === -1 ? undefined : body.slice(at + 1);
  if (/^@[a-z0-9][a-z0-9._~-]*\/\*$/.test(name)) {
    if (range !== undefined) throw fail("gives a version range for a whole scope");
    return { text, name, range };
  }
  if (!isPackageName(name)) throw fail(`names no valid npm package ("${name}")`);
  if (range !== undefined && semver().validRange(range) === null) throw fail(`has an invalid semver range ("${range}")`);
  return { text, name, range };
}
