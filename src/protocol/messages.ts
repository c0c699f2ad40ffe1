/**
 * Messages between host and carrier. The carrier imports only the types; the host validates every
 * carrier message against the schemas below before acting on it, because a carrier may be hostile.
 */
import type { z } from "zod";
import { lazySchema } from "../shared/schema.js";
import { consoleMessages, logLevels } from "../capabilities/console/messages.js";
import { BATCH_DURATION_BUCKETS, MAX_BATCH_ITEMS } from "./batch.js";
import { fetchMessages } from "../capabilities/fetch/messages.js";
import { toolMessages, type ToolCatalogMessage } from "../capabilities/tools/messages.js";
import { fileMessages } from "../capabilities/files/messages.js";

import { PROTOCOL_LIMITS } from "./limits.js";
import { RESPONSE_HEAD_LIMITS } from "./serve.js";
import type { ModuleLink, ModulesMessage } from "../capabilities/modules/messages.js";

/** Failure kinds the carrier can report for an eval; the host maps each to an error class. */
export const failureKinds = ["script", "timeout", "output", "resource", "policy", "module"] as const;
export type FailureKind = (typeof failureKinds)[number];

/** Where a traced eval's time went inside the carrier, in µs, in order; a phase never reached is 0. */
export const carrierPhaseNames = ["decode", "realm", "compile", "run", "encode", "settle"] as const;
export type CarrierPhases = Record<(typeof carrierPhaseNames)[number], number>;

const schemas = lazySchema((z) => {
  const evalId = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
  const callId = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
  const shortText = z.string().max(PROTOCOL_LIMITS.maxNameText);
  const errorText = z.string().max(PROTOCOL_LIMITS.maxErrorText);
  const logBatch = consoleMessages.logBatch();
  const itemIndex = z.number().int().nonnegative().max(MAX_BATCH_ITEMS);

  const failure = z.strictObject({
    kind: z.enum(failureKinds),
    name: shortText,
    message: errorText,
    stack: errorText.optional(),
    line: z.number().int().nonnegative().optional(),
    column: z.number().int().nonnegative().optional(),
  });

  const stats = z.strictObject({
    wallMs: z.number().nonnegative().finite(),
    cpuMs: z.number().nonnegative().finite(),
  });

  const phaseUs = z.number().nonnegative().finite();
  const phases = z.strictObject(Object.fromEntries(carrierPhaseNames.map((name) => [name, phaseUs])) as Record<keyof CarrierPhases, typeof phaseUs>);

  /** A JSON-safe primitive result travels in the header; anything else in the V8-serialized body. */
  const inlineValue = z.union([z.string(), z.number().finite(), z.boolean(), z.null()]);

  const carrierMessage = z.discriminatedUnion("t", [
    z.strictObject({ t: z.literal("ready") }),
    z.discriminatedUnion("ok", [
      z.strictObject({
        t: z.literal("done"),
        id: evalId,
        ok: z.literal(true),
        /** "inline": value is in `v`; "undefined"; "body": V8-serialized value in the frame body. */
        as: z.enum(["inline", "undefined", "body"]),
        v: inlineValue.optional(),
        logs: logBatch,
        stats,
        phases: phases.optional(),
      }),
      z.strictObject({
        t: z.literal("done"),
        id: evalId,
        ok: z.literal(false),
        error: failure,
        logs: logBatch,
        stats,
        phases: phases.optional(),
      }),
    ]),
    z.strictObject({ t: z.literal("logs"), id: evalId, logs: logBatch }),
    /**
     * What a batch has done so far: the next `n` items from `from` (their results in the frame
     * body, one JSON text per line; an empty line for an item in `empty` or `errors`), and with
     * `end`, that the batch is over. `missing`: the carrier holds no function of that version.
     */
    z.strictObject({
      t: z.literal("progress"),
      id: evalId,
      from: itemIndex,
      n: itemIndex,
      empty: z.array(itemIndex).optional(),
      errors: z.array(failure.extend({ i: itemIndex })).optional(),
      logs: z.array(z.strictObject({ i: itemIndex, level: z.enum(logLevels), message: z.string() })).optional(),
      /** A careful batch's items' times, in µs. */
      us: z.array(z.number().nonnegative().finite()).optional(),
      end: z.strictObject({ cpuMs: z.number().nonnegative().finite(), durations: z.array(z.tuple([itemIndex, itemIndex])).max(BATCH_DURATION_BUCKETS) }).optional(),
      missing: z.literal(true).optional(),
    }),
    /** A capability request; the frame body may carry its payload (a request body, a tool's input). */
    z.discriminatedUnion("cap", [
      z.strictObject({ t: z.literal("call"), id: evalId, call: callId, cap: z.literal("fetch"), args: fetchMessages.request() }),
      z.strictObject({ t: z.literal("call"), id: evalId, call: callId, cap: z.literal("tool"), args: toolMessages.call() }),
      z.strictObject({ t: z.literal("call"), id: evalId, call: callId, cap: z.literal("files"), args: fileMessages.op() }),
    ]),
    /**
     * More about a call in progress: "data" (frame body, within the credit the host gave) and
     * "end" stream the call's payload up;
     * "credit" lets the host send that many more bytes down; "cancel" abandons the call.
     */
    z.strictObject({
      t: z.literal("stream"),
      id: evalId,
      call: callId,
      op: z.enum(["data", "end", "credit", "cancel"]),
      bytes: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
    }),
    /** An app's answer to request `req`: its head (its body follows in "body" messages), or why there is none. */
    z.discriminatedUnion("ok", [
      z.strictObject({
        t: z.literal("response"),
        id: evalId,
        req: callId,
        ok: z.literal(true),
        status: z.number().int().min(200).max(599),
        statusText: z.string().max(RESPONSE_HEAD_LIMITS.statusTextChars),
        headers: z.array(z.tuple([z.string().min(1).max(RESPONSE_HEAD_LIMITS.headerNameChars), z.string().max(RESPONSE_HEAD_LIMITS.headerValueChars)])).max(RESPONSE_HEAD_LIMITS.headers),
        body: z.boolean(),
        /** The whole body is in the frame (none: empty): nothing follows. */
        whole: z.literal(true).optional(),
      }),
      z.strictObject({ t: z.literal("response"), id: evalId, req: callId, ok: z.literal(false), error: failure }),
    ]),
    /**
     * An exchange's bytes going up: "data" (frame body, within the host's credit), "end" or
     * "error" of the response body; "credit": the host may send that many more request-body bytes.
     */
    z.strictObject({
      t: z.literal("body"),
      id: evalId,
      req: callId,
      op: z.enum(["data", "end", "error", "credit"]),
      bytes: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
    }),
  ]);
  return { failure, carrierMessage };
});

/** Every message a carrier may send; the host checks each against it (see also hot-messages.ts). */
export const carrierMessage = () => schemas().carrierMessage;

export type Failure = z.infer<ReturnType<typeof schemas>["failure"]>;
export type CarrierMessage = z.infer<ReturnType<typeof schemas>["carrierMessage"]>;
export type DoneMessage = Extract<CarrierMessage, { t: "done" }>;
export type CallMessage = Extract<CarrierMessage, { t: "call" }>;
export type CallStreamMessage = Extract<CarrierMessage, { t: "stream" }>;
export type CallStreamOp = CallStreamMessage["op"];
export type ProgressMessage = Extract<CarrierMessage, { t: "progress" }>;
export type ResponseMessage = Extract<CarrierMessage, { t: "response" }>;
export type ExchangeUpMessage = Extract<CarrierMessage, { t: "body" }>;

/** How a capability call failed, as the carrier rethrows it inside the realm. */
export interface CallError {
  /** The error's name inside the sandbox: "TypeError", "PolicyError", "AbortError"… */
  name: string;
  message: string;
  /** The failure kind the eval ends with if user code does not catch the error. */
  kind?: FailureKind;
}

/** Per-eval limits the carrier enforces first; the host re-checks what it can. */
export interface EvalLimits {
  timeoutMs: number;
  maxResultBytes: number;
  maxLogBytes: number;
  maxTimers: number;
}

/** "prologue": a script whose first line is Paddock's (it loads the imports); "async": wrapped for top-level await. */
export type SourceKind = "script" | "prologue" | "async";

export type HostMessage =
  | {
      t: "eval";
      id: number;
      code: string;
      filename: string;
      kind: SourceKind;
      persistent: boolean;
      limits: EvalLimits;
      /** The frame body holds V8-serialized per-eval globals. */
      hasGlobals: boolean;
      /** Report where the eval's time went (`phases` in the answer). */
      trace: boolean;
      /** What each import of the eval's code reaches (sent only with a module policy). */
      imports?: Record<string, ModuleLink>;
      /**
       * Keep the code's completion value (a function: its default export) in the eval's realm,
       * which is kept too, under this version: batches then call it (see batch.ts).
       */
      keep?: number;
      /**
       * Serve: the code's default export answers HTTP requests (see serve.ts). The eval answers once
       * the module has run; its realm and scope live on, for "request" messages under the eval's id.
       */
      serve?: true;
    }
  /** An HTTP request for the app served by eval `id`; with `body`, its bytes follow in "body" messages. */
  | { t: "request"; id: number; req: number; method: string; url: string; headers: Array<[string, string]>; body: boolean }
  /**
   * An exchange's bytes going down: "data" (frame body, within the carrier's credit) and "end" of
   * the request body; "credit": the carrier may send that many more response-body bytes; "abort":
   * the host has given up the exchange (a timeout, a client gone).
   */
  | { t: "body"; id: number; req: number; op: "data" | "end" | "abort" }
  | { t: "body"; id: number; req: number; op: "credit"; bytes: number }
  /**
   * Calls kept function `version` once per item of the frame body (one JSON text per line), in
   * order, in one realm; each item is isolated from the others' failures. "careful": report
   * progress after every item (the host is finding which item kills the carrier).
   */
  | { t: "batch"; id: number; version: number; count: number; limits: EvalLimits; careful: boolean }
  /** Forgets kept function `version` and its realm. */
  | { t: "drop"; version: number }
  /** Prepared modules, sent before the first eval that needs them. */
  | ModulesMessage
  /** The sandbox's tools (realms made before it are dropped). */
  | ToolCatalogMessage
  /** Body: V8-serialized sandbox-wide globals, installed into every realm of this carrier. */
  | { t: "globals" }
  | { t: "reply"; call: number; ok: true; value: unknown }
  | { t: "reply"; call: number; ok: false; error: CallError }
  /** A call's result streaming down: "data" (frame body), then "end" or "error". */
  | { t: "stream"; call: number; op: "data" | "end" }
  | { t: "stream"; call: number; op: "error"; error: CallError }
  /** The carrier may stream this many more bytes of the call's payload up. */
  | { t: "stream"; call: number; op: "credit"; bytes: number };
