/**
 * A tool's input and output schemas: JSON Schema (checked with ajv) or any Standard Schema (zod,
 * valibot, arktype…). Each becomes a check that explains a refusal the way an LLM can act on
 * ("input.city must be string (got number)"), and a JSON Schema for the declarations.
 */
import type { ErrorObject, ValidateFunction } from "ajv";
import { lazyModule } from "../../shared/lazy.js";
import { countValues } from "../../host/result-budget.js";

/** A JSON Schema, as a plain object (draft-07 and 2020-12 are both understood). */
export type JsonSchema = Record<string, unknown>;

/** The Standard Schema interface (standardschema.dev), as far as Paddock uses it. */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly "~standard": {
    readonly version: 1;
    readonly vendor: string;
    readonly validate: (value: unknown) => StandardResult<Output> | Promise<StandardResult<Output>>;
    readonly types?: { readonly input: Input; readonly output: Output } | undefined;
    /** Standard JSON Schema (zod 4.2+ and others): how the declarations see the schema. */
    readonly jsonSchema?: { readonly input: (options: { target: string }) => Record<string, unknown>; readonly output: (options: { target: string }) => Record<string, unknown> } | undefined;
  };
}
type StandardResult<Output> = { readonly value: Output; readonly issues?: undefined } | { readonly issues: ReadonlyArray<StandardIssue> };
interface StandardIssue {
  readonly message: string;
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined;
}

export type ToolSchema = JsonSchema | StandardSchemaV1;

/** The value a schema's check accepted (a Standard Schema may transform it), or why it refused. */
export type Checked = { ok: true; value: unknown } | { ok: false; problems: string[] };

export interface CompiledSchema {
  /** The schema as JSON Schema, for declarations (undefined when a Standard Schema has no JSON form). */
  readonly json: JsonSchema | undefined;
  check(value: unknown): Checked | Promise<Checked>;
}

/** Problems listed in one refusal: enough to fix several at once, not a wall of text. */
const MAX_PROBLEMS = 8;

export function isStandardSchema(value: unknown): value is StandardSchemaV1 {
  if ((typeof value !== "object" && typeof value !== "function") || value === null) return false;
  const standard = (value as Record<string, unknown>)["~standard"];
  return typeof standard === "object" && standard !== null && typeof (standard as { validate?: unknown }).validate === "function";
}

/**
 * Compiles a schema. `root` names the value in messages ("input", "the result"). Throws a
 * TypeError naming `where` when the schema itself is not valid.
 */
export function compileSchema(schema: ToolSchema, root: string, where: string, direction: "input" | "output"): CompiledSchema {
  if (isStandardSchema(schema)) return standardSchema(schema, root, direction);
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) {
    throw new TypeError(`${where} must be a JSON Schema object or a Standard Schema (such as a zod schema)`);
  }
  let validate: ValidateFunction;
  try {
    validate = compileWith(schema, "first");
  } catch (error) {
    throw new TypeError(`${where} is not a valid JSON Schema: ${(error as Error).message}`);
  }
  // Checking stops at the first problem: collecting every problem of a hostile input (an array of
  // a million wrong items) would cost the host more than the input did. A small input that fails
  // is checked again for all its problems, to say them all at once.
  let explain: ValidateFunction | undefined;
  return {
    json: schema,
    check(value) {
      if (validate(value)) return { ok: true, value };
      let errors = validate.errors ?? [];
      if (countValues(value, EXPLAINED_VALUES) <= EXPLAINED_VALUES) {
        explain ??= compileWith(schema, "all");
        explain(value);
        errors = explain.errors ?? errors;
      }
      return { ok: false, problems: errors.slice(0, MAX_PROBLEMS).map((error) => describeAjvError(error, root, value)) };
    },
  };
}

function standardSchema(schema: StandardSchemaV1, root: string, direction: "input" | "output"): CompiledSchema {
  const standard = schema["~standard"];
  let json: JsonSchema | undefined;
  try {
    json = standard.jsonSchema?.[direction]({ target: "draft-2020-12" });
  } catch {
    json = undefined; // a schema with no JSON form (a transform, say): declared as unknown
  }
  const settle = (result: StandardResult<unknown>): Checked =>
    result.issues ? { ok: false, problems: result.issues.slice(0, MAX_PROBLEMS).map((issue) => `${pathText(root, issue.path ?? [])}: ${issue.message}`) } : { ok: true, value: result.value };
  return {
    json,
    check(value) {
      const result = standard.validate(value);
      return result instanceof Promise ? result.then(settle) : settle(result);
    },
  };
}

interface AjvModule {
  default: new (options: Record<string, unknown>) => AjvInstance;
}
interface AjvInstance {
  compile(schema: JsonSchema): ValidateFunction;
  removeSchema(schema: JsonSchema): unknown;
  removeKeyword(keyword: string): unknown;
  addKeyword(definition: { keyword: string; type: string; schemaType: string; errors: boolean; validate: (schema: unknown, data: unknown) => boolean }): unknown;
}
const loadAjv = lazyModule<AjvModule>("ajv");
const loadAjv2020 = lazyModule<AjvModule>("ajv/dist/2020");
const loadFormats = lazyModule<{ default: (ajv: AjvInstance) => void }>("ajv-formats");
const loadRe2 = lazyModule<{ RE2JS: { compile(pattern: string): { test(input: string): boolean } } }>("re2js");

/** A failed input of at most this many values is checked again for all its problems. */
const EXPLAINED_VALUES = 4096;

/** One validator per JSON Schema dialect and mode, made on first use. */
const validators = new Map<string, AjvInstance>();

function compileWith(schema: JsonSchema, problems: "first" | "all"): ValidateFunction {
  const ajv = validatorFor(schema, problems);
  try {
    return ajv.compile(schema);
  } finally {
    // ajv keeps every schema it compiled, by identity, for good: sandboxes come and go, each
    // with its own tool objects, so the validator is kept by the tool instead.
    ajv.removeSchema(schema);
  }
}

function validatorFor(schema: JsonSchema, problems: "first" | "all"): AjvInstance {
  const dialect = typeof schema.$schema === "string" && /2019-09|2020-12/.test(schema.$schema) ? "2020" : "07";
  let ajv = validators.get(dialect + problems);
  if (!ajv) {
    const Ajv = (dialect === "2020" ? loadAjv2020() : loadAjv()).default;
    ajv = new Ajv({
      allErrors: problems === "all",
      // Not strict: schemas come from MCP servers and other tools' authors, with keywords ajv does
      // not know (examples, x-…); they are ignored, as JSON Schema says they should be.
      strict: false,
      logger: false,
      validateFormats: true,
      addUsedSchema: false,
      // A schema's `pattern` runs on input the sandbox chose: RE2's linear-time matching, so no
      // pattern (`^(a+)+$`, say) can make the host backtrack for seconds.
      code: { regExp: (pattern: string) => loadRe2().RE2JS.compile(pattern) },
    });
    loadFormats().default(ajv);
    // ajv compares items pairwise (quadratic: 30,000 objects took seconds); by canonical text, once each.
    ajv.removeKeyword("uniqueItems");
    ajv.addKeyword({ keyword: "uniqueItems", type: "array", schemaType: "boolean", errors: false, validate: (unique, items) => !unique || hasUniqueItems(items as unknown[]) });
    validators.set(dialect + problems, ajv);
  }
  return ajv;
}

function hasUniqueItems(items: unknown[]): boolean {
  const seen = new Set<string>();
  try {
    for (const item of items) {
      const text = canonicalJson(item);
      if (seen.has(text)) return false;
      seen.add(text);
    }
  } catch {
    return true; // nested beyond the stack: left to the tool
  }
  return true;
}

/** JSON text with object keys sorted: equal JSON values, equal text (as uniqueItems compares). */
function canonicalJson(value: unknown): string {
  if (typeof value !== "object" || value === null) return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  return `{${Object.keys(value).sort().map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`).join(",")}}`;
}

/** "input.items[2].name must be string (got number 42)" */
function describeAjvError(error: ErrorObject, root: string, value: unknown): string {
  const segments = error.instancePath.split("/").slice(1).map((segment) => segment.replace(/~1/g, "/").replace(/~0/g, "~"));
  const at = pathText(root, segments);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case "required":
      return `${at} is missing the required property ${JSON.stringify(params.missingProperty)}`;
    case "additionalProperties":
      return `${at} has a property the schema does not allow: ${JSON.stringify(params.additionalProperty)}`;
    case "enum":
      return `${at} must be one of ${(params.allowedValues as unknown[]).map((allowed) => JSON.stringify(allowed)).join(", ")} (got ${shown(valueAt(value, segments))})`;
    case "const":
      return `${at} must be ${JSON.stringify(params.allowedValue)} (got ${shown(valueAt(value, segments))})`;
    case "type":
      return `${at} ${error.message ?? "has the wrong type"} (got ${shown(valueAt(value, segments))})`;
    case "uniqueItems":
      return `${at} must not have duplicate items`;
    default:
      return `${at} ${error.message ?? `fails the schema's ${error.keyword} rule`}`;
  }
}

function pathText(root: string, path: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }>): string {
  let text = root;
  for (const part of path) {
    const key = typeof part === "object" && part !== null ? part.key : part;
    if (typeof key === "number" || (typeof key === "string" && /^\d+$/.test(key))) text += `[${String(key)}]`;
    else if (typeof key === "string" && /^[A-Za-z_$][\w$]*$/.test(key)) text += `.${key}`;
    else text += `[${JSON.stringify(String(key))}]`;
  }
  return text;
}

function valueAt(value: unknown, path: readonly string[]): unknown {
  let current = value;
  for (const key of path) {
    if (typeof current !== "object" || current === null || !Object.hasOwn(current, key)) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

/** A short, safe rendering of what was given: the type, and small primitives themselves. */
function shown(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  switch (typeof value) {
    case "string":
      return value.length <= 40 ? `string ${JSON.stringify(value)}` : "a string";
    case "number":
    case "boolean":
      return `${typeof value} ${String(value)}`;
    case "undefined":
      return "nothing";
    case "object":
      return "an object";
    default:
      return typeof value;
  }
}

/**
 * A JSON Schema from elsewhere (an MCP server's tool list), compiled on its first check: a server
 * may list hundreds of tools and a sandbox call few. One that does not compile checks nothing: the
 * server, which wrote it, still checks its own input.
 */
export function lazyJsonSchema(schema: JsonSchema, root: string): CompiledSchema {
  let compiled: CompiledSchema | undefined;
  let broken = false;
  return {
    json: schema,
    check(value) {
      if (!compiled && !broken) {
        try {
          compiled = compileSchema(schema, root, "", "input");
        } catch {
          broken = true;
        }
      }
      return compiled ? compiled.check(value) : { ok: true, value };
    },
  };
}
