/**
 * `fetch` for realms. The carrier has no network: every request is a call to the host, which
 * checks the sandbox's policy and performs it. Request and response bodies stream over the call,
 * the response no faster than user code reads it; an AbortSignal cancels the host's request.
 */
import { types } from "node:util";
import { setImmediate } from "node:timers";
import type { CarrierCapability } from "../../carrier/capability.js";
import { exposeGlobal, liveScope } from "../../carrier/capability.js";
import type { CallHandle, EvalScope } from "../../carrier/scope.js";
import { capabilityError } from "../../carrier/values.js";
import { servedStream } from "../../shared/served-stream.js";
import type { CallError } from "../../protocol/messages.js";
import { headerListProblem } from "../../protocol/limits.js";
import type { FetchRequest, FetchResponseHead } from "./messages.js";
import { MAX_CHUNK_BYTES, REQUEST_HEAD_LIMITS as LIMITS, RESPONSE_WINDOW_BYTES } from "./flow.js";

/** Read credit is returned to the host in batches of this many bytes. */
const CREDIT_BATCH_BYTES = RESPONSE_WINDOW_BYTES / 4;

type Fail = (error: CallError) => Error;

export const fetchCapability: CarrierCapability = {
  install(global, slot, { realm }) {
    const fail: Fail = (error) => capabilityError(realm, error);
    // A function of one declared parameter, as fetch is; the membrane makes it the realm's own,
    // returning the realm's Promise and Response.
    const fetch = (input: unknown, init: RequestInit | undefined = undefined): Promise<Response> => sandboxFetch(input, init);
    exposeGlobal(realm, "fetch", fetch);
    async function sandboxFetch(input: unknown, init: RequestInit | undefined): Promise<Response> {
      let request: Request;
      try {
        request = new Request(input as RequestInfo, init);
      } catch (error) {
        throw fail({ name: "TypeError", message: `fetch: ${messageOf(error)}` });
      }
      const { signal } = request;
      if (signal.aborted) throw signal.reason;
      // A stream the code gave is streamed up; any other body is small and known: it goes whole.
      const streamed = request.body !== null && init?.body instanceof ReadableStream;
      const body = request.body !== null && !streamed ? new Uint8Array(await request.arrayBuffer()) : undefined;
      const scope = liveScope(slot);
      if (!scope) throw fail({ name: "TypeError", message: "fetch: the eval that made this request has ended" });
      const args: FetchRequest = {
        url: request.url,
        method: request.method,
        headers: [...request.headers],
        body: request.body === null ? "none" : streamed ? "stream" : "inline",
        redirect: request.redirect,
      };
      const tooBig = oversized(args);
      if (tooBig) throw fail({ name: "TypeError", message: `fetch: ${tooBig}` });
      const call = scope.call("fetch", args, body);
      const cancel = () => call.send("cancel");
      signal.addEventListener("abort", cancel, { once: true });
      let uploadFailure: string | undefined;
      if (streamed) void upload(request.body!, call, (why) => (uploadFailure = why));
      let head: FetchResponseHead;
      let inline: Uint8Array | undefined;
      try {
        const reply = await untilAborted(call.reply, signal);
        head = reply.value as FetchResponseHead;
        inline = reply.body;
      } catch (error) {
        signal.removeEventListener("abort", cancel);
        if (signal.aborted) throw signal.reason;
        // The request was cancelled because its body stream failed: that is the error to report.
        throw fail(uploadFailure !== undefined ? { name: "TypeError", message: `fetch: the request body stream failed: ${uploadFailure}` } : (error as CallError));
      }
      signal.removeEventListener("abort", cancel);
      let response: Response;
      try {
        const body = head.body === "stream" ? download(call, scope, signal, fail) : head.body === "inline" ? inline ?? new Uint8Array(0) : null;
        response = new Response(body as BodyInit | null, { status: head.status, statusText: head.statusText, headers: head.headers });
      } catch (error) {
        call.send("cancel");
        throw fail({ name: "TypeError", message: `fetch: the response cannot be represented (${messageOf(error)})` });
      }
      // Response's constructor cannot set these; own properties of the realm's Response shadow its
      // prototype's getters.
      Object.defineProperties(realm.membrane.toRealm(response) as object, {
        url: { value: head.url, enumerable: true },
        redirected: { value: head.redirected, enumerable: true },
        type: { value: "basic", enumerable: true },
      });
      return response;
    }
  },
};

/** The reply, unless the signal aborts first: then its reason, as fetch does. */
function untilAborted<T>(reply: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    reply.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Streams a request body up. Chunks must be Uint8Arrays, as for Deno's own fetch. */
async function upload(stream: ReadableStream<Uint8Array>, call: CallHandle, failed: (why: string) => void): Promise<void> {
  const reader = stream.getReader();
  try {
    for (;;) {
      // A stream that makes chunks without ever waiting would never let the host's answer in
      // (a refusal, say): each chunk waits for a turn of the event loop.
      await new Promise((resolve) => setImmediate(resolve));
      const { done, value } = await reader.read();
      if (!call.isOpen) break;
      if (done) return call.send("end");
      if (!types.isUint8Array(value)) {
        failed("its chunks must be Uint8Arrays");
        break;
      }
      // Copied with the carrier's constructor: never calls back into the realm.
      const bytes = new Uint8Array(value);
      // No faster than the host's HTTP client sends it on: the host gives credit as it does.
      for (let offset = 0; offset < bytes.byteLength; ) {
        const granted = await call.takeCredit(Math.min(MAX_CHUNK_BYTES, bytes.byteLength - offset));
        if (granted === 0) break;
        call.send("data", bytes.subarray(offset, offset + granted));
        offset += granted;
      }
      if (!call.isOpen) break;
    }
  } catch (error) {
    failed(messageOf(error));
  }
  // Over, one way or another, before its end: the host gives up the request.
  call.send("cancel");
  reader.cancel().catch(() => {});
}

/**
 * The response body: chunks the host sends, handed out as the code reads, with credit returned
 * so the host sends more. Cancelling the stream or aborting the signal cancels the host's request.
 */
function download(call: CallHandle, scope: EvalScope, signal: AbortSignal, fail: Fail): ReadableStream<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let ended: { error?: CallError } | undefined;
  let waiting: (() => void) | undefined;
  let unreported = 0;
  const notify = () => {
    const resume = waiting;
    waiting = undefined;
    resume?.();
  };
  call.listen((event) => {
    if (event.op === "data") chunks.push(event.data);
    else ended = event.op === "error" ? { error: event.error } : {};
    notify();
  });
  const onAbort = () => {
    call.send("cancel");
    notify();
  };
  signal.addEventListener("abort", onAbort, { once: true });
  // The host cancels an eval's requests when it ends: a body kept for later (in a persistent
  // realm) fails then, instead of waiting for chunks that will never come.
  const unregister = scope.onEnd(() => {
    ended ??= { error: { name: "TypeError", message: "fetch: the eval that made this request has ended, and its body can no longer be read" } };
    notify();
  });
  // Read to its end or cancelled, the body is no longer the scope's (an app's scope lasts).
  const stop = () => {
    signal.removeEventListener("abort", onAbort);
    unregister();
  };
  /** Hands the next chunk, the end or the error to the stream; false when there is nothing yet. */
  const serve = (controller: ReadableStreamDefaultController<Uint8Array>): boolean => {
    const chunk = chunks.shift();
    if (signal.aborted) {
      stop();
      controller.error(signal.reason);
    } else if (chunk) {
      controller.enqueue(chunk);
      unreported += chunk.byteLength;
      if (unreported >= CREDIT_BATCH_BYTES) {
        call.send("credit", undefined, unreported);
        unreported = 0;
      }
    } else if (ended) {
      stop();
      if (ended.error) controller.error(fail(ended.error));
      else controller.close();
    } else {
      return false;
    }
    return true;
  };
  return servedStream(
    serve,
    (retry) => (waiting = retry),
    () => {
      stop();
      call.send("cancel");
    },
  );
}

/** What makes a request's head too big to ask the host for, if anything. */
function oversized({ url, method, headers }: FetchRequest): string | undefined {
  if (url.length > LIMITS.urlChars) return `the URL is longer than ${LIMITS.urlChars} characters`;
  if (method.length > LIMITS.methodChars) return `the method is longer than ${LIMITS.methodChars} characters`;
  return headerListProblem(headers, LIMITS, "request");
}

function messageOf(error: unknown): string {
  try {
    return String((error as Error).message);
  } catch {
    return "invalid request";
  }
}
