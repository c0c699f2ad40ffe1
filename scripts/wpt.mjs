#!/usr/bin/env node
// Web Platform Tests conformance runner (opt-in; not part of `npm test`).
//
// Runs a selection of WPT `*.any.js` files (URL, Encoding, atob/btoa, structured clone, Headers/
// Request/Response, WebCrypto, Streams, DOM events/abort, FileAPI, Compression) twice: through
// Paddock's `Sandbox.eval` (a fresh realm per file) and with the same Deno binary outside any sandbox
// (`deno run --no-prompt`, no permissions). Both runs get the same script: a small prelude,
// testharness.js, the file's `// META: script=` includes, the test file, and a completion callback
// that returns `{ status, message, tests: [{ name, status, message }] }`. It then reports the pass
// rates of both, and the subtests that fail ONLY in Paddock (pass in plain Deno, fail in Paddock),
// with their messages grouped so the causes stand out.
//
// WPT is not vendored: point the runner at a checkout (any recent web-platform-tests/wpt tree, or
// just the directories listed in DIRS plus resources/, common/, interfaces/ and fetch/data-urls/).
//
//   node scripts/build.mjs
//   node scripts/wpt.mjs --wpt /path/to/wpt [--filter url/] [--out /tmp/wpt-report.json] [--concurrency 2]
//   PADDOCK_WPT=/path/to/wpt node scripts/wpt.mjs
//
// The Deno binary is Paddock's own (`PADDOCK_DENO`, else the pinned npm package). Files that need a
// WPT server (fetch of server resources, XMLHttpRequest, `.sub.js` substitution) or a window global
// are skipped and listed. Static data files that a few tests load with fetch() (URL test data, the
// base64 table, the IDL files of idlharness tests) are served from the checkout by a fetch shim in
// the prelude, identically in both engines. Paddock's resource limits are raised (memory, timers,
// source, logs) so that they do not show up as conformance failures; its time limit is per file.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const { values: args } = parseArgs({
  options: {
    wpt: { type: "string", default: process.env.PADDOCK_WPT },
    out: { type: "string", default: "/tmp/wpt-report.json" },
    filter: { type: "string" },
    concurrency: { type: "string", default: "2" },
  },
});
if (!args.wpt || !existsSync(join(args.wpt, "resources/testharness.js"))) {
  console.error("usage: node scripts/wpt.mjs --wpt <wpt checkout> (or PADDOCK_WPT=...) [--filter s] [--out file] [--concurrency n]");
  process.exit(2);
}
const WPT = args.wpt;
const CONCURRENCY = Math.max(1, Math.min(2, Number(args.concurrency) || 2)); // the machine is small and shared
const BUDGET_MS = { normal: 30_000, long: 90_000 }; // harness timeout(): unfinished subtests become TIMEOUT
const GRACE_MS = 20_000; // past budget + grace the engine is stopped and the whole file counts as failed

const { Sandbox, configurePool } = await import(join(root, "dist/src/index.js"));
const { denoBinary } = await import(join(root, "dist/src/host/deno-binary.js"));
const DENO = denoBinary();
// The build under test (the host reads dist/carrier.js once, when its first carrier starts).
const CARRIER = createHash("sha256").update(readFileSync(join(root, "dist/carrier.js"))).digest("hex").slice(0, 12);

// ---------------------------------------------------------------------------------------------
// Selection

const DIRS = [
  "url", "encoding", "html/webappapis/atob", "html/webappapis/structured-clone",
  "fetch/api/headers", "fetch/api/request", "fetch/api/response", "WebCryptoAPI", "streams",
  "dom/events", "dom/abort", "FileAPI", "compression",
];
// Tests whose only fetch() is of static test data in the checkout (served by the prelude's shim).
const DATA_FETCH = new Set(["url/url-constructor.any.js", "url/url-origin.any.js", "url/url-setters.any.js", "html/webappapis/atob/base64.any.js"]);
const WORKERISH = /^(worker|dedicatedworker|sharedworker|serviceworker|shadowrealm|jsshell)/;

function walk(dir) {
  if (!existsSync(join(WPT, dir))) return [];
  return readdirSync(join(WPT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = posix.join(dir, entry.name);
    return entry.isDirectory() ? walk(path) : entry.name.endsWith(".any.js") ? [path] : [];
  });
}

function meta(source) {
  const out = { script: [], global: null, timeout: "normal", title: null, variant: [] };
  for (const [, key, value] of source.matchAll(/^\/\/ META: *([a-z]+)=(.*)$/gm)) {
    if (key === "script" || key === "variant") out[key].push(value.trim());
    else if (key === "timeout") out.timeout = value.trim() === "long" ? "long" : "normal";
    else out[key] = value.trim();
  }
  return out;
}

const read = (path) => readFileSync(join(WPT, path), "utf8");
// wptserve serves this path from elsewhere in the tree.
const ALIASES = { "resources/WebIDLParser.js": "resources/webidl2/lib/webidl2.js" };
function resolveInclude(test, src) {
  const path = src.startsWith("/") ? src.slice(1) : posix.normalize(posix.join(posix.dirname(test), src));
  return ALIASES[path] ?? path;
}

/** Either { skip: reason } or what is needed to build the file's script. */
function prepare(file) {
  const source = read(file);
  const m = meta(source);
  const globals = (m.global ?? "window,dedicatedworker").split(",").map((g) => g.trim());
  if (!globals.some((g) => WORKERISH.test(g))) return { skip: `global=${m.global}: window only` };
  const includes = m.script.map((src) => resolveInclude(file, src));
  const missing = includes.find((path) => !existsSync(join(WPT, path)));
  if (missing) return { skip: `include ${missing} is missing from the checkout` };
  if (includes.some((path) => path.endsWith(".sub.js"))) return { skip: "needs server-side substitution (.sub.js)" };
  const texts = includes.map(read);
  if ([source, ...texts].some((text) => /\bXMLHttpRequest\b/.test(text))) return { skip: "uses XMLHttpRequest (needs a server)" };
  if (texts.some((text) => /\bfetch\(\s*[`'"][^`'"]*\.py/.test(text))) return { skip: "an include fetches a server script (.py)" };
  if (/\bfetch\(/.test(source) && !DATA_FETCH.has(file)) return { skip: "fetches server resources" };

  // Static files the fetch shim serves, by absolute path.
  const files = {};
  if (DATA_FETCH.has(file)) {
    for (const [, url] of source.matchAll(/\bfetch\(\s*["']([^"']+)["']/g)) files["/" + resolveInclude(file, url)] = read(resolveInclude(file, url));
  }
  for (const [, list] of source.matchAll(/\bidl_test\(\s*(\[[^\]]*\]\s*,\s*\[[^\]]*\])/g)) {
    for (const [, name] of list.matchAll(/["']([\w.-]+)["']/g)) {
      if (existsSync(join(WPT, `interfaces/${name}.idl`))) files[`/interfaces/${name}.idl`] = read(`interfaces/${name}.idl`);
    }
  }
  return {
    title: m.title ?? posix.basename(file).replace(/\..*$/, ""),
    budgetMs: BUDGET_MS[m.timeout],
    variants: m.variant.length ? m.variant : [""],
    scripts: [...includes.map((path, i) => ["/" + path, texts[i]]), ["/" + file, source]],
    files,
  };
}

// ---------------------------------------------------------------------------------------------
// The script both engines run. It evaluates to a promise of the summary.

const HARNESS = read("resources/testharness.js");

function program(file, variant, prep) {
  const base = "http://web-platform.test:8000";
  const href = `${base}/${file.replace(/\.any\.js$/, ".any.worker.html")}${variant}`;
  const payload = {
    title: prep.title, budgetMs: prep.budgetMs, harness: HARNESS, scripts: prep.scripts, files: prep.files,
    location: { href, origin: base, protocol: "http:", host: "web-platform.test:8000", hostname: "web-platform.test", port: "8000", pathname: new URL(href).pathname, search: variant, hash: "" },
  };
  return `(async () => {
  const W = ${JSON.stringify(payload)};
  const g = globalThis, realSetTimeout = setTimeout;
  // A worker-like global: testharness.js needs \`self\`; the any.js wrappers define GLOBAL, META_TITLE.
  if (typeof g.self === "undefined") g.self = g;
  g.GLOBAL = { isWindow: () => false, isWorker: () => false, isShadowRealm: () => false };
  g.META_TITLE = W.title;
  if (g.location === undefined) Object.defineProperty(g, "location", { value: { ...W.location, toString() { return this.href; } }, configurable: true, writable: true });
  if (Object.keys(W.files).length) {
    const realFetch = g.fetch;
    g.fetch = function fetch(input, init) {
      const url = new URL(typeof input === "string" ? input : input.url, W.location.href);
      if (url.origin === W.location.origin && Object.hasOwn(W.files, url.pathname)) return Promise.resolve(new Response(W.files[url.pathname]));
      return realFetch(input, init);
    };
  }
  let loadError = null;
  const load = (name, code) => {
    try { (0, eval)(code + "\\n//# sourceURL=" + name); return true; }
    catch (e) { loadError ??= name + ": " + (e && e.name ? e.name + ": " + e.message : String(e)); return false; }
  };
  // Plain Deno's global is an EventTarget, Paddock's is not: testharness.js must not see either's
  // global addEventListener, so that uncaught errors are treated alike in both.
  const ael = Object.getOwnPropertyDescriptor(g, "addEventListener");
  Object.defineProperty(g, "addEventListener", { value: undefined, configurable: true, writable: true });
  const harnessLoaded = load("/resources/testharness.js", W.harness);
  if (ael) Object.defineProperty(g, "addEventListener", ael); else delete g.addEventListener;
  if (!harnessLoaded) return { status: "HARNESS_ERROR", message: loadError, tests: [] };
  const finished = new Promise((resolve) => g.add_completion_callback((tests, status) => resolve({ tests, status })));
  realSetTimeout(() => g.timeout(), W.budgetMs);
  // The includes and the test run as one script: separate indirect evals would not share their
  // top-level let/const/class declarations as a page's classic scripts do.
  load(W.scripts.at(-1)[0], W.scripts.map(([name, code]) => "// " + name + "\\n" + code).join("\\n;\\n"));
  const { tests, status } = await finished;
  const TEST = ["PASS", "FAIL", "TIMEOUT", "NOTRUN", "PRECONDITION_FAILED"], HARNESS_STATUS = ["OK", "ERROR", "TIMEOUT", "PRECONDITION_FAILED"];
  const text = (m) => (m == null ? null : String(m).slice(0, 2000));
  return {
    status: loadError && status.status === 0 ? "ERROR" : HARNESS_STATUS[status.status] ?? String(status.status),
    message: text(loadError ?? status.message),
    tests: tests.map((t) => ({ name: String(t.name), status: TEST[t.status] ?? String(t.status), message: text(t.message) })),
  };
})()`;
}

// ---------------------------------------------------------------------------------------------
// Engines

const children = new Set();
const sandboxes = new Set();
const tmp = mkdtempSync(join(tmpdir(), "paddock-wpt-"));
const MARK = "@@PADDOCK-WPT-RESULT@@";
let jobCounter = 0;

async function runPaddock(source, budgetMs) {
  let sb;
  try {
    sb = await Sandbox.create({
      timeoutMs: budgetMs + GRACE_MS, memoryMb: 512, maxTimers: 100_000, maxSourceBytes: 64 * 2 ** 20,
      maxLogBytes: 64 * 2 ** 20, maxResultBytes: 256 * 2 ** 20,
    });
    sandboxes.add(sb);
    return await sb.eval(source, { filename: "wpt.js" });
  } catch (error) {
    return { status: "ENGINE_ERROR", message: `${error.name}: ${error.message}`, tests: [] };
  } finally {
    if (sb) {
      sandboxes.delete(sb);
      await sb.close();
    }
  }
}

function runDeno(source, budgetMs) {
  // Both engines hide their own way of reporting stray errors: Deno would otherwise exit on an
  // unhandled rejection. Deno.exit ends the run like the end of an eval ends Paddock's timers.
  const file = join(tmp, `job-${++jobCounter}.js`);
  writeFileSync(file, `const exit = Deno.exit;
addEventListener("unhandledrejection", (e) => e.preventDefault());
addEventListener("error", (e) => e.preventDefault());
const result = await ${source};
console.log("\\n${MARK}" + JSON.stringify(result));
exit(0);
`);
  return new Promise((resolve) => {
    const child = spawn(DENO, ["run", "--no-prompt", "--no-config", "--no-lock", "-q", file], {
      cwd: tmp, env: { ...process.env, DENO_DIR: join(tmp, "deno-dir"), NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(child);
    const out = [], err = [];
    child.stdout.on("data", (chunk) => out.push(chunk));
    child.stderr.on("data", (chunk) => err.length < 64 && err.push(chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), budgetMs + GRACE_MS);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      rmSync(file, { force: true });
      const stdout = Buffer.concat(out).toString();
      const at = stdout.lastIndexOf(MARK);
      if (at >= 0) {
        try { return resolve(JSON.parse(stdout.slice(at + MARK.length).split("\n")[0])); } catch {}
      }
      const why = signal === "SIGKILL" ? `timed out after ${budgetMs + GRACE_MS} ms` : `exited with ${code ?? signal}`;
      const stderr = Buffer.concat(err).toString().trim().split("\n").slice(0, 3).join(" | ");
      resolve({ status: "ENGINE_ERROR", message: `deno ${why}${stderr ? ": " + stderr : ""}`, tests: [] });
    });
  });
}

function cleanup() {
  for (const child of children) child.kill("SIGKILL");
  for (const sb of sandboxes) void sb.close();
  configurePool({ size: 0 });
  rmSync(tmp, { recursive: true, force: true });
}
for (const signal of ["SIGINT", "SIGTERM"]) process.once(signal, () => { cleanup(); process.exit(130); });

// ---------------------------------------------------------------------------------------------
// Run

const selected = DIRS.flatMap(walk).sort().filter((file) => !args.filter || file.includes(args.filter));
const skipped = [];
const entries = [];
for (const file of selected) {
  const prep = prepare(file);
  if (prep.skip) skipped.push({ file, reason: prep.skip });
  else for (const variant of prep.variants) entries.push({ file, variant, id: file + variant, prep });
}
console.error(`wpt: ${entries.length} runs from ${selected.length - skipped.length} files (${skipped.length} skipped); carrier ${CARRIER}; deno ${DENO}`);

configurePool({ size: 1 });
const jobs = entries.flatMap((entry) => [[entry, "paddock"], [entry, "deno"]]);
let next = 0, finishedJobs = 0;
const started = Date.now();
async function worker() {
  while (next < jobs.length) {
    const [entry, engine] = jobs[next++];
    const source = program(entry.file, entry.variant, entry.prep);
    const t0 = Date.now();
    entry[engine] = await (engine === "paddock" ? runPaddock : runDeno)(source, entry.prep.budgetMs);
    entry[engine].ms = Date.now() - t0;
    if (++finishedJobs % 20 === 0 || finishedJobs === jobs.length) {
      console.error(`  ${finishedJobs}/${jobs.length} runs, ${Math.round((Date.now() - started) / 1000)} s`);
    }
  }
}
try {
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
} finally {
  cleanup();
}

// ---------------------------------------------------------------------------------------------
// Compare and report

/** Subtests by name (a repeated name gets " #2", " #3"...). */
function byName(result) {
  const map = new Map();
  for (const test of result.tests) {
    let key = test.name, n = 1;
    while (map.has(key)) key = `${test.name} #${++n}`;
    map.set(key, test);
  }
  return map;
}
function missing(result, index) {
  if (result.status === "ENGINE_ERROR" || result.status === "HARNESS_ERROR") return { status: "MISSING", message: `file failed: ${result.message}` };
  // Say what the engine did instead: a subtest of another name at that position (a name built from
  // something that differs between engines), or the failure that stopped the file short.
  const other = result.tests[index]?.name;
  if (other !== undefined) return { status: "MISSING", message: `subtest not reported; at its position: ${JSON.stringify(other)}` };
  const failure = result.tests.find((test) => test.status !== "PASS");
  const why = failure ? `first failure in the file: ${failure.message}` : `the file ended after ${result.tests.length} subtests`;
  return { status: "MISSING", message: `subtest not reported; ${why}` };
}
// A message without what is particular to one subtest: function sources, long or single-quoted
// values, numbers. What is left names the assertion and the cause.
const groupKey = (message) =>
  (message ?? "(no message)").replace(/\s+/g, " ")
    .replace(/^(assert_throws_\w+|promise_rejects_\w+): .*?(?=function ")/, "$1: ")
    .replace(/function "(?:[^"\\]|\\.)*"/g, 'function "…"')
    .replace(/threw object ".*?" \("(\w+)"\)/g, 'threw object "…" ("$1")')
    .replace(/(?<!object )"(?:[^"\\]|\\.){25,}?"(?= |\)|$|,|:)/g, '"…"')
    .replace(/'[^']*'/g, "'…'")
    .replace(/\b\d+\b/g, "N")
    .slice(0, 240);

const totals = { paddock: { passed: 0 }, deno: { passed: 0 }, subtests: 0, paddockOnly: 0, denoOnly: 0 };
const groups = new Map();
const report = [];
for (const entry of entries) {
  const p = byName(entry.paddock), d = byName(entry.deno);
  const names = [...new Set([...d.keys(), ...p.keys()])];
  const subtests = [];
  let paddockOnly = 0;
  const position = (map, name) => [...map.keys()].indexOf(name);
  for (const name of names) {
    const pt = p.get(name) ?? missing(entry.paddock, position(d, name)), dt = d.get(name) ?? missing(entry.deno, position(p, name));
    totals.subtests++;
    if (pt.status === "PASS") totals.paddock.passed++;
    if (dt.status === "PASS") totals.deno.passed++;
    const only = dt.status === "PASS" && pt.status !== "PASS";
    if (only) {
      paddockOnly++;
      const key = `${pt.status}: ${groupKey(pt.message)}`;
      const group = groups.get(key) ?? groups.set(key, { count: 0, files: new Set(), example: pt.message }).get(key);
      group.count++;
      group.files.add(entry.id);
    }
    if (pt.status === "PASS" && dt.status !== "PASS") totals.denoOnly++;
    subtests.push({ name, paddock: { status: pt.status, message: pt.message }, deno: { status: dt.status, message: dt.message }, paddockOnly: only });
  }
  totals.paddockOnly += paddockOnly;
  const harness = (r) => ({ status: r.status, message: r.message, ms: r.ms, subtests: r.tests.length });
  report.push({ file: entry.id, paddock: harness(entry.paddock), deno: harness(entry.deno), subtests: subtests.length, paddockOnly, results: subtests });
}

const pct = (n, of) => (of ? ((100 * n) / of).toFixed(1) + "%" : "-");
const sortedGroups = [...groups.entries()].sort((a, b) => b[1].count - a[1].count);
writeFileSync(args.out, JSON.stringify({
  wpt: WPT, deno: DENO, carrier: CARRIER, date: new Date().toISOString(), filter: args.filter ?? null,
  totals: { runs: entries.length, ...totals }, skipped,
  failureGroups: sortedGroups.map(([key, g]) => ({ key, count: g.count, files: [...g.files], example: g.example })),
  files: report,
}, null, 1));

const line = (cells, widths) => cells.map((c, i) => (i ? String(c).padStart(widths[i]) : String(c).padEnd(widths[i]))).join("  ");
console.log(`\nWPT conformance: Paddock Sandbox.eval (dist/carrier.js ${CARRIER}) vs plain Deno`);
console.log(`${entries.length} runs of ${selected.length - skipped.length} files (variants run separately); ${skipped.length} files skipped`);
console.log(line(["engine", "subtests", "passed", "%"], [10, 9, 8, 7]));
for (const engine of ["deno", "paddock"]) console.log(line([engine, totals.subtests, totals[engine].passed, pct(totals[engine].passed, totals.subtests)], [10, 9, 8, 7]));
console.log(`failing only in Paddock: ${totals.paddockOnly} (${pct(totals.paddockOnly, totals.subtests)}); passing only in Paddock: ${totals.denoOnly}`);

const worst = report.filter((r) => r.paddockOnly > 0 || r.paddock.status === "ENGINE_ERROR").sort((a, b) => b.paddockOnly - a.paddockOnly);
if (worst.length) {
  console.log(`\nFiles with Paddock-only failures (${worst.length}):`);
  const w = Math.max(...worst.map((r) => r.file.length));
  for (const r of worst) console.log(line([r.file, `${r.paddockOnly}/${r.subtests}`, r.paddock.status === "OK" ? "" : `${r.paddock.status}: ${(r.paddock.message ?? "").slice(0, 100)}`], [w, 10, 0]));
}
if (sortedGroups.length) {
  console.log(`\nPaddock-only failures by message (${sortedGroups.length} groups):`);
  for (const [key, g] of sortedGroups.slice(0, 40)) console.log(`${String(g.count).padStart(6)}  ${key}  [${g.files.size} file${g.files.size > 1 ? "s" : ""}]`);
}
if (skipped.length) {
  console.log(`\nSkipped files (${skipped.length}):`);
  for (const reason of new Set(skipped.map((s) => s.reason))) {
    console.log(`  ${reason}: ${skipped.filter((s) => s.reason === reason).map((s) => s.file).join(", ")}`);
  }
}
console.log(`\nfull report: ${args.out}`);
