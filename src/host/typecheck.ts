/**
 * `typecheck: true`: the TypeScript compiler checks an eval's source against the declarations of
 * the sandbox's tools (and the Web APIs) before it runs, so a model's wrong call (a misspelt tool,
 * a missing field) comes back as diagnostics with positions instead of a failure halfway through.
 * The compiler is loaded on first use (~0.5 s); the standard library's files are parsed once per
 * process and shared by every check.
 */
import { dirname } from "node:path";
import type * as TypeScript from "typescript";
import { lazyModule } from "../shared/lazy.js";

const typescript = lazyModule<typeof TypeScript>("typescript");

export interface TypeDiagnostic {
  message: string;
  line: number;
  column: number;
  code: number;
}

/** The sandbox's globals beyond the standard library's: what a realm has that lib.dom does not say. */
const SANDBOX_GLOBALS = `
declare const env: Record<string, string>;
`;

/** Imports resolve on the host at run time, not here: an import the compiler cannot find is not an error. */
const IGNORED = new Set([2307, 2792, 7016]);
/** Diagnostics reported at most. */
const MAX_DIAGNOSTICS = 10;

const libraryFiles = new Map<string, TypeScript.SourceFile>();

function compilerOptions(ts: typeof TypeScript): TypeScript.CompilerOptions {
  return {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ["lib.es2023.d.ts", "lib.dom.d.ts", "lib.dom.iterable.d.ts"],
    strict: true,
    // Scripts a model writes: an untyped parameter or a caught value used as an Error is fine.
    noImplicitAny: false,
    useUnknownInCatchVariables: false,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
}

/**
 * Type-checks `code` (the user's source, as written) with `declarations` as a global script.
 * Positions are 1-based, in the user's source.
 */
export function typecheck(code: string, declarations: string, filename: string): TypeDiagnostic[] {
  const ts = typescript();
  const options = compilerOptions(ts);
  const root = "/paddock/";
  // The code may use top-level await and be a script: an empty export makes it a module without
  // moving a single position.
  const userFile = root + filename.replace(/\.[mc]?[jt]sx?$/, "") + ".ts";
  const sources = new Map<string, string>([
    [userFile, code + "\nexport {};\n"],
    [root + "paddock-tools.d.ts", declarations + SANDBOX_GLOBALS],
  ]);
  const libDirectory = dirname(ts.getDefaultLibFilePath(options));
  const host: TypeScript.CompilerHost = {
    getSourceFile(fileName, languageVersion) {
      const own = sources.get(fileName);
      if (own !== undefined) return ts.createSourceFile(fileName, own, languageVersion, true);
      let library = libraryFiles.get(fileName);
      if (!library && fileName.startsWith(libDirectory)) {
        const text = ts.sys.readFile(fileName);
        if (text === undefined) return undefined;
        library = ts.createSourceFile(fileName, text, languageVersion, true);
        libraryFiles.set(fileName, library);
      }
      return library;
    },
    getDefaultLibFileName: (compiler) => ts.getDefaultLibFilePath(compiler),
    getDefaultLibLocation: () => libDirectory,
    writeFile: () => {},
    getCurrentDirectory: () => root,
    getCanonicalFileName: (fileName) => fileName,
    useCaseSensitiveFileNames: () => true,
    getNewLine: () => "\n",
    fileExists: (fileName) => sources.has(fileName) || (fileName.startsWith(libDirectory) && ts.sys.fileExists(fileName)),
    readFile: (fileName) => sources.get(fileName) ?? (fileName.startsWith(libDirectory) ? ts.sys.readFile(fileName) : undefined),
    directoryExists: (directory) => directory === root || directory.startsWith(libDirectory),
    getDirectories: () => [],
  };
  const program = ts.createProgram([...sources.keys()], options, host);
  const file = program.getSourceFile(userFile)!;
  const diagnostics = [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)].filter((diagnostic) => !IGNORED.has(diagnostic.code));
  return diagnostics.slice(0, MAX_DIAGNOSTICS).map((diagnostic) => {
    const { line, character } = diagnostic.file && diagnostic.start !== undefined ? diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start) : { line: 0, character: 0 };
    return { message: ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"), line: line + 1, column: character + 1, code: diagnostic.code };
  });
}
