/**
 * What one console entry counts against maxLogBytes: its characters plus a fixed overhead, so that
 * a flood of empty messages is bounded too. The carrier and the host count the same way. (Kept
 * apart from messages.ts, whose schemas the carrier must not bundle.)
 */
export const LOG_ENTRY_OVERHEAD = 32;

export function logCost(entry: { message: string }): number {
  return entry.message.length + LOG_ENTRY_OVERHEAD;
}
