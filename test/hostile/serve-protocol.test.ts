/**
 * A carrier lying about an app's exchanges (see src/host/serve.ts): the host believes nothing it
 * did not ask for or give credit for. A carrier that lies is killed, the request it was serving
 * gets 502, and the next request starts the app on a real carrier.
 */
import { test, describe, before, afterEach } from "node:test";
import assert from "node:assert/strict";
import { App, configurePool } from "../../src/index.js";
import { fakeCarrier } from "./fake-carrier.js";

/** The fake starts the app as a real carrier would, then answers each request with `onRequest(request, send)`. */
function appCarrier(onRequest: string): string {
  const prelude = `send({ t: "ready" });
const requests = new FrameReader(1 << 30);
const onRequest = (request) => { ${onRequest} };
process.stdin.on("data", (chunk) => { for (const frame of requests.push(chunk)) if (frame.header.t === "request") onRequest(frame.header); });`;
  // It answers the eval that starts the app, and no other (a probe gets no answer from it).
  return fakeCarrier('if (message.t === "eval" && message.serve) send({ t: "done", id: message.id, ok: true, as: "undefined", logs: [], stats: { wallMs: 0, cpuMs: 0 } });', prelude);
}

before(() => configurePool({ size: 0 }));
afterEach(() => {
  delete process.env.PADDOCK_DENO;
});

/**
 * An app whose first carrier is a fake answering with `onRequest`: its request gets `status` (or,
 * "broken", a head whose body breaks off), and the next one the real app's answer.
 */
async function expectDisbelieved(onRequest: string, status: number | "broken" = 502): Promise<void> {
  process.env.PADDOCK_DENO = appCarrier(onRequest);
  const app = await App.create({ sources: { "main.js": `export default { fetch: () => new Response("real") }` }, requestTimeoutMs: 1_000 });
  delete process.env.PADDOCK_DENO;
  try {
    const lied = await app.fetch("http://app/");
    if (status === "broken") {
      await assert.rejects(lied.text(), /broke off/);
    } else {
      assert.equal(lied.status, status);
      assert.doesNotMatch(await lied.text(), /lie|secret/);
    }
    let answer = "";
    for (let attempt = 0; attempt < 40 && answer !== "real"; attempt++) {
      const response = await app.fetch("http://app/");
      answer = await response.text();
      if (answer !== "real") await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.equal(answer, "real", "the app answers from a real carrier");
  } finally {
    await app.close(0);
  }
}

const head = (extra = "") => `{ t: "response", id: request.id, req: request.req, ok: true, status: 200, statusText: "", headers: [], body: true${extra} }`;

describe("a carrier lying about an exchange is killed; the next request is served by a real carrier", () => {
  test("a response to a request never sent", () => expectDisbelieved(`send({ ...${head(", whole: true")}, req: request.req + 5 }, Buffer.from("lie"));`));
  test("a second response to one request", () => expectDisbelieved(`send(${head()}); send(${head()});`, "broken"));
  test("body bytes beyond the credit the host gave", () =>
    expectDisbelieved(`send(${head()}); send({ t: "body", id: request.id, req: request.req, op: "data" }, Buffer.alloc(300 * 1024));`, "broken"));
  test("a whole body larger than the host's credit", () => expectDisbelieved(`send(${head(", whole: true")}, Buffer.alloc(300 * 1024));`));
  test("body bytes for a response without a body", () =>
    expectDisbelieved(`send({ ...${head()}, body: false }); send({ t: "body", id: request.id, req: request.req, op: "data" }, Buffer.from("lie"));`, 200));
  test("body bytes after the body's end", () =>
    expectDisbelieved(`send(${head()}); send({ t: "body", id: request.id, req: request.req, op: "end" }); setTimeout(() => send({ t: "body", id: request.id, req: request.req, op: "data" }, Buffer.from("lie")), 50);`, 200));
  test("a status no Response can have", () => expectDisbelieved(`send({ ...${head(", whole: true")}, status: 101 });`));
  test("more headers than a response may carry", () =>
    expectDisbelieved(`send({ ...${head(", whole: true")}, headers: Array.from({ length: 300 }, (_, i) => ["x-" + i, "v"]) });`));
  test("a response for another eval's id", () => expectDisbelieved(`send({ ...${head(", whole: true")}, id: request.id + 1 });`));
  test("a data message without its bytes", () => expectDisbelieved(`send(${head()}); send({ t: "body", id: request.id, req: request.req, op: "data" });`, "broken"));
  test("a request never answered: 504, then the carrier that answers nothing is replaced", () => expectDisbelieved("", 504));
});
