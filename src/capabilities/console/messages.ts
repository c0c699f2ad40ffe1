import type { z } from "zod";
import { lazySchema } from "../../shared/schema.js";

export const logLevels = ["log", "info", "warn", "error", "debug", "trace"] as const;
export type LogLevel = (typeof logLevels)[number];

export const logEntry = lazySchema((z) => z.strictObject({
  level: z.enum(logLevels),
  message: z.string(),
  /** Milliseconds since the eval started. */
  time: z.number().nonnegative().finite(),
}));
export type LogEntry = z.infer<ReturnType<typeof logEntry>>;

export const consoleMessages = {
  logBatch: lazySchema((z) => z.array(logEntry())),
};
