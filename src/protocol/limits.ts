/** Bounds that hold for every frame, whatever the sandbox's own limits are. */
export const PROTOCOL_LIMITS = {
  maxErrorText: 64 * 1024,
  maxNameText: 256,
} as const;

/**
 * Whether `text` is over `maxBytes` as UTF-8. A UTF-16 unit is 1 to 3 bytes, so only a text in
 * between is measured, with the side's own cheapest counter.
 */
export function isOverUtf8Bytes(text: string, maxBytes: number, utf8Length: (text: string) => number): boolean {
  return text.length * 3 > maxBytes && (text.length > maxBytes || utf8Length(text) > maxBytes);
}
