/**
 * The carrier's function that the realm's fs module (realm.ts) calls for every operation: its
 * module key and its flags, shared by both halves (realm.ts, self-contained, mirrors the flags).
 */
export const FILE_CALL_KEY = "paddock:files";
export const FILE_CALL_FLAGS = { recursive: 1, force: 2, exclusive: 4 } as const;

/** One operation on the sandbox's files: see carrier.ts. */
export type FileCall = (op: string, syscall: string, path: string, second: string | undefined, flags: number, data: Uint8Array | undefined) => Promise<unknown>;
