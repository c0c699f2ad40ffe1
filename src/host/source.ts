/**
 * Preparing user source on the host: TypeScript types are stripped (positions preserved), and code
 * that a plain script cannot express — top-level await, import/export — is rewritten into an async
 * function whose result is the completion value (or the default export). Results are cached by
 * source text: a transform called a million times is prepared once.
 */
import { parse, type Node, type Program, type Statement, type ModuleDeclaration, type Pattern } from "acorn";
import { transformSync } from "amaro";
import type { SourceKind } from "../protocol/messages.js";
import { PolicyError, ScriptError } from "./errors.js";

export interface PreparedSource {
  code: string;
  kind: SourceKind;
}

/** "auto": types are stripped when the code does not parse as JavaScript. */
export type Language = "auto" | "js" | "ts";

const CACHE_SIZE = 512;
const cache = new Map<string, PreparedSource>();

/** Marker names unlikely to collide with user code. */
const DEFAULT_EXPORT = "$paddock$default";

export function prepareSource(code: string, language: Language): PreparedSource {
  const key = language + code;
  const hit = cache.get(key);
  if (hit) {
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  const prepared = prepareUncached(code, language);
  if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value!);
  cache.set(key, prepared);
  return prepared;
}

function prepareUncached(code: string, language: Language): PreparedSource {
  const plain = tryParse(code);
  if (plain) return rewrite(code, plain);
  if (language === "js") return { code, kind: "script" };
  let javascript: string;
  try {
    javascript = stripTypes(code);
  } catch (error) {
    // Not valid TypeScript either. Unless the caller said it is TypeScript, V8's own message on
    // the original code is the clearer one.
    if (language === "ts") throw error;
    return { code, kind: "script" };
  }
  const parsed = tryParse(javascript);
  // Anything acorn cannot parse goes to V8 as a script: V8 reports the syntax error (with its
  // position), or runs syntax newer than acorn knows.
  return parsed ? rewrite(javascript, parsed) : { code: javascript, kind: "script" };
}

function stripTypes(code: string): string {
  try {
    return transformSync(code, { mode: "strip-only" }).code;
  } catch (error) {
    const { code: errorCode, message } = error as { code?: string; message?: string };
    if (errorCode === "UnsupportedSyntax") {
      // enums, namespaces, parameter properties: these need a real transform (positions may move).
      try {
        return transformSync(code, { mode: "transform", sourceMap: false }).code;
      } catch (inner) {
        throw typeScriptError(inner);
      }
    }
    if (errorCode === "InvalidSyntax") throw typeScriptError(error);
    throw new ScriptError(message ?? "TypeScript could not be processed", { errorName: "SyntaxError" });
  }
}

function typeScriptError(error: unknown): ScriptError {
  const { message = "invalid TypeScript" } = error as { message?: string };
  const position = /:(\d+):(\d+)/.exec(message);
  const details = { errorName: "SyntaxError", line: position ? Number(position[1]) : undefined, column: position ? Number(position[2]) : undefined };
  return new ScriptError(message.split("\n")[0] ?? message, details);
}

function tryParse(code: string): { program: Program; module: boolean } | undefined {
  try {
    return { program: parse(code, { ecmaVersion: "latest", sourceType: "script" }), module: false };
  } catch {
    // not a plain script: maybe top-level await, maybe a module
  }
  try {
    const program = parse(code, { ecmaVersion: "latest", sourceType: "module", allowAwaitOutsideFunction: true, allowHashBang: true });
    const module = program.body.some((node) => node.type.startsWith("Import") || node.type.startsWith("Export"));
    return { program: module ? program : parse(code, { ecmaVersion: "latest", sourceType: "script", allowAwaitOutsideFunction: true }), module };
  } catch {
    return undefined;
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

function rewrite(code: string, { program, module }: { program: Program; module: boolean }): PreparedSource {
  if (!module && !hasTopLevelAwait(program)) return { code, kind: "script" };
  const edits: Edit[] = [];
  const hoisted: string[] = [];
  let defaultExport = module ? "undefined" : "";
  for (const node of program.body) {
    if (module) {
      defaultExport = rewriteModuleStatement(code, node, edits) ?? defaultExport;
    } else {
      hoistDeclaration(code, node, edits, hoisted);
    }
  }
  if (!module) returnCompletionValue(program.body.at(-1), edits);
  const body = applyEdits(code, edits);
  // The prologue sits on a line of its own that the carrier numbers 0, so the user's line numbers
  // are unchanged, and the wrapper's own call frames (on line 0) are told apart and left out of stacks.
  const hoist = hoisted.length ? `var ${[...new Set(hoisted)].join(", ")}; ` : "";
  const prologue = `${hoist}((run) => run())(async () => {${module ? ` "use strict"; let ${DEFAULT_EXPORT};` : ""}`;
  const epilogue = module ? `\n;return ${defaultExport}; })` : "\n})";
  return { code: `${prologue}\n${body}${epilogue}`, kind: "async" };
}

/**
 * Makes the async wrapper return what a script's completion value would have been: the last
 * expression statement, also inside a trailing if/else, try/catch or block. (Only its columns move.)
 */
function returnCompletionValue(node: Statement | ModuleDeclaration | undefined, edits: Edit[]): void {
  switch (node?.type) {
    case "ExpressionStatement":
      edits.push({ start: node.start, end: node.start, text: "return (" }, { start: node.expression.end, end: node.expression.end, text: ");" });
      break;
    case "BlockStatement":
      returnCompletionValue(node.body.at(-1), edits);
      break;
    case "IfStatement":
      returnCompletionValue(node.consequent, edits);
      returnCompletionValue(node.alternate ?? undefined, edits);
      break;
    case "TryStatement":
      returnCompletionValue(node.block, edits);
      returnCompletionValue(node.handler?.body, edits);
      break;
    case "LabeledStatement":
      returnCompletionValue(node.body, edits);
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
 * persistent sandbox) and assigned inside.
 */
function hoistDeclaration(code: string, node: Statement | ModuleDeclaration, edits: Edit[], hoisted: string[]): void {
  if (node.type !== "VariableDeclaration") return;
  const assignments: string[] = [];
  for (const declarator of node.declarations) {
    collectNames(declarator.id, hoisted);
    if (declarator.init) assignments.push(`(${code.slice(declarator.id.start, declarator.id.end)} = ${code.slice(declarator.init.start, declarator.init.end)})`);
  }
  edits.push({ start: node.start, end: node.end, text: `void (${assignments.join(", ") || "0"});` });
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

/** Rewrites one module statement; returns the expression naming the default export, if this is it. */
function rewriteModuleStatement(code: string, node: Statement | ModuleDeclaration, edits: Edit[]): string | undefined {
  switch (node.type) {
    case "ImportDeclaration":
    case "ExportAllDeclaration":
      throw new PolicyError(`import of "${String(node.source.value)}" refused: no module policy grants imports in this sandbox`);
    case "ExportNamedDeclaration": {
      if (node.source) throw new PolicyError(`import of "${String(node.source.value)}" refused: no module policy grants imports in this sandbox`);
      if (node.declaration) {
        edits.push({ start: node.start, end: node.declaration.start, text: "" });
        return undefined;
      }
      edits.push({ start: node.start, end: node.end, text: "" });
      const asDefault = node.specifiers.find((s) => exportedName(s.exported) === "default");
      return asDefault ? code.slice(asDefault.local.start, asDefault.local.end) : undefined;
    }
    case "ExportDefaultDeclaration": {
      const declaration = node.declaration;
      if ((declaration.type === "FunctionDeclaration" || declaration.type === "ClassDeclaration") && declaration.id) {
        edits.push({ start: node.start, end: declaration.start, text: "" });
        return declaration.id.name;
      }
      edits.push({ start: node.start, end: declaration.start, text: `${DEFAULT_EXPORT} = ` });
      if (declaration.type === "FunctionDeclaration" || declaration.type === "ClassDeclaration") edits.push({ start: node.end, end: node.end, text: ";" });
      return DEFAULT_EXPORT;
    }
    default:
      return undefined;
  }
}

function exportedName(node: { type: string; name?: string; value?: unknown }): string {
  return node.type === "Identifier" ? String(node.name) : String(node.value);
}
