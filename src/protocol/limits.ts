/** Bounds that hold for every frame, whatever the sandbox's own limits are. */
export const PROTOCOL_LIMITS = {
  maxErrorText: 64 * 1024,
  maxNameText: 256,
} as const;
