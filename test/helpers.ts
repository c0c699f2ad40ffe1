import assert from "node:assert/strict";
import { Sandbox, type ModuleError, type RunResult, type SandboxOptions, type SandboxError } from "../src/index.js";

/** Runs `body` with a fresh sandbox and always closes it. */
export async function withSandbox<T>(options: SandboxOptions, body: (sandbox: Sandbox) => Promise<T>): Promise<T> {
  const sandbox = await Sandbox.create(options);
  try {
    return await body(sandbox);
  } finally {
    await sandbox.close();
  }
}

/** The eval's error (the eval must have failed), with a ModuleError's reason if it is one. */
export function errorOf(result: RunResult): SandboxError & Partial<Pick<ModuleError, "reason">> {
  if (result.ok) assert.fail(`expected the eval to fail, it gave ${JSON.stringify(result.value)}`);
  return result.error;
}

/** Asserts that `code` fails in `sandbox` with an error of class `errorClass`; returns the error. */
export async function expectFailure<E extends SandboxError>(
  sandbox: Sandbox,
  code: string,
  errorClass: abstract new (...args: never[]) => E,
  options?: Parameters<Sandbox["run"]>[1],
): Promise<E> {
  const result = await sandbox.run(code, options);
  assert.equal(result.ok, false, `expected ${errorClass.name}, got value ${JSON.stringify(result.ok ? result.value : undefined)}`);
  if (result.ok) throw new Error("unreachable");
  assert.ok(result.error instanceof errorClass, `expected ${errorClass.name}, got ${result.error.name}: ${result.error.message}`);
  return result.error as E;
}

/** Resident set size of the host process, in MB. */
export function hostRssMb(): number {
  return process.memoryUsage().rss / 1024 / 1024;
}
