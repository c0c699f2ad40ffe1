import { z } from "zod";

/**
 * What the carrier asks of the host for one fetch. The carrier has no network; the host decides.
 * (The full request/response exchange arrives with the network policy.)
 */
export const fetchMessages = {
  request: z.strictObject({
    url: z.string().max(64 * 1024),
    method: z.string().max(32),
  }),
};
export type FetchRequest = z.infer<typeof fetchMessages.request>;
