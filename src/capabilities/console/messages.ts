import { z } from "zod";

export const logLevels = ["log", "info", "warn", "error", "debug", "trace"] as const;
export type LogLevel = (typeof logLevels)[number];

export const logEntry = z.strictObject({
  level: z.enum(logLevels),
  message: z.string(),
  /** Milliseconds since the eval started. */
  time: z.number().nonnegative().finite(),
});
export type LogEntry = z.infer<typeof logEntry>;

export const consoleMessages = {
  logBatch: z.array(logEntry),
};
