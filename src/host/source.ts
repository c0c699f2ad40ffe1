/**
 * Preparing user source on the host: TypeScript types are stripped (positions preserved), and code
 * that a plain script cannot express — top-level await, import/export — is rewritten into an async
 * function whose result is the completion value (or the default export). Every rewrite keeps the
 * user's lines and, as far as possible, columns where they were, so positions in errors point into
 * the user's source. Results are cached by source text: a transform called a million times is
 * prepared once.
 */
import { parse, type Node, type Program, type Statement, type ModuleDeclaration, type Pattern, type ImportDeclaration } from "acorn";
import { lazyModule } from "../shared/lazy.js";
import { TraceMap } from "@jridgewell/trace-mapping";
import type { SourceKind } from "../protocol/messages.js";
import { ScriptError } from "./errors.js";
import { BoundedCache } from "../shared/bounded-cache.js";

/** Node's own TypeScript stripper (SWC in WebAssembly): ~100 ms to load, so loaded for the first TypeScript. */
const amaro = lazyModule<typeof import("amaro")>("amaro");

/** A syntax error found on the host, with the position V8's message lacks. */
export interface SyntaxHint {
  message: string;
  line: number;
  column: number;
}

/** An import the code names with a string: static (hoisted, the code needs it) or a literal import(). */
export interface SourceImport {
  specifier: string;
  dynamic: boolean;
}

export interface PreparedSource {
  code: string;
  kind: SourceKind;
  imports?: SourceImport[];
  /** Maps positions in `code` back to the user's source, where a TypeScript transform moved them. */
  map?: TraceMap;
  syntaxError?: SyntaxHint;
}

/** "auto": types are stripped when the code does not parse as JavaScript. */
export type Language = "auto" | "js" | "ts";

/** Prepared sources kept, by count and by total size. */
const CACHE_ENTRIES = 512;
const CACHE_CHARS = 16 * 1024 * 1024;
/**
 * Above this size a source is not parsed on the host (parsing megabytes would stall every other
 * sandbox of this host for a while) and not cached: it runs as a plain script, so top-level await,
 * import/export and TypeScript need smaller sources, unless the caller says "ts".
 */
export const LARGE_SOURCE_CHARS = 256 * 1024;
const cache = new BoundedCache<PreparedSource>(CACHE_ENTRIES, CACHE_CHARS);

/** The function that loads a static import (a global of every realm whose eval has imports). */
const STATIC_IMPORT = "$paddock$import";

/** The default export's variable: as long as "export default", so columns after it do not move. */
export const DEFAULT_EXPORT = "$paddock$def";

export function prepareSource(code: string, language: Language): PreparedSource {
  if (code.length > LARGE_SOURCE_CHARS) return language === "ts" ? { code: stripTypes(code).code, kind: "script" } : { code, kind: "script" };
  const key = language + code;
  let prepared = cache.get(key);
  if (!prepared) {
    prepared = prepareUncached(code, language);
    cache.set(key, prepared);
  }
  return prepared;
}

function prepareUncached(code: string, language: Language): PreparedSource {
  const plain = tryParse(code);
  if (plain.ok) return rewrite(code, plain);
  if (language === "js") return { code, kind: "script", syntaxError: plain.error };
  let stripped: { code: string; map?: TraceMap };
  try {
    stripped = stripTypes(code);
  } catch (error) {
    // Not valid TypeScript either. Unless the caller said it is TypeScript, the JavaScript
    // parser's view of the error is the one to report.
    if (language === "ts") throw error;
    return { code, kind: "script", syntaxError: plain.error };
  }
  const parsed = tryParse(stripped.code);
  const map = stripped.map ? { map: stripped.map } : {};
  // What acorn cannot parse goes to V8 as a script: V8 has the last word on syntax (it may know
  // newer syntax than acorn), and acorn's position completes V8's message.
  return parsed.ok ? { ...rewrite(stripped.code, parsed), ...map } : { code: stripped.code, kind: "script", syntaxError: parsed.error, ...map };
}

function stripTypes(code: string): { code: string; map?: TraceMap } {
  try {
    return { code: amaro().transformSync(code, { mode: "strip-only" }).code };
  } catch (error) {
    const { code: errorCode, message } = error as { code?: string; message?: string };
    if (errorCode === "UnsupportedSyntax") {
      // Enums, namespaces, parameter properties need a real transform, which moves code around;
      // its source map leads positions back.
      try {
        const output = amaro().transformSync(code, { mode: "transform", sourceMap: true });
        return { code: output.code, ...(output.map ? { map: new TraceMap(output.map) } : {}) };
      } catch (inner) {
        throw typeScriptError(inner);
      }
    }
    if (errorCode === "InvalidSyntax") throw typeScriptError(error);
    throw new ScriptError(message ?? "TypeScript could not be processed", { errorName: "SyntaxError" });
  }
}

function typeScriptError(error: unknown): ScriptError {
  const { message = "invalid TypeScript", startLine, startColumn } = error as { message?: string; startLine?: number; startColumn?: number };
  return new ScriptError(message.split("\n")[0] ?? message, {
    errorName: "SyntaxError",
    ...(startLine !== undefined ? { line: startLine } : {}),
    ...(startColumn !== undefined ? { column: startColumn + 1 } : {}),
  });
}

type ParseResult = { ok: true; program: Program; module: boolean } | { ok: false; error: SyntaxHint };

function tryParse(code: string): ParseResult {
  try {
    return { ok: true, program: parse(code, { ecmaVersion: "latest", sourceType: "script" }), module: false };
  } catch {
    // not a plain script: maybe top-level await, maybe a module
  }
  try {
    const program = parse(code, { ecmaVersion: "latest", sourceType: "module", allowAwaitOutsideFunction: true, allowHashBang: true });
    const module = program.body.some((node) => node.type.startsWith("Import") || node.type.startsWith("Export"));
    return { ok: true, program: module ? program : parse(code, { ecmaVersion: "latest", sourceType: "script", allowAwaitOutsideFunction: true }), module };
  } catch (error) {
    // The most permissive parse failed: its error is the real syntax error.
    const { message = "invalid syntax", loc } = error as { message?: string; loc?: { line: number; column: number } };
    return { ok: false, error: { message: message.replace(/ \(\d+:\d+\)$/, ""), line: loc?.line ?? 1, column: (loc?.column ?? 0) + 1 } };
  }
}

interface Edit {
  start: number;
  end: number;
  text: string;
}

function applyEdits(code: string, edits: Edit[]): string {
  let out = "";
  let at = 0;
  for (const edit of edits.sort((a, b) => a.start - b.start)) {
    out += code.slice(at, edit.start) + edit.text;
    at = edit.end;
  }
  return out + code.slice(at);
}

/** Text that replaces `code[start, end)` with spaces, keeping line breaks: nothing else moves. */
function blank(code: string, start: number, end: number): Edit {
  return { start, end, text: code.slice(start, end).replace(/[^\n\r]/g, " ") };
}

function rewrite(code: string, parsed: { program: Program; module: boolean }): PreparedSource {
  const { program } = parsed;
  // Code with exports is a module (its result is the default export); code that only imports is
  // a script whose imports are loaded first (its result is its completion value).
  const module = parsed.module && program.body.some((node) => node.type.startsWith("Export"));
  const imports = literalImports(code, program);
  const listed = imports.length ? { imports } : {};
  const topLevelAwait = hasTopLevelAwait(program);
  if (!parsed.module && !topLevelAwait) return { code, kind: "script", ...listed };
  const edits: Edit[] = [];
  const importLines: string[] = [];
  // A hashbang is only valid as a source's very first line, which is now Paddock's.
  if (code.startsWith("#!")) edits.push(blank(code, 0, code.search(/[\n\r]|$/)));
  if (!module && !topLevelAwait) {
    // Imports only: a plain script after a first line of Paddock's that loads them (\`var\`, so a
    // persistent sandbox may import the same names again in a later eval). A "use strict" the
    // code begins with must still begin it.
    for (const node of program.body) if (node.type === "ImportDeclaration") rewriteModuleStatement(code, node, edits, importLines, "var");
    const strict = program.body.some((node) => node.type === "ExpressionStatement" && (node as { directive?: string }).directive === "use strict") ? '"use strict"; ' : "";
    return { code: `${strict}${importLines.join(" ")}\n${applyEdits(code, edits)}`, kind: "prologue", ...listed };
  }
  const hoisted: string[] = [];
  let defaultExport = module ? "undefined" : "";
  for (const node of program.body) {
    if (module || node.type === "ImportDeclaration") {
      defaultExport = rewriteModuleStatement(code, node, edits, importLines, "const") ?? defaultExport;
    } else {
      hoistDeclaration(node, edits, hoisted);
    }
  }
  if (!module) returnCompletionValue(program.body, 0, edits);
  // Imports are hoisted, as in a module: all of them are loaded before the first statement runs.
  // Text inserted at offset 0 goes at the end of the prologue line, so line 1 keeps its columns.
  const lead = importLines.join(" ") + edits.filter((edit) => edit.start === 0 && edit.end === 0).map((edit) => edit.text).join("");
  const body = applyEdits(code, edits.filter((edit) => !(edit.start === 0 && edit.end === 0)));
  // The prologue sits on a line of its own that the carrier numbers 0, so the user's line numbers
  // are unchanged, and the wrapper's own call frames (on line 0) are told apart and left out of stacks.
  const hoist = hoisted.length ? `var ${[...new Set(hoisted)].join(", ")}; ` : "";
  const prologue = `${hoist}((run) => run())(async () => {${module ? ` "use strict"; let ${DEFAULT_EXPORT};` : ""}${lead}`;
  const epilogue = module ? `\n;return ${defaultExport}; })` : "\n})";
  return { code: `${prologue}\n${body}${epilogue}`, kind: "async", ...listed };
}

/** Every import the code names with a string literal: declarations, re-exports, import("…"). */
function literalImports(code: string, program: Program): SourceImport[] {
  const found: SourceImport[] = [];
  for (const node of program.body) {
    if ((node.type === "ImportDeclaration" || node.type === "ExportAllDeclaration" || (node.type === "ExportNamedDeclaration" && node.source)) && typeof node.source?.value === "string") {
      found.push({ specifier: node.source.value, dynamic: false });
    }
  }
  const visit = (node: unknown): void => {
    if (typeof node !== "object" || node === null) return;
    const candidate = node as { type?: string; source?: { type: string; value?: unknown } };
    if (candidate.type === "ImportExpression" && candidate.source?.type === "Literal" && typeof candidate.source.value === "string") {
      found.push({ specifier: candidate.source.value, dynamic: true });
    }
    for (const value of Object.values(node)) {
      if (Array.isArray(value)) value.forEach(visit);
      else if (typeof value === "object") visit(value);
    }
  };
  if (/\bimport\b/.test(code)) program.body.forEach(visit);
  return found;
}

/**
 * Makes the async wrapper return what a script's completion value would have been: the last
 * expression statement, also inside a trailing if/else, try/catch or block. ";return (" goes right
 * after the previous token (`after`), so the expression itself does not move.
 */
function returnCompletionValue(statements: ReadonlyArray<Statement | ModuleDeclaration>, blockStart: number, edits: Edit[]): void {
  const node = statements.at(-1);
  const after = statements.at(-2)?.end ?? blockStart;
  switch (node?.type) {
    case "ExpressionStatement":
      edits.push({ start: after, end: after, text: ";return (" }, { start: node.expression.end, end: node.expression.end, text: ")" });
      break;
    case "BlockStatement":
      returnCompletionValue(node.body, node.start + 1, edits);
      break;
    case "IfStatement":
      returnCompletionValue([node.consequent], node.consequent.start, edits);
      if (node.alternate) returnCompletionValue([node.alternate], node.alternate.start, edits);
      break;
    case "TryStatement":
      returnCompletionValue(node.block.body, node.block.start + 1, edits);
      if (node.handler) returnCompletionValue(node.handler.body.body, node.handler.body.start + 1, edits);
      break;
    case "LabeledStatement":
      returnCompletionValue([node.body], node.body.start, edits);
      break;
    default:
      break;
  }
}

function hasTopLevelAwait(program: Program): boolean {
  let found = false;
  const visit = (node: unknown): void => {
    if (found || typeof node !== "object" || node === null) return;
    const type = (node as Node).type;
    if (type === "AwaitExpression" || (type === "ForOfStatement" && (node as { await?: boolean }).await)) {
      found = true;
      return;
    }
    if (type === "FunctionDeclaration" || type === "FunctionExpression" || type === "ArrowFunctionExpression" || type === "ClassBody") return;
    for (const value of Object.values(node)) {
      if (Array.isArray(value)) value.forEach(visit);
      else if (typeof value === "object") visit(value);
    }
  };
  program.body.forEach(visit);
  return found;
}

/**
 * With top-level await the code runs inside an async function, so its top-level variables would
 * be local to that function; they are declared outside it instead (kept across evals in a
 * persistent sandbox) and assigned inside: `const {a} = x` becomes `   ;({a} = x)`, in place.
 */
function hoistDeclaration(node: Statement | ModuleDeclaration, edits: Edit[], hoisted: string[]): void {
  if (node.type !== "VariableDeclaration" || (node.kind !== "var" && node.kind !== "let" && node.kind !== "const")) return;
  for (const declarator of node.declarations) collectNames(declarator.id, hoisted);
  const keywordEnd = node.start + node.kind.length;
  // The ";" keeps a previous statement without one from swallowing the "(" as a call.
  edits.push({ start: node.start, end: keywordEnd, text: " ".repeat(node.kind.length - 2) + ";(" });
  const last = node.declarations.at(-1)!;
  edits.push({ start: last.end, end: last.end, text: ")" });
}

function collectNames(pattern: Pattern, names: string[]): void {
  switch (pattern.type) {
    case "Identifier":
      names.push(pattern.name);
      break;
    case "ObjectPattern":
      for (const property of pattern.properties) collectNames(property.type === "RestElement" ? property.argument : property.value, names);
      break;
    case "ArrayPattern":
      for (const element of pattern.elements) if (element) collectNames(element, names);
      break;
    case "AssignmentPattern":
      collectNames(pattern.left, names);
      break;
    case "RestElement":
      collectNames(pattern.argument, names);
      break;
    default:
      break;
  }
}

/**
 * Rewrites one module statement in place; returns the name of the default export, if this is it.
 * Imports become awaited import() calls in `importLines` (and blanks where they were).
 */
function rewriteModuleStatement(code: string, node: Statement | ModuleDeclaration, edits: Edit[], importLines: string[], declare: "var" | "const"): string | undefined {
  switch (node.type) {
    case "ImportDeclaration":
      edits.push(blank(code, node.start, node.end));
      importLines.push(importStatement(node, importLines.length, declare));
      return undefined;
    case "ExportAllDeclaration":
      // Re-exports mean nothing to an eval; the module is still loaded, as the code asks.
      edits.push(blank(code, node.start, node.end));
      importLines.push(`${STATIC_IMPORT}(${JSON.stringify(node.source.value)});`);
      return undefined;
    case "ExportNamedDeclaration": {
      if (node.source) {
        edits.push(blank(code, node.start, node.end));
        importLines.push(`${STATIC_IMPORT}(${JSON.stringify(node.source.value)});`);
        return undefined;
      }
      if (node.declaration) {
        edits.push(blank(code, node.start, node.declaration.start));
        return undefined;
      }
      edits.push(blank(code, node.start, node.end));
      const asDefault = node.specifiers.find((s) => exportedName(s.exported) === "default");
      return asDefault ? code.slice(asDefault.local.start, asDefault.local.end) : undefined;
    }
    case "ExportDefaultDeclaration": {
      const declaration = node.declaration;
      if ((declaration.type === "FunctionDeclaration" || declaration.type === "ClassDeclaration") && declaration.id) {
        edits.push(blank(code, node.start, declaration.start));
        return declaration.id.name;
      }
      // "export default" is exactly as long as "$paddock$def =": the expression stays in place.
      const assignment = `${DEFAULT_EXPORT} =`;
      edits.push({ start: node.start, end: declaration.start, text: assignment.padEnd(declaration.start - node.start, " ") });
      if (declaration.type === "FunctionDeclaration" || declaration.type === "ClassDeclaration") edits.push({ start: node.end, end: node.end, text: ";" });
      return DEFAULT_EXPORT;
    }
    default:
      return undefined;
  }
}

/**
 * `import d, { a as b } from "x"` → `const $paddock$i0 = $paddock$import("x"), { default: d, "a": b } = $paddock$i0;`
 * The carrier defines `$paddock$import` for evals with imports: the module namespace, loaded now.
 */
function importStatement(node: ImportDeclaration, index: number, declare: "var" | "const"): string {
  const source = JSON.stringify(node.source.value);
  if (node.specifiers.length === 0) return `${STATIC_IMPORT}(${source});`;
  const namespace = `$paddock$i${index}`;
  const bindings: string[] = [];
  const named: string[] = [];
  for (const specifier of node.specifiers) {
    if (specifier.type === "ImportNamespaceSpecifier") bindings.push(`${specifier.local.name} = ${namespace}`);
    else if (specifier.type === "ImportDefaultSpecifier") named.push(`default: ${specifier.local.name}`);
    else named.push(`${JSON.stringify(exportedName(specifier.imported))}: ${specifier.local.name}`);
  }
  if (named.length) bindings.push(`{ ${named.join(", ")} } = ${namespace}`);
  return `${declare} ${namespace} = ${STATIC_IMPORT}(${source}), ${bindings.join(", ")};`;
}

function exportedName(node: { type: string; name?: string; value?: unknown }): string {
  return node.type === "Identifier" ? String(node.name) : String(node.value);
}
