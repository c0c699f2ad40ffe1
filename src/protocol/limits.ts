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

/** Bounds of an HTTP head's header list on the wire (a fetch's request, an app's response). */
export interface HeaderListLimits {
  headers: number;
  headerNameChars: number;
  headerValueChars: number;
  /** All names and values together. */
  headerChars: number;
}

/** What makes a header list too big to send, in words ("more than 256 request headers"), if anything. */
export function headerListProblem(headers: ReadonlyArray<readonly [string, string]>, limits: HeaderListLimits, noun: string): string | undefined {
  if (headers.length > limits.headers) return `more than ${limits.headers} ${noun} headers`;
  let total = 0;
  for (const [name, value] of headers) {
    total += name.length + value.length;
    if (total > limits.headerChars) return `the ${noun} headers are larger than ${limits.headerChars} characters in all`;
    if (name.length > limits.headerNameChars) return `a header name is longer than ${limits.headerNameChars} characters`;
    if (value.length > limits.headerValueChars) return `the value of ${name} is longer than ${limits.headerValueChars} characters`;
  }
  return undefined;
}
