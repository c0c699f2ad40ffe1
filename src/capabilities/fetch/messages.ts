import type { z } from "zod";
import { lazySchema } from "../../shared/schema.js";

import { REQUEST_HEAD_LIMITS as LIMITS } from "./flow.js";

/**
 * What the carrier asks of the host for one fetch. The request body, if any, travels in the call
 * frame's body ("inline") or as stream messages after it ("stream"). The carrier has no network;
 * the host decides, and checks everything here again.
 */
export const fetchMessages = {
  request: lazySchema((z) => z.strictObject({
    url: z.string().max(LIMITS.urlChars),
    method: z.string().min(1).max(LIMITS.methodChars),
    headers: z
      .array(z.tuple([z.string().max(LIMITS.headerNameChars), z.string().max(LIMITS.headerValueChars)]))
      .max(LIMITS.headers)
      .refine((headers) => headers.reduce((sum, [name, value]) => sum + name.length + value.length, 0) <= LIMITS.headerChars, "the headers are too large"),
    body: z.enum(["none", "inline", "stream"]),
    redirect: z.enum(["follow", "manual", "error"]),
  })),
};
export type FetchRequest = z.infer<ReturnType<typeof fetchMessages.request>>;

/** The host's answer once the response's head has arrived; its body follows as stream messages. */
export interface FetchResponseHead {
  status: number;
  statusText: string;
  headers: Array<[string, string]>;
  /** The final URL, after redirects. */
  url: string;
  redirected: boolean;
  /**
   * "none" (HEAD, 204, 304…); "inline": the whole body is the reply frame's body; "stream": it
   * follows as stream messages.
   */
  body: "none" | "inline" | "stream";
}
