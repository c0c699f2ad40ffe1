import { test } from "node:test";
import assert from "node:assert/strict";
import ts from "typescript";
import { z } from "zod";
import { declareTools, schemaToType, type ToolDeclaration } from "../../src/capabilities/tools/declarations.js";

// ---- Checking declarations with the TypeScript compiler ----

const compilerOptions: ts.CompilerOptions = {
  strict: true,
  noEmit: true,
  target: ts.ScriptTarget.ES2022,
  lib: ["lib.es2022.d.ts"],
  types: [],
  // The declarations are a .d.ts: skipLibCheck would skip exactly what is under test.
  skipDefaultLibCheck: true,
};
/** The standard library's files, parsed once for all the programs below (parsing them is most of a program's cost). */
const libFiles = new Map<string, ts.SourceFile | undefined>();

/** Every diagnostic of a program made of `files` (virtual, by absolute name), as "file:line: message". */
function diagnose(files: Record<string, string>): string[] {
  const host = ts.createCompilerHost(compilerOptions, true);
  const readLib = host.getSourceFile.bind(host);
  host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
    const text = Object.hasOwn(files, fileName) ? files[fileName] : undefined;
    if (text !== undefined) return ts.createSourceFile(fileName, text, languageVersion, true);
    if (!libFiles.has(fileName)) libFiles.set(fileName, readLib(fileName, languageVersion, onError, shouldCreate));
    return libFiles.get(fileName);
  };
  const fileExists = host.fileExists.bind(host);
  const readFile = host.readFile.bind(host);
  host.fileExists = (fileName) => Object.hasOwn(files, fileName) || fileExists(fileName);
  host.readFile = (fileName) => (Object.hasOwn(files, fileName) ? files[fileName] : readFile(fileName));
  const program = ts.createProgram(Object.keys(files), compilerOptions, host);
  return [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics(), ...program.getSyntacticDiagnostics(), ...program.getSemanticDiagnostics()].map((diagnostic) => {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n");
    if (!diagnostic.file || diagnostic.start === undefined) return message;
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
    return `${diagnostic.file.fileName}:${line + 1}: ${message}`;
  });
}

/** Diagnostics of `agentCode` (run inside an async function, as the sandbox's code is) against `declarations`. */
function check(declarations: string, agentCode = ""): string[] {
  return diagnose({ "/virtual/tools.d.ts": declarations, "/virtual/agent.ts": `async function main(): Promise<void> {\n${agentCode}\n}\nvoid main;\n` });
}

function assertValid(declarations: string): void {
  assert.deepEqual(check(declarations), [], declarations);
}

/** A type in a declaration of its own, for checking types from schemaToType. */
function assertValidType(type: string): void {
  assert.deepEqual(diagnose({ "/virtual/type.d.ts": `type T = ${type};\n` }), [], type);
}

// ---- Fixtures ----

const weather: ToolDeclaration = {
  path: ["getWeather"],
  description: "Current weather for a city",
  inputSchema: {
    type: "object",
    properties: { city: { type: "string", description: "The city name" }, units: { type: "string", enum: ["c", "f"] } },
    required: ["city"],
    additionalProperties: false,
  },
  outputSchema: { type: "object", properties: { tempC: { type: "number" } }, required: ["tempC"] },
};

const HEADER = [
  "/** A tool failed: its handler threw, or the MCP server reported an error. `message` says why. */",
  "declare class ToolError extends Error {}",
  "declare const tools: {",
];
const declaration = (...members: string[]) => [...HEADER, ...members, "};", ""].join("\n");

/** What zod 4's z.toJSONSchema makes (2020-12) of a typical tool input, as the MCP SDK and host tools pass it on. */
const zodSchema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  type: "object",
  properties: {
    email: { type: "string", format: "email", pattern: "^(?:[A-Za-z0-9_'+\\-]+\\.)*[A-Za-z0-9_'+\\-]*[A-Za-z0-9_+-]@(?:[A-Za-z0-9][A-Za-z0-9\\-]*\\.)+[A-Za-z]{2,}$", description: "Where to write" },
    count: { type: "integer", minimum: -9007199254740991, maximum: 9007199254740991 },
    units: { type: "string", enum: ["c", "f"] },
    pair: { type: "array", prefixItems: [{ type: "string" }, { type: "number" }], items: false, minItems: 2, maxItems: 2 },
    note: { anyOf: [{ type: "string", maxLength: 80 }, { type: "null" }] },
    scores: { type: "object", propertyNames: { type: "string" }, additionalProperties: { type: "number" } },
    retries: { default: 3, type: "number" },
  },
  required: ["email", "count", "pair", "note", "scores", "retries"],
  additionalProperties: false,
};

// ---- declareTools ----

test("the weather tool: described, typed input and output, optional members marked", () => {
  const declarations = declareTools([weather]);
  assert.equal(
    declarations,
    declaration(
      "  /**",
      "   * Current weather for a city",
      "   */",
      "  getWeather(input: {",
      "    /** The city name */",
      "    city: string;",
      '    units?: "c" | "f";',
      "  }): Promise<{",
      "    tempC: number;",
      "  }>;",
    ),
  );
  assertValid(declarations);
});

test("paths make nested namespaces, in the order given, with their descriptions and upstream names", () => {
  const object = (property: string) => ({ type: "object", properties: { [property]: { type: "string" } }, required: [property] });
  const declarations = declareTools(
    [
      { path: ["github", "create_issue"], description: "Create an issue", originalName: "create-issue", inputSchema: object("title") },
      { path: ["getTime"], inputSchema: { type: "object", properties: {} } },
      { path: ["cloud", "storage", "get_object"], inputSchema: object("key"), outputSchema: { type: "string", description: "The object's text" } },
      { path: ["github", "close_issue"], inputSchema: object("id") },
      { path: ["github", "close_issue"], description: "a second tool of the same path is left out", inputSchema: {} },
      { path: [], inputSchema: {} },
    ],
    { namespaceDescriptions: { github: "GitHub, through its MCP server", "cloud.storage": "Buckets\nand objects" } },
  );
  assert.equal(
    declarations,
    declaration(
      "  /** GitHub, through its MCP server */",
      "  github: {",
      "    /**",
      "     * Create an issue",
      '     * (MCP tool "create-issue")',
      "     */",
      "    create_issue(input: {",
      "      title: string;",
      "    }): Promise<unknown>;",
      "    close_issue(input: {",
      "      id: string;",
      "    }): Promise<unknown>;",
      "  };",
      "  getTime(input?: Record<string, unknown>): Promise<unknown>;",
      "  cloud: {",
      "    /**",
      "     * Buckets",
      "     * and objects",
      "     */",
      "    storage: {",
      "      /**",
      "       * @returns The object's text",
      "       */",
      "      get_object(input: {",
      "        key: string;",
      "      }): Promise<string>;",
      "    };",
      "  };",
    ),
  );
  assertValid(declarations);
});

test("an input that may be left out is optional: no required properties, no schema, an empty schema", () => {
  const declarations = declareTools([
    { path: ["noArguments"], inputSchema: { type: "object", properties: {}, additionalProperties: false } },
    { path: ["allOptional"], inputSchema: { type: "object", properties: { verbose: { type: "boolean" } }, required: [] } },
    { path: ["anything"], inputSchema: undefined },
    { path: ["empty"], inputSchema: {} },
    { path: ["viaRef"], inputSchema: { $ref: "#/$defs/Args", $defs: { Args: { type: "object", properties: { q: { type: "string" } } } } } },
    { path: ["needed"], inputSchema: { type: "object", properties: { q: { type: "string" } }, required: ["q"] } },
    { path: ["text"], inputSchema: { type: "string" } },
  ]);
  assert.equal(
    declarations,
    declaration(
      "  noArguments(input?: Record<string, never>): Promise<unknown>;",
      "  allOptional(input?: {",
      "    verbose?: boolean;",
      "  }): Promise<unknown>;",
      "  anything(input?: unknown): Promise<unknown>;",
      "  empty(input?: unknown): Promise<unknown>;",
      "  viaRef(input?: {",
      "    q?: string;",
      "  }): Promise<unknown>;",
      "  needed(input: {",
      "    q: string;",
      "  }): Promise<unknown>;",
      "  text(input: string): Promise<unknown>;",
    ),
  );
  assertValid(declarations);
});

test("agent code type-checks against the declarations, and a wrong call does not", () => {
  const declarations = declareTools([
    weather,
    { path: ["getTime"], inputSchema: { type: "object", properties: {} }, outputSchema: { type: "string", format: "date-time" } },
    { path: ["github", "create_issue"], inputSchema: { type: "object", properties: { title: { type: "string" }, labels: { type: "array", items: { type: "string" } } }, required: ["title"] } },
    { path: ["signup"], inputSchema: zodSchema },
  ]);
  const good = [
    'const w = await tools.getWeather({ city: "Oslo" });',
    "const t: number = w.tempC;",
    'await tools.getWeather({ city: "Oslo", units: "f" });',
    "const now: string = await tools.getTime();",
    'const issue: unknown = await tools.github.create_issue({ title: "Bug", labels: ["p1"] });',
    'await tools.signup({ email: "a@b.c", count: 1, pair: ["x", 2], note: null, scores: { a: 1 }, retries: 0 });',
    "try { await tools.getTime({}); } catch (error) { if (error instanceof ToolError) void [error.message, t, issue, now]; }",
  ].join("\n");
  assert.deepEqual(check(declarations, good), []);

  const wrongCall = check(declarations, 'await tools.getWeather({ town: "Oslo" });');
  assert.equal(wrongCall.length, 1);
  assert.match(wrongCall[0]!, /^\/virtual\/agent\.ts:2: .*'town' does not exist/);
  assert.equal(check(declarations, 'await tools.getWeather({ city: "Oslo", units: "k" });').length, 1);
  assert.equal(check(declarations, "await tools.getWeather();").length, 1);
  assert.equal(check(declarations, 'const s: string = (await tools.getWeather({ city: "Oslo" })).tempC;').length, 1);
  assert.equal(check(declarations, "await tools.github.create_issue({ title: 1 });").length, 1);
  assert.equal(check(declarations, "await tools.nope();").length, 1);
  assert.equal(check(declarations, 'await tools.signup({ email: "a@b.c", count: 1, pair: ["x"], note: null, scores: {}, retries: 0 });').length, 1);
});

test("tool names that are keywords or not identifiers still declare methods", () => {
  const declarations = declareTools([
    { path: ["new"], inputSchema: {} },
    { path: ["get"], inputSchema: { type: "string" } },
    { path: ["readonly"], inputSchema: { type: "number" } },
    { path: ["delete"], inputSchema: { type: "boolean" } },
    { path: ["constructor"], inputSchema: { type: "null" } },
    { path: ["__proto__"], inputSchema: { type: "string", const: "x" } },
    { path: ["get-user"], inputSchema: {} },
  ]);
  assert.equal(
    declarations,
    declaration(
      '  "new"(input?: unknown): Promise<unknown>;',
      "  get(input: string): Promise<unknown>;",
      "  readonly(input: number): Promise<unknown>;",
      "  delete(input: boolean): Promise<unknown>;",
      "  constructor(input: null): Promise<unknown>;",
      '  __proto__(input: "x"): Promise<unknown>;',
      '  "get-user"(input?: unknown): Promise<unknown>;',
    ),
  );
  const calls = 'await tools.new(); await tools.get("a"); await tools.readonly(1); await tools.delete(true); await tools.constructor(null); await tools.__proto__("x"); await tools["get-user"]();';
  assert.deepEqual(check(declarations, calls), []);
  assert.equal(check(declarations, "await tools.readonly('1');").length, 1);
});

test("a tool that is also a namespace becomes a callable object", () => {
  const declarations = declareTools([
    { path: ["files"], description: "List files", inputSchema: {} },
    { path: ["files", "read"], inputSchema: { type: "string" }, outputSchema: { type: "string" } },
  ]);
  assert.equal(
    declarations,
    declaration(
      "  files: {",
      "    /**",
      "     * List files",
      "     */",
      "    (input?: unknown): Promise<unknown>;",
      "    read(input: string): Promise<string>;",
      "  };",
    ),
  );
  assert.deepEqual(check(declarations, 'await tools.files(); const text: string = await tools.files.read("a");'), []);
});

test("descriptions cannot close their comment, keep their lines, and are cut when very long", () => {
  const declarations = declareTools([
    {
      path: ["evil"],
      description: "Ends here */ declare const pwned: number; /* and\r\n\n\n  goes on */",
      originalName: "evil*/tool",
      inputSchema: {
        type: "object",
        properties: { "a*/b": { type: "string", description: "x */ y", pattern: "^a*/$", default: "*/", examples: ["**/"] } },
        description: "the input */",
      },
      outputSchema: { type: "number", description: "*/*/" },
    },
    { path: ["long"], description: `${"word ".repeat(1000)}`, inputSchema: {} },
  ]);
  const lines = declarations.split("\n");
  assert.deepEqual(lines.slice(3, 20), [
    "  /**",
    "   * Ends here *\\/ declare const pwned: number; /* and",
    "   *",
    "   *   goes on *\\/",
    '   * (MCP tool "evil*\\/tool")',
    "   * @param input the input *\\/",
    "   * @returns *\\/*\\/",
    "   */",
    "  evil(input?: {",
    "    /**",
    "     * x *\\/ y",
    '     * @default "*\\/"',
    "     * @pattern ^a*\\/$",
    '     * @example "**\\/"',
    "     */",
    '    "a*/b"?: string;',
    "  }): Promise<number>;",
  ]);
  const long = lines.slice(20, 24);
  assert.equal(long[0], "  /**");
  assert.equal(long[1], `   * ${"word ".repeat(400).trimEnd()}…`);
  assert.equal(long[2], "   */");
  // The one declaration there is, and nothing that escaped a comment.
  assertValid(declarations);
  assert.equal(check(declarations, "pwned;").length, 1);
});

test("malformed tool lists and entries are skipped, not thrown on", () => {
  const bad = [null, 42, "x", { path: "getWeather" }, { path: [1] }, { inputSchema: {} }, weather] as unknown as ToolDeclaration[];
  const declarations = declareTools(bad, { namespaceDescriptions: null as unknown as Record<string, string> });
  assert.equal(declarations, declareTools([weather]));
  assert.equal(declareTools(null as unknown as ToolDeclaration[]), declaration());
  assertValid(declareTools([]));
});

// ---- schemaToType ----

test("primitives, type arrays, enums and consts", () => {
  assert.equal(schemaToType({ type: "string" }), "string");
  assert.equal(schemaToType({ type: "integer" }), "number");
  assert.equal(schemaToType({ type: "number" }), "number");
  assert.equal(schemaToType({ type: "boolean" }), "boolean");
  assert.equal(schemaToType({ type: "null" }), "null");
  assert.equal(schemaToType({ type: ["string", "integer", "null"] }), "string | number | null");
  assert.equal(schemaToType({ type: ["number", "integer"] }), "number");
  assert.equal(schemaToType({ type: "string", nullable: true }), "string | null");
  assert.equal(schemaToType({ enum: ["a", 'say "hi"', 1, -2.5, true, null] }), '"a" | "say \\"hi\\"" | 1 | -2.5 | true | null');
  assert.equal(schemaToType({ type: "array", items: { enum: [-1, 2] } }), "(-1 | 2)[]");
  assert.equal(schemaToType({ type: "array", items: { const: -1 } }), "(-1)[]");
  assert.equal(schemaToType({ enum: [{ kind: "a", tags: ["x"] }, [1, 2], {}] }), '{ "kind": "a", "tags": ["x"] } | [1, 2] | {}');
  assert.equal(schemaToType({ enum: [] }), "never");
  assert.equal(schemaToType({ const: "fixed", type: "string" }), '"fixed"');
  assert.equal(schemaToType({ const: "line\u2028break\u0000" }), '"line\u2028break\\u0000"');
  assert.equal(schemaToType({ type: "number", enum: [Number.NaN, 1] }), "number | 1");
  assert.equal(schemaToType(true), "unknown");
  assert.equal(schemaToType(false), "never");
  assert.equal(schemaToType({}), "unknown");
  assert.equal(schemaToType({ type: "string", not: { const: "" } }), "string");
  for (const type of ["string | number | null", '"a" | "say \\"hi\\"" | 1 | -2.5 | true | null', "(-1)[]", '{ "kind": "a", "tags": ["x"] } | [1, 2] | {}', '"line\u2028break\\u0000"']) {
    assertValidType(type);
  }
});

test("objects: optional and quoted properties, index signatures, records", () => {
  const properties = {
    id: { type: "integer" },
    "content-type": { type: "string" },
    "2fa": { type: "boolean" },
    $ok: { type: "string" },
    "": { type: "string" },
  };
  const object = schemaToType({ type: "object", properties, required: ["id", "content-type", "missing"] });
  assert.equal(object, ["{", "  id: number;", '  "content-type": string;', '  "2fa"?: boolean;', "  $ok?: string;", '  ""?: string;', "}"].join("\n"));
  assert.equal(schemaToType({ type: "object" }), "Record<string, unknown>");
  assert.equal(schemaToType({ type: "object", additionalProperties: true }), "Record<string, unknown>");
  assert.equal(schemaToType({ type: "object", additionalProperties: false }), "Record<string, never>");
  assert.equal(schemaToType({ type: "object", additionalProperties: { type: "number" } }), "Record<string, number>");
  assert.equal(schemaToType({ type: "object", patternProperties: { "^x-": { type: "string" } }, additionalProperties: false }), "Record<string, string>");
  assert.equal(schemaToType({ type: "object", patternProperties: { "^x-": { type: "string" } }, additionalProperties: { type: "number" } }), "Record<string, string | number>");
  const open = schemaToType({ type: "object", properties: { a: { type: "string" }, b: { type: "number" } }, required: ["a"], additionalProperties: { type: "boolean" } }, "  ");
  assert.equal(open, ["{", "    a: string;", "    b?: number;", "    [key: string]: boolean | string | number | undefined;", "  }"].join("\n"));
  const anything = schemaToType({ properties: { a: { type: "string" } }, required: ["a"], additionalProperties: {} });
  assert.equal(anything, ["{", "  a: string;", "  [key: string]: unknown;", "}"].join("\n"));
  const nested = schemaToType({ type: "object", properties: { inner: { type: "object", properties: { deep: { type: "array", items: { type: "object", properties: { x: { type: "number" } }, required: ["x"] } } } } } });
  assert.equal(nested, ["{", "  inner?: {", "    deep?: {", "      x: number;", "    }[];", "  };", "}"].join("\n"));
  for (const type of [object, open, anything, nested]) assertValidType(type);
});

test("property names that Object.prototype has are read as the schema's own", () => {
  const schema: unknown = JSON.parse(
    '{"type":"object","properties":{"__proto__":{"type":"string"},"constructor":{"type":"number"},"toString":{"$ref":"#/$defs/toString"},"hasOwnProperty":{"$ref":"#/$defs/valueOf"}},"required":["__proto__","toString"],"$defs":{"toString":{"type":"boolean"}}}',
  );
  const type = schemaToType(schema);
  assert.equal(type, ["{", "  __proto__: string;", "  constructor?: number;", "  toString: boolean;", "  hasOwnProperty?: unknown;", "}"].join("\n"));
  assertValidType(type);
  // Nothing inherited is taken for a keyword: an object whose prototype says `type: "string"` has no type.
  const inherited = Object.create({ type: "string", properties: { a: { type: "string" } }, enum: ["x"] }) as object;
  assert.equal(schemaToType(inherited), "unknown");
  assert.equal(schemaToType({ type: "object", properties: { a: inherited }, required: ["constructor"] }), "{\n  a?: unknown;\n}");
  assert.equal(schemaToType({ $ref: "#/constructor" }), "unknown");
  assert.equal(schemaToType({ $ref: "#/$defs/__proto__", $defs: {} }), "unknown");
});

test("arrays and tuples, in draft-07's spelling and 2020-12's", () => {
  assert.equal(schemaToType({ type: "array", items: { type: "string" } }), "string[]");
  assert.equal(schemaToType({ type: "array" }), "unknown[]");
  assert.equal(schemaToType({ type: "array", items: { type: ["string", "null"] } }), "(string | null)[]");
  assert.equal(schemaToType({ type: "array", items: { type: "array", items: { type: "number" } } }), "number[][]");
  assert.equal(schemaToType({ type: "array", items: false }), "[]");
  // 2020-12: prefixItems, with items for the rest.
  assert.equal(schemaToType({ type: "array", prefixItems: [{ type: "string" }, { type: "number" }], items: false }), "[string, number]");
  assert.equal(schemaToType({ type: "array", prefixItems: [{ type: "string" }, { type: "number" }], minItems: 2, maxItems: 2 }), "[string, number]");
  assert.equal(schemaToType({ type: "array", prefixItems: [{ type: "string" }], items: { type: "boolean" } }), "[string, ...boolean[]]");
  assert.equal(schemaToType({ type: "array", prefixItems: [{ type: "string" }] }), "[string, ...unknown[]]");
  assert.equal(schemaToType({ prefixItems: [{ type: "string" }, { type: ["number", "null"] }, { type: "boolean" }], minItems: 1, items: false }), "[string, (number | null)?, boolean?]");
  // Draft-07: an items array, with additionalItems for the rest.
  assert.equal(schemaToType({ type: "array", items: [{ type: "string" }, { type: "number" }], additionalItems: false }), "[string, number]");
  assert.equal(schemaToType({ type: "array", items: [{ type: "string" }], additionalItems: { type: "number" } }), "[string, ...number[]]");
  assert.equal(schemaToType({ type: "array", items: [{ type: "object", properties: { a: { type: "string" } } }], additionalItems: false }), "[{\n  a?: string;\n}]");
  for (const type of ["[string, (number | null)?, boolean?]", "[string, ...boolean[]]", "[]", "[{\n  a?: string;\n}]"]) assertValidType(type);
});

test("anyOf and oneOf are unions, allOf an intersection, parenthesised where they nest", () => {
  assert.equal(schemaToType({ anyOf: [{ type: "string" }, { type: "null" }] }), "string | null");
  assert.equal(schemaToType({ oneOf: [{ type: "string" }, { type: "number" }, { type: "string" }] }), "string | number");
  assert.equal(schemaToType({ anyOf: [{ type: "string" }, {}] }), "unknown");
  assert.equal(schemaToType({ anyOf: [{ type: "string" }, false] }), "string");
  assert.equal(schemaToType({ type: "array", items: { anyOf: [{ type: "string" }, { type: "null" }] } }), "(string | null)[]");
  assert.equal(schemaToType({ anyOf: [{ anyOf: [{ type: "string" }, { type: "number" }] }, { type: "null" }] }), "string | number | null");
  const tagged = schemaToType({
    oneOf: [
      { type: "object", properties: { kind: { const: "circle" }, r: { type: "number" } }, required: ["kind", "r"] },
      { type: "object", properties: { kind: { const: "square" }, side: { type: "number" } }, required: ["kind", "side"] },
    ],
  });
  assert.equal(tagged, ["{", '  kind: "circle";', "  r: number;", "} | {", '  kind: "square";', "  side: number;", "}"].join("\n"));
  const both = schemaToType({
    allOf: [
      { type: "object", properties: { id: { type: "string" } }, required: ["id"] },
      { anyOf: [{ type: "object", properties: { a: { type: "number" } } }, { type: "object", properties: { b: { type: "number" } } }] },
    ],
  });
  assert.equal(both, ["{", "  id: string;", "} & ({", "  a?: number;", "} | {", "  b?: number;", "})"].join("\n"));
  assert.equal(schemaToType({ allOf: [{ type: "string" }, { minLength: 1 }] }), "string");
  assert.equal(schemaToType({ allOf: [{ type: "string" }, false] }), "never");
  // Keywords that only constrain (required in each member) leave the base type alone.
  assert.equal(schemaToType({ type: "object", properties: { a: { type: "string" } }, anyOf: [{ required: ["a"] }, { required: ["b"] }] }), "{\n  a?: string;\n}");
  assert.equal(schemaToType({ type: "string", anyOf: [{ format: "email" }, { format: "uri" }] }), "string");
  for (const type of [tagged, both]) assertValidType(type);
});

test("$ref: local definitions in both spellings, JSON pointer escapes, recursion unrolled once", () => {
  const refs = schemaToType({
    type: "object",
    properties: {
      home: { $ref: "#/$defs/Address" },
      work: { $ref: "#/definitions/Address" },
      slash: { $ref: "#/$defs/a~1b" },
      tilde: { $ref: "#/$defs/c~0d" },
      percent: { $ref: "#/$defs/with%20space" },
      element: { $ref: "#/$defs/list/1" },
      remote: { $ref: "https://example.com/schema.json#/$defs/Address" },
      anchor: { $ref: "#Address" },
      missing: { $ref: "#/$defs/Nope" },
    },
    required: ["home"],
    $defs: {
      Address: { type: "object", description: "A postal address", properties: { city: { type: "string" } }, required: ["city"] },
      "a/b": { type: "string" },
      "c~d": { type: "number" },
      "with space": { type: "boolean" },
      list: [{ type: "string" }, { type: "null" }],
    },
    definitions: { Address: { type: "string", format: "address" } },
  });
  assert.equal(
    refs,
    [
      "{",
      "  /** A postal address */",
      "  home: {",
      "    city: string;",
      "  };",
      "  /** @format address */",
      "  work?: string;",
      "  slash?: string;",
      "  tilde?: number;",
      "  percent?: boolean;",
      "  element?: null;",
      "  remote?: unknown;",
      "  anchor?: unknown;",
      "  missing?: unknown;",
      "}",
    ].join("\n"),
  );
  const tree = schemaToType({
    $ref: "#/$defs/Node",
    $defs: {
      Node: {
        type: "object",
        properties: { value: { type: "number" }, children: { type: "array", items: { $ref: "#/$defs/Node" } }, parent: { anyOf: [{ $ref: "#/$defs/Node" }, { type: "null" }] } },
        required: ["value", "children"],
      },
    },
  });
  assert.equal(tree, ["{", "  value: number;", "  children: unknown[];", "  parent?: unknown;", "}"].join("\n"));
  // Mutual recursion, and a schema that refers to itself as a whole.
  assert.equal(schemaToType({ $ref: "#/$defs/A", $defs: { A: { $ref: "#/$defs/B" }, B: { $ref: "#/$defs/A" } } }), "unknown");
  assert.equal(schemaToType({ type: "array", items: { $ref: "#" } }), "unknown[][]");
  assert.equal(schemaToType({ $ref: "#" }), "unknown");
  // JSON, the usual recursive type of MCP servers.
  const json = schemaToType({ $ref: "#/$defs/Json", $defs: { Json: { anyOf: [{ type: ["string", "number", "boolean", "null"] }, { type: "array", items: { $ref: "#/$defs/Json" } }, { type: "object", additionalProperties: { $ref: "#/$defs/Json" } }] } } });
  assert.equal(json, "string | number | boolean | null | unknown[] | Record<string, unknown>");
  for (const type of [refs, tree, json]) assertValidType(type);
});

test("JSDoc says what the type cannot: formats, defaults, bounds, patterns, examples, deprecation", () => {
  const type = schemaToType({
    type: "object",
    properties: {
      email: { type: "string", format: "email", pattern: "^.+@.+$", description: "Where replies go" },
      age: { type: "integer", minimum: 0, maximum: 150, default: 30 },
      ratio: { type: "number", exclusiveMinimum: 0, exclusiveMaximum: 1, multipleOf: 0.01 },
      legacy: { type: "number", minimum: 1, exclusiveMinimum: true, maximum: 9, exclusiveMaximum: true },
      code: { type: "string", minLength: 3, maxLength: 8, pattern: "^[A-Z]+$", examples: ["ABC"] },
      tags: { type: "array", items: { type: "string" }, minItems: 1, maxItems: 5, uniqueItems: true, default: ["a", "b"] },
      old: { type: "boolean", deprecated: true },
      multi: { type: "string", description: "First line.\n\nSecond paragraph.\n  indented" },
      safe: { type: "integer", minimum: -9007199254740991, maximum: 9007199254740991 },
      maybe: { anyOf: [{ type: "string", format: "uri", description: "A link" }, { type: "null" }], default: null },
    },
  });
  assert.equal(
    type,
    [
      "{",
      "  /**",
      "   * Where replies go",
      "   * @format email",
      "   */",
      "  email?: string;",
      "  /**",
      "   * @default 30",
      "   * @minimum 0",
      "   * @maximum 150",
      "   */",
      "  age?: number;",
      "  /**",
      "   * @exclusiveMinimum 0",
      "   * @exclusiveMaximum 1",
      "   * @multipleOf 0.01",
      "   */",
      "  ratio?: number;",
      "  /**",
      "   * @exclusiveMinimum 1",
      "   * @exclusiveMaximum 9",
      "   */",
      "  legacy?: number;",
      "  /**",
      "   * @minLength 3",
      "   * @maxLength 8",
      "   * @pattern ^[A-Z]+$",
      '   * @example "ABC"',
      "   */",
      "  code?: string;",
      "  /**",
      '   * @default ["a", "b"]',
      "   * @minItems 1",
      "   * @maxItems 5",
      "   * @uniqueItems",
      "   */",
      "  tags?: string[];",
      "  /** @deprecated */",
      "  old?: boolean;",
      "  /**",
      "   * First line.",
      "   *",
      "   * Second paragraph.",
      "   *   indented",
      "   */",
      "  multi?: string;",
      "  safe?: number;",
      "  /**",
      "   * A link",
      "   * @format uri",
      "   * @default null",
      "   */",
      "  maybe?: string | null;",
      "}",
    ].join("\n"),
  );
  assertValidType(type);
});

test("zod's schemas, 2020-12 and draft-07, as z.toJSONSchema writes them", () => {
  const expected = [
    "{",
    "  /**",
    "   * Where to write",
    "   * @format email",
    "   */",
    "  email: string;",
    "  count: number;",
    '  units?: "c" | "f";',
    "  pair: [string, number];",
    "  /** @maxLength 80 */",
    "  note: string | null;",
    "  scores: Record<string, number>;",
    "  /** @default 3 */",
    "  retries: number;",
    "}",
  ].join("\n");
  assert.equal(schemaToType(zodSchema), expected);
  const live = z.object({
    email: z.email().describe("Where to write"),
    count: z.int(),
    units: z.enum(["c", "f"]).optional(),
    pair: z.tuple([z.string(), z.number()]),
    note: z.string().max(80).nullable(),
    scores: z.record(z.string(), z.number()),
    retries: z.number().default(3),
  });
  // The live conversion, where zod's own output may differ in detail from the copy above.
  for (const target of ["draft-2020-12", "draft-7"] as const) {
    const type = schemaToType(z.toJSONSchema(live, { target }));
    assert.match(type, /^ {2}pair: \[string, number\];$/m, target);
    assert.match(type, /^ {2}scores: Record<string, number>;$/m, target);
    assert.match(type, /^ {2}units\?: "c" \| "f";$/m, target);
    assertValidType(type);
  }
});

// ---- Hostile and malformed schemas ----

test("malformed schemas read as unknown, and nothing throws", () => {
  const throwing = new Proxy({}, { get: () => { throw new Error("boom"); }, getOwnPropertyDescriptor: () => { throw new Error("boom"); } });
  const cases: unknown[] = [null, undefined, "string", 42, [], [{ type: "string" }], { type: 42 }, { type: [] }, { type: ["strang"] }, { type: {} }, { $ref: 7 }, { $ref: "#/%E0%A4%A" }, { enum: "a" }, { anyOf: "x" }, { allOf: [] }, throwing, Symbol("s"), () => 1];
  for (const [index, schema] of cases.entries()) assert.equal(schemaToType(schema), "unknown", `case ${index}`);
  assert.equal(schemaToType({ type: "object", properties: { a: throwing } }), "unknown");
  assert.equal(schemaToType({ type: "object", properties: [{ type: "string" }], required: "a" }), "Record<string, unknown>");
  assert.equal(schemaToType({ type: "array", items: 5, minItems: "2" }), "unknown[]");
  assert.equal(schemaToType({ type: "array", prefixItems: [null, { type: "string" }], minItems: -1, items: false }), "[unknown?, string?]");
  assert.equal(schemaToType({ type: "string", description: 5, format: {}, default: () => 1, minimum: "1", deprecated: "yes" }), "string");
  assert.equal(schemaToType({ type: "string" }, 7 as unknown as string), "string");
  // A JS object that contains itself: a cycle without $ref.
  const cyclic: Record<string, unknown> = { type: "object", required: ["self"] };
  cyclic["properties"] = { self: cyclic };
  assert.match(schemaToType(cyclic), /self: unknown;/);
  const declarations = declareTools([{ path: ["hostile"], inputSchema: throwing, outputSchema: cyclic }]);
  assert.match(declarations, /^ {2}hostile\(input\?: unknown\): Promise<\{$/m);
  assertValid(declarations);
});

test("nesting is bounded: a 10,000-deep schema ends in unknown without exhausting the stack", () => {
  let objects: unknown = { type: "string" };
  let arrays: unknown = { type: "string" };
  let unions: unknown = { type: "string" };
  let text = '{"type":"string"}';
  for (let i = 0; i < 10_000; i++) {
    objects = { type: "object", properties: { a: objects }, required: ["a"] };
    arrays = { type: "array", items: arrays };
    unions = { anyOf: [unions, { type: "null" }] };
    text = `{"allOf":[${text}]}`;
  }
  const nestedObjects = schemaToType(objects);
  // Thirteen objects, each a line that opens it and one that closes it, and the unknown within.
  assert.equal(nestedObjects.split("\n").length, 2 * 13 + 1);
  assert.match(nestedObjects, /^ {26}a: unknown;$/m);
  assert.equal(schemaToType(arrays), `unknown${"[]".repeat(13)}`);
  assert.equal(schemaToType(unions), "unknown");
  assert.equal(schemaToType(JSON.parse(text)), "unknown");
  const chain: Record<string, unknown> = {};
  for (let i = 0; i < 10_000; i++) chain[`D${i}`] = { $ref: `#/$defs/D${i + 1}` };
  assert.equal(schemaToType({ $ref: "#/$defs/D0", $defs: chain }), "unknown");
  const declarations = declareTools([{ path: ["deep"], inputSchema: objects, outputSchema: arrays }]);
  assertValid(declarations);
});

test("size is bounded: huge enums, huge objects and exponential $refs", () => {
  const many = Array.from({ length: 100_000 }, (_, i) => `value${i}`);
  assert.equal(schemaToType({ enum: many }), "string");
  assert.equal(schemaToType({ enum: [...many.slice(0, 300), 1, null] }), "string | number | null");
  assert.equal(schemaToType({ enum: many.slice(0, 256) }).split(" | ").length, 256);
  assert.equal(schemaToType({ const: "x".repeat(5_000) }), "string");
  assert.equal(schemaToType({ type: "array", items: { enum: ["y".repeat(5_000), "n"] } }), '(string | "n")[]');
  const wide: Record<string, unknown> = {};
  for (let i = 0; i < 5_000; i++) wide[`property${i}`] = { type: "string", description: "A property" };
  assert.equal(schemaToType({ type: "object", properties: wide }), "unknown");
  // Each level refers to the next ten times: 10^12 expansions if nothing stopped them.
  const defs: Record<string, unknown> = {};
  for (let level = 0; level < 12; level++) {
    const properties: Record<string, unknown> = {};
    for (let i = 0; i < 10; i++) properties[`p${i}`] = { $ref: `#/$defs/L${level + 1}` };
    defs[`L${level}`] = { type: "object", properties };
  }
  defs["L12"] = { type: "string" };
  const started = performance.now();
  assert.equal(schemaToType({ $ref: "#/$defs/L0", $defs: defs }), "unknown");
  assert.ok(performance.now() - started < 2_000);
  const huge = declareTools([{ path: ["huge"], description: "d".repeat(1_000_000), inputSchema: { type: "object", properties: wide }, outputSchema: { enum: many } }]);
  assert.ok(huge.length < 3_000);
  assert.match(huge, /^ {2}huge\(input\?: unknown\): Promise<string>;$/m);
  assertValid(huge);
});
