// The few Deno APIs the carrier captures at start, before it deletes the Deno namespace.
declare namespace Deno {
  interface Reader { read(p: Uint8Array): Promise<number | null>; readSync(p: Uint8Array): number | null }
  interface SyncWriter { writeSync(p: Uint8Array): number }
  const stdin: Reader;
  const stdout: SyncWriter;
  function exit(code?: number): never;
  function inspect(value: unknown, options?: { colors?: boolean; depth?: number; strAbbreviateSize?: number; iterableLimit?: number }): string;
  function cpuUsage(): { user: number; system: number };
  const internal: unique symbol;
}
