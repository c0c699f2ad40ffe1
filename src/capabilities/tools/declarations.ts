/**
 * TypeScript declarations of the tools a sandbox may call, written for the model that writes the
 * sandbox's code: each tool's JSON Schemas (a host tool's own, zod's z.toJSONSchema output, an MCP
 * server's tool list; draft-07 and 2020-12 alike) become inline types, and what a type cannot say
 * (formats, bounds, defaults) goes into JSDoc. Schemas come from anywhere, so nothing here trusts
 * them: whatever is malformed reads as `unknown`, and nesting, size and $ref cycles are bounded.
 */

export interface ToolDeclaration {
  /** Where the tool sits under the global: ["getWeather"] or ["github", "create_issue"]. Each segment is already a valid JS identifier. */
  path: readonly string[];
  description?: string | undefined;
  /** JSON Schema of the input (unknown: it comes from anywhere and may be malformed). */
  inputSchema: unknown;
  outputSchema?: unknown;
  /** The name the tool has upstream when it differs from the last path segment (an MCP tool "get-user" exposed as get_user). */
  originalName?: string | undefined;
}

/** Schemas nested deeper than this read as `unknown`: no model needs more, and a hostile schema would otherwise exhaust the stack. */
const MAX_DEPTH = 12;
/** A longer type is declared `unknown`: it would crowd the model's context for little gain. */
const MAX_TYPE_CHARS = 20_000;
/**
 * Characters one type may produce along the way, nested parts counted again in what holds them.
 * Stops early a schema that repeats a large $ref many times, instead of building megabytes only to
 * find them over MAX_TYPE_CHARS.
 */
const MAX_WORK_CHARS = 1_000_000;
const MAX_DESCRIPTION_CHARS = 2_000;
/** A tag's value (a pattern, a default) beyond this is noise in a comment. */
const MAX_TAG_CHARS = 300;
/** A literal type (an enum member, a const) longer than this is declared by its kind instead. */
const MAX_LITERAL_CHARS = 1_000;
/** Past this many members an enum is declared by its members' kinds (string, number…): a union that long is noise. */
const MAX_ENUM_MEMBERS = 256;

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
const LINE_BREAK = /\r\n|[\n\r\u2028\u2029]/;

/**
 * Declarations of the global `tools` object, and of the ToolError its calls reject with. Tools are
 * grouped into nested namespaces by their paths, in the order given; a tool whose path is empty or
 * repeats an earlier one's is left out.
 */
export function declareTools(tools: readonly ToolDeclaration[], options?: { namespaceDescriptions?: Record<string, string> }): string {
  const root: Namespace = { tool: undefined, members: new Map() };
  for (const entry of Array.isArray(tools) ? (tools as readonly unknown[]) : []) {
    const tool = readTool(entry);
    if (!tool) continue;
    let namespace = root;
    for (const segment of tool.path) {
      let next = namespace.members.get(segment);
      if (!next) namespace.members.set(segment, (next = { tool: undefined, members: new Map() }));
      namespace = next;
    }
    namespace.tool ??= tool;
  }
  return [
    "/** A tool failed: its handler threw, or the MCP server reported an error. `message` says why. */",
    "declare class ToolError extends Error {}",
    "declare const tools: {",
    ...namespaceMembers(root, [], "  ", readDescriptions(options)),
    "};",
    "",
  ].join("\n");
}

/** The inline TypeScript type for one JSON Schema; `indent` is that of the line the type starts on. */
export function schemaToType(schema: unknown, indent = ""): string {
  try {
    const text = render(schema, { root: schema, expanding: [], work: 0 }, 0, typeof indent === "string" ? indent : "").text;
    return text.length > MAX_TYPE_CHARS ? "unknown" : text;
  } catch {
    // Over the work budget, or a schema that throws when read (a getter, a proxy): either way
    // the model is better served by `unknown` than by no declarations at all.
    return "unknown";
  }
}

/** The tool's fields, read once (what is read is what is declared), or undefined if it has no usable path. */
function readTool(entry: unknown): ToolDeclaration | undefined {
  try {
    if (!isRecord(entry)) return undefined;
    const path = own(entry, "path");
    if (!Array.isArray(path) || path.length === 0 || !path.every((segment) => typeof segment === "string")) return undefined;
    const description = own(entry, "description");
    const originalName = own(entry, "originalName");
    return {
      path: [...(path as string[])],
      description: typeof description === "string" ? description : undefined,
      inputSchema: own(entry, "inputSchema"),
      outputSchema: own(entry, "outputSchema"),
      originalName: typeof originalName === "string" ? originalName : undefined,
    };
  } catch {
    return undefined;
  }
}

/** Namespace descriptions by dotted path ("github", "cloud.storage"). */
function readDescriptions(options: unknown): Map<string, string> {
  const descriptions = new Map<string, string>();
  try {
    const given = isRecord(options) ? own(options, "namespaceDescriptions") : undefined;
    if (!isRecord(given)) return descriptions;
    for (const path of Object.keys(given)) {
      const description = own(given, path);
      if (typeof description === "string") descriptions.set(path, description);
    }
  } catch {
    // Options that throw when read describe nothing.
  }
  return descriptions;
}

interface Namespace {
  tool: ToolDeclaration | undefined;
  readonly members: Map<string, Namespace>;
}

function namespaceMembers(namespace: Namespace, path: readonly string[], indent: string, descriptions: ReadonlyMap<string, string>): string[] {
  const lines: string[] = [];
  for (const [name, member] of namespace.members) {
    const key = methodName(name);
    if (member.members.size === 0) {
      if (member.tool) lines.push(...toolMethod(member.tool, key, indent));
      continue;
    }
    const description = descriptions.get([...path, name].join("."));
    if (description !== undefined) lines.push(...comment(descriptionLines(description), indent));
    lines.push(`${indent}${key}: {`);
    // Both a tool and a namespace of tools: a callable object, which a call signature declares.
    if (member.tool) lines.push(...toolMethod(member.tool, "", indent + "  "));
    lines.push(...namespaceMembers(member, [...path, name], indent + "  ", descriptions));
    lines.push(`${indent}};`);
  }
  return lines;
}

function toolMethod(tool: ToolDeclaration, key: string, indent: string): string[] {
  const { description, originalName, inputSchema, outputSchema } = tool;
  const docs = description === undefined ? [] : descriptionLines(description);
  if (originalName !== undefined) docs.push(`(MCP tool ${oneLine(JSON.stringify(originalName))})`);
  const inputDescription = descriptionOf(inputSchema);
  if (inputDescription !== undefined) docs.push(`@param input ${oneLine(inputDescription, MAX_DESCRIPTION_CHARS)}`);
  const outputDescription = descriptionOf(outputSchema);
  if (outputDescription !== undefined) docs.push(`@returns ${oneLine(outputDescription, MAX_DESCRIPTION_CHARS)}`);
  const output = outputSchema === undefined ? "unknown" : schemaToType(outputSchema, indent);
  return [...comment(docs, indent, true), `${indent}${key}(${inputParameter(inputSchema, indent)}): Promise<${output}>;`];
}

function descriptionOf(schema: unknown): string | undefined {
  try {
    const description = isRecord(schema) ? own(schema, "description") : undefined;
    return typeof description === "string" ? description : undefined;
  } catch {
    return undefined;
  }
}

function inputParameter(schema: unknown, indent: string): string {
  // A host tool without an input schema takes any value, or none.
  if (schema === undefined) return "input?: unknown";
  const type = schemaToType(schema, indent);
  return `input${type === "unknown" || takesNoInput(schema) ? "?" : ""}: ${type}`;
}

/** Whether `{}` is a valid input: then the model may leave the input out. */
function takesNoInput(schema: unknown): boolean {
  try {
    let target = schema;
    const ref = isRecord(target) ? own(target, "$ref") : undefined;
    if (typeof ref === "string") target = resolveRef(schema, ref);
    if (!isRecord(target)) return false;
    const type = own(target, "type");
    const object = type === "object" || (Array.isArray(type) && type.includes("object")) || (type === undefined && isRecord(own(target, "properties")));
    const required = own(target, "required");
    return object && !(Array.isArray(required) && required.some((name) => typeof name === "string"));
  } catch {
    return false;
  }
}

// ---- Types ----

/** How tightly a type binds: what decides where parentheses go when it is put inside another. */
const Binding = {
  Union: 0,
  Intersection: 1,
  /** A negative number literal: `-1[]` parses, but reads ambiguously. */
  Prefix: 2,
  Primary: 3,
} as const;
type Binding = (typeof Binding)[keyof typeof Binding];

interface Type {
  readonly text: string;
  readonly binding: Binding;
  /** A union's or an intersection's members, so that nested ones flatten. */
  readonly members?: readonly Type[];
}

const atom = (text: string, binding: Binding = Binding.Primary): Type => ({ text, binding });
const UNKNOWN = atom("unknown");
const NEVER = atom("never");
const NULL = atom("null");
const STRING = atom("string");
const NUMBER = atom("number");
const BOOLEAN = atom("boolean");

function union(types: readonly Type[]): Type {
  return combine(types, Binding.Union, " | ");
}

function intersection(types: readonly Type[]): Type {
  return combine(types, Binding.Intersection, " & ");
}

/**
 * A union or an intersection of `types`, flattened and without duplicates. In a union `unknown`
 * absorbs everything and `never` drops out; in an intersection the other way round. A union inside
 * an intersection is parenthesised.
 */
function combine(types: readonly Type[], binding: typeof Binding.Union | typeof Binding.Intersection, separator: string): Type {
  const [absorbing, neutral] = binding === Binding.Union ? [UNKNOWN, NEVER] : [NEVER, UNKNOWN];
  const members: Type[] = [];
  const seen = new Set<string>();
  for (const type of types) {
    for (const member of type.binding === binding && type.members ? type.members : [type]) {
      if (member.text === absorbing.text) return absorbing;
      if (member.text === neutral.text || seen.has(member.text)) continue;
      seen.add(member.text);
      members.push(member);
    }
  }
  if (members.length <= 1) return members[0] ?? neutral;
  const text = members.map((member) => (binding === Binding.Intersection && member.binding === Binding.Union ? `(${member.text})` : member.text)).join(separator);
  return { text, binding, members };
}

const arrayOf = (type: Type): Type => atom(type.binding === Binding.Primary ? `${type.text}[]` : `(${type.text})[]`);

interface Context {
  /** What `#/…` refers to. */
  readonly root: unknown;
  /** The $refs being expanded, innermost last: one met again is a cycle. */
  readonly expanding: string[];
  work: number;
}

function spend(context: Context, chars: number): void {
  context.work += chars + 1;
  if (context.work > MAX_WORK_CHARS) throw new RangeError("the type is too large");
}

function render(schema: unknown, context: Context, depth: number, indent: string): Type {
  if (depth > MAX_DEPTH) return UNKNOWN;
  if (schema === true) return UNKNOWN;
  if (schema === false) return NEVER;
  if (!isRecord(schema)) return UNKNOWN;
  let type = core(schema, context, depth, indent);
  // OpenAPI 3.0's way of saying "or null", which some MCP servers still use.
  if (own(schema, "nullable") === true) type = union([type, NULL]);
  spend(context, type.text.length);
  return type;
}

function core(schema: Record<string, unknown>, context: Context, depth: number, indent: string): Type {
  if (Object.hasOwn(schema, "const")) {
    const value = own(schema, "const");
    const literal = literalType(value) ?? kindOf(value);
    if (literal !== UNKNOWN) return literal;
  }
  const values = own(schema, "enum");
  if (Array.isArray(values)) return enumType(values, context);
  const parts: Type[] = [];
  const ref = own(schema, "$ref");
  if (typeof ref === "string") parts.push(refType(ref, context, depth, indent));
  const base = baseType(schema, context, depth, indent);
  if (base) parts.push(base);
  const allOf = own(schema, "allOf");
  if (Array.isArray(allOf)) for (const member of allOf) parts.push(render(member, context, depth + 1, indent));
  for (const keyword of ["anyOf", "oneOf"]) {
    const members = own(schema, keyword);
    // A member that only adds a constraint (`{ required: ["a"] }`) renders as unknown, which
    // makes the union unknown and so drops out of the intersection: the base type stands alone.
    if (Array.isArray(members) && members.length > 0) parts.push(union(members.map((member) => render(member, context, depth + 1, indent))));
  }
  return intersection(parts);
}

function refType(ref: string, context: Context, depth: number, indent: string): Type {
  // A recursive schema (a tree, a JSON value) is unrolled once; the recursion itself reads as unknown.
  if (context.expanding.includes(ref)) return UNKNOWN;
  const target = resolveRef(context.root, ref);
  if (target === undefined) return UNKNOWN;
  context.expanding.push(ref);
  try {
    return render(target, context, depth + 1, indent);
  } finally {
    context.expanding.pop();
  }
}

/** What a local JSON pointer (`#/$defs/Node`, `#/definitions/Node`, `#`) points to in `root`; other refs are not followed. */
function resolveRef(root: unknown, ref: string): unknown {
  if (ref === "#") return root;
  if (!ref.startsWith("#/")) return undefined;
  let node = root;
  for (const raw of ref.slice(2).split("/")) {
    let key: string;
    try {
      key = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
    } catch {
      return undefined;
    }
    if (Array.isArray(node)) {
      if (!/^(?:0|[1-9]\d{0,8})$/.test(key) || Number(key) >= node.length) return undefined;
      node = node[Number(key)] as unknown;
    } else if (isRecord(node) && Object.hasOwn(node, key)) {
      node = node[key];
    } else {
      return undefined;
    }
  }
  return node;
}

/** The type the `type` keyword says, or that the keywords present imply; undefined when neither says anything. */
function baseType(schema: Record<string, unknown>, context: Context, depth: number, indent: string): Type | undefined {
  const declared = own(schema, "type");
  let kinds: string[];
  if (typeof declared === "string") kinds = [declared];
  else if (Array.isArray(declared)) kinds = [...new Set(declared.filter((kind): kind is string => typeof kind === "string"))];
  else if (["properties", "additionalProperties", "patternProperties"].some((keyword) => Object.hasOwn(schema, keyword))) kinds = ["object"];
  else if (["items", "prefixItems"].some((keyword) => Object.hasOwn(schema, keyword))) kinds = ["array"];
  else return undefined;
  if (kinds.length === 0) return undefined;
  return union(kinds.map((kind) => kindType(kind, schema, context, depth, indent)));
}

function kindType(kind: string, schema: Record<string, unknown>, context: Context, depth: number, indent: string): Type {
  switch (kind) {
    case "string":
      return STRING;
    case "number":
    case "integer":
      return NUMBER;
    case "boolean":
      return BOOLEAN;
    case "null":
      return NULL;
    case "object":
      return objectType(schema, context, depth, indent);
    case "array":
      return arrayType(schema, context, depth, indent);
    default:
      return UNKNOWN;
  }
}

function objectType(schema: Record<string, unknown>, context: Context, depth: number, indent: string): Type {
  const properties = own(schema, "properties");
  const names = isRecord(properties) ? Object.keys(properties) : [];
  const requiredList = own(schema, "required");
  const required = new Set(Array.isArray(requiredList) ? requiredList.filter((name): name is string => typeof name === "string") : []);
  let additional = own(schema, "additionalProperties");
  if (additional === undefined) additional = own(schema, "unevaluatedProperties");
  const patterns = own(schema, "patternProperties");
  const extraSchemas = isRecord(patterns) ? Object.keys(patterns).map((pattern) => own(patterns, pattern)) : [];
  if (additional !== undefined && additional !== false) extraSchemas.push(additional);

  if (names.length === 0) {
    if (extraSchemas.length === 0) return atom(additional === false ? "Record<string, never>" : "Record<string, unknown>");
    return atom(`Record<string, ${union(extraSchemas.map((extra) => render(extra, context, depth + 1, indent))).text}>`);
  }
  const inner = indent + "  ";
  const lines: string[] = [];
  const propertyTypes: Type[] = [];
  for (const name of names) {
    const property = own(properties as Record<string, unknown>, name);
    const type = render(property, context, depth + 1, inner);
    const doc = comment(docLines(property, context), inner);
    const line = `${inner}${propertyName(name)}${required.has(name) ? "" : "?"}: ${type.text};`;
    spend(context, line.length + doc.reduce((sum, docLine) => sum + docLine.length, 0));
    lines.push(...doc, line);
    propertyTypes.push(type);
  }
  if (extraSchemas.length > 0) {
    // TypeScript rejects a property whose type does not fit the index signature (an optional one
    // brings undefined), so the signature takes the properties' types too, or unknown once that
    // gets unwieldy.
    const optional = names.some((name) => !required.has(name)) ? [atom("undefined")] : [];
    let index = union([...extraSchemas.map((extra) => render(extra, context, depth + 1, inner)), ...propertyTypes, ...optional]);
    if (index.text.length > 120 || index.text.includes("\n")) index = UNKNOWN;
    lines.push(`${inner}[key: string]: ${index.text};`);
  }
  return atom(`{\n${lines.join("\n")}\n${indent}}`);
}

function arrayType(schema: Record<string, unknown>, context: Context, depth: number, indent: string): Type {
  const prefixItems = own(schema, "prefixItems");
  const items = own(schema, "items");
  // 2020-12 writes a tuple as prefixItems with `items` for the rest; draft-07 as an items array with additionalItems.
  const [elements, rest] = Array.isArray(prefixItems) ? [prefixItems, items] : Array.isArray(items) ? [items, own(schema, "additionalItems")] : [undefined, undefined];
  if (!elements) {
    if (items === false) return atom("[]");
    return arrayOf(items === undefined ? UNKNOWN : render(items, context, depth + 1, indent));
  }
  const minItems = own(schema, "minItems");
  const maxItems = own(schema, "maxItems");
  // Without minItems every element is taken as required: that is what a schema listing them means
  // far more often than the "all optional" JSON Schema strictly reads it as.
  const requiredCount = typeof minItems === "number" ? minItems : elements.length;
  const parts = elements.map((element, index) => {
    const type = render(element, context, depth + 1, indent);
    if (index < requiredCount) return type.text;
    return type.binding === Binding.Primary ? `${type.text}?` : `(${type.text})?`;
  });
  const closed = rest === false || (typeof maxItems === "number" && maxItems <= elements.length);
  if (!closed) parts.push(`...${arrayOf(rest === undefined ? UNKNOWN : render(rest, context, depth + 1, indent)).text}`);
  return atom(`[${parts.join(", ")}]`);
}

function enumType(values: readonly unknown[], context: Context): Type {
  if (values.length > MAX_ENUM_MEMBERS) {
    const kinds = new Map<string, Type>();
    for (const value of values) {
      const kind = kindOf(value);
      kinds.set(kind.text, kind);
      if (kind === UNKNOWN) break;
    }
    return union([...kinds.values()]);
  }
  return union(
    values.map((value) => {
      const type = literalType(value) ?? kindOf(value);
      spend(context, type.text.length);
      return type;
    }),
  );
}

/** A JSON value as a literal type: JSON text is valid type syntax (`"a"`, `-1`, `[1, 2]`, `{ "a": true }`). */
function literalType(value: unknown): Type | undefined {
  const text = jsonText(value, MAX_LITERAL_CHARS);
  if (text === undefined) return undefined;
  return atom(text, text.startsWith("-") ? Binding.Prefix : Binding.Primary);
}

function kindOf(value: unknown): Type {
  if (typeof value === "string") return STRING;
  if (typeof value === "number") return NUMBER;
  if (typeof value === "boolean") return BOOLEAN;
  if (value === null) return NULL;
  if (Array.isArray(value)) return atom("unknown[]");
  if (isRecord(value)) return atom("Record<string, unknown>");
  return UNKNOWN;
}

/**
 * JSON text of a value, or undefined when it is not JSON (NaN, a function, a cycle) or longer than
 * `limit`. Not JSON.stringify: that calls any toJSON the value has or inherits, and stringifies all
 * of a huge value before its length can be checked.
 */
function jsonText(value: unknown, limit: number): string | undefined {
  let out = "";
  const write = (node: unknown, depth: number): boolean => {
    if (depth > 8 || out.length > limit) return false;
    if (typeof node === "string") {
      if (node.length > limit) return false;
      out += JSON.stringify(node);
    } else if (typeof node === "number") {
      if (!Number.isFinite(node)) return false;
      out += JSON.stringify(node);
    } else if (typeof node === "boolean" || node === null) {
      out += String(node);
    } else if (Array.isArray(node)) {
      out += "[";
      for (let index = 0; index < node.length; index++) {
        if (index > 0) out += ", ";
        if (!write(node[index], depth + 1)) return false;
      }
      out += "]";
    } else if (isRecord(node)) {
      const keys = Object.keys(node);
      if (keys.length === 0) {
        out += "{}";
        return true;
      }
      out += "{ ";
      for (const [index, key] of keys.entries()) {
        if (index > 0) out += ", ";
        out += `${JSON.stringify(key)}: `;
        if (!write(node[key], depth + 1)) return false;
      }
      out += " }";
    } else {
      return false;
    }
    return out.length <= limit;
  };
  return write(value, 0) ? out : undefined;
}

// ---- Names ----

function propertyName(name: string): string {
  return IDENTIFIER.test(name) ? name : JSON.stringify(name);
}

/** `new(…)` in a type literal declares a construct signature, not a method named new. */
function methodName(name: string): string {
  return name === "new" ? JSON.stringify(name) : propertyName(name);
}

// ---- JSDoc ----

/** The JSDoc of a property: its description and what its type cannot say. */
function docLines(schema: unknown, context: Context): string[] {
  if (!isRecord(schema)) return [];
  // A property that only points elsewhere ($ref, or a one-member allOf as draft-07 writes a
  // described $ref) or wraps one type with null (zod's .nullable()) is described by that type too.
  const sources: Record<string, unknown>[] = [schema];
  const addRef = (of: Record<string, unknown>) => {
    const ref = own(of, "$ref");
    const target = typeof ref === "string" ? resolveRef(context.root, ref) : undefined;
    if (isRecord(target)) sources.push(target);
  };
  addRef(schema);
  for (const keyword of ["allOf", "anyOf", "oneOf"]) {
    const members = own(schema, keyword);
    if (!Array.isArray(members)) continue;
    const described = members.filter((member): member is Record<string, unknown> => isRecord(member) && own(member, "type") !== "null");
    if (described.length === 1 && described[0]) {
      sources.push(described[0]);
      addRef(described[0]);
    }
  }
  const pick = (keyword: string): unknown => {
    for (const source of sources) if (Object.hasOwn(source, keyword)) return source[keyword];
    return undefined;
  };
  const number = (keyword: string): number | undefined => {
    const value = pick(keyword);
    return typeof value === "number" && Number.isFinite(value) ? value : undefined;
  };

  const lines: string[] = [];
  // Not `title`: Pydantic (behind many MCP servers) makes one of every field's name ("Max Results").
  const description = pick("description");
  if (typeof description === "string") lines.push(...descriptionLines(description));
  const format = pick("format");
  if (typeof format === "string") lines.push(`@format ${oneLine(format)}`);
  const defaultText = sources.some((source) => Object.hasOwn(source, "default")) ? jsonText(pick("default"), MAX_TAG_CHARS) : undefined;
  if (defaultText !== undefined) lines.push(`@default ${oneLine(defaultText)}`);

  // zod gives every integer the bounds of a safe integer: true, and no news to anyone.
  const minimum = number("minimum");
  const maximum = number("maximum");
  const exclusiveMinimum = pick("exclusiveMinimum");
  const exclusiveMaximum = pick("exclusiveMaximum");
  // Draft-04's exclusiveMinimum is a boolean that makes the minimum exclusive.
  if (minimum !== undefined && minimum !== Number.MIN_SAFE_INTEGER) lines.push(`${exclusiveMinimum === true ? "@exclusiveMinimum" : "@minimum"} ${minimum}`);
  if (typeof exclusiveMinimum === "number") lines.push(`@exclusiveMinimum ${exclusiveMinimum}`);
  if (maximum !== undefined && maximum !== Number.MAX_SAFE_INTEGER) lines.push(`${exclusiveMaximum === true ? "@exclusiveMaximum" : "@maximum"} ${maximum}`);
  if (typeof exclusiveMaximum === "number") lines.push(`@exclusiveMaximum ${exclusiveMaximum}`);
  const multipleOf = number("multipleOf");
  if (multipleOf !== undefined) lines.push(`@multipleOf ${multipleOf}`);

  const minLength = number("minLength");
  const maxLength = number("maxLength");
  if (minLength !== undefined) lines.push(`@minLength ${minLength}`);
  if (maxLength !== undefined) lines.push(`@maxLength ${maxLength}`);
  // A format says more, and more readably, than the regular expression that checks it (zod's email one is 130 characters).
  const pattern = pick("pattern");
  if (typeof pattern === "string" && typeof format !== "string") lines.push(`@pattern ${oneLine(pattern)}`);

  // A tuple's length is in its type already.
  if (!Array.isArray(pick("prefixItems")) && !Array.isArray(pick("items"))) {
    const minItems = number("minItems");
    const maxItems = number("maxItems");
    if (minItems !== undefined) lines.push(`@minItems ${minItems}`);
    if (maxItems !== undefined) lines.push(`@maxItems ${maxItems}`);
  }
  if (pick("uniqueItems") === true) lines.push("@uniqueItems");

  const examples = pick("examples");
  const exampleText = Array.isArray(examples) && examples.length > 0 ? jsonText(examples[0], MAX_TAG_CHARS) : sources.some((source) => Object.hasOwn(source, "example")) ? jsonText(pick("example"), MAX_TAG_CHARS) : undefined;
  if (exampleText !== undefined) lines.push(`@example ${oneLine(exampleText)}`);
  if (pick("deprecated") === true) lines.push("@deprecated");
  return lines;
}

/** A description as comment lines: trimmed, cut to MAX_DESCRIPTION_CHARS, runs of blank lines made one. */
function descriptionLines(text: string): string[] {
  let cut = text.trim();
  if (cut.length > MAX_DESCRIPTION_CHARS) {
    // Not between the halves of a surrogate pair.
    const end = /[\uD800-\uDBFF]/.test(cut[MAX_DESCRIPTION_CHARS - 1] ?? "") ? MAX_DESCRIPTION_CHARS - 1 : MAX_DESCRIPTION_CHARS;
    cut = `${cut.slice(0, end).trimEnd()}…`;
  }
  const lines: string[] = [];
  for (const line of cut.split(LINE_BREAK)) {
    const trimmed = line.trimEnd();
    if (trimmed === "" && (lines.length === 0 || lines[lines.length - 1] === "")) continue;
    lines.push(trimmed);
  }
  return lines;
}

function oneLine(text: string, limit = MAX_TAG_CHARS): string {
  const flat = text.split(LINE_BREAK).join(" ").trim();
  return flat.length > limit ? `${flat.slice(0, limit)}…` : flat;
}

/** A JSDoc comment at `indent`: one line when it fits on one, unless `block`. */
function comment(lines: readonly string[], indent: string, block = false): string[] {
  if (lines.length === 0) return [];
  // Text from a schema must not be able to end the comment and go on as declarations.
  const safe = lines.map((line) => line.replace(/\*\//g, "*\\/"));
  if (safe.length === 1 && !block) return [`${indent}/** ${safe[0]} */`];
  return [`${indent}/**`, ...safe.map((line) => (line === "" ? `${indent} *` : `${indent} * ${line}`)), `${indent} */`];
}

// ---- Reading untrusted values ----

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A value's own property: never one it inherits (`constructor`, `toString`, `__proto__`). */
function own(record: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}
