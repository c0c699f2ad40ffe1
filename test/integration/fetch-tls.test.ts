/**
 * https through the pinned connector: the connection goes to the checked address, while TLS still
 * speaks to (and verifies) the hostname. The certificates in test/network/tls are a test CA's, for
 * "api.test", valid for a century; the CA's key was thrown away once they were made.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { Sandbox, type SandboxOptions } from "../../src/index.js";

const tlsDir = new URL("../../../test/network/tls/", import.meta.url);
const ca = readFileSync(new URL("ca.pem", tlsDir), "utf8");
const SECRET = "tls-secret-value-0123456789";

interface Seen {
  servername: string | false | null;
  host: string | undefined;
  authorization: string | undefined;
}

let server: Server;
let port: number;
const seen: Seen[] = [];

before(async () => {
  server = createServer({ cert: readFileSync(new URL("api.pem", tlsDir)), key: readFileSync(new URL("api.key", tlsDir)) }, (request, response) => {
    seen.push({ servername: (request.socket as TLSSocket).servername, host: request.headers.host, authorization: request.headers.authorization });
    response.setHeader("content-type", "application/json");
    response.end(JSON.stringify({ secure: true }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

function options(net: Partial<NonNullable<SandboxOptions["net"]>>): SandboxOptions {
  return {
    net: {
      allow: [`api.test:${port}`, `other.test:${port}`],
      allowPrivate: ["127.0.0.1"],
      lookup: () => ["127.0.0.1"],
      ...net,
    },
  };
}

describe("https with a pinned address", () => {
  test("TLS speaks to the hostname (SNI, certificate) while the socket goes to the checked address", async () => {
    seen.length = 0;
    await using sandbox = await Sandbox.create(options({ ca: [ca], secrets: { TOKEN: { value: SECRET, hosts: [`api.test:${port}`] } } }));
    const result = await sandbox.run(`const r = await fetch("https://api.test:${port}/", { headers: { authorization: "Bearer " + env.TOKEN } }); [r.status, await r.json()]`);
    assert.equal(result.ok, true, result.ok ? "" : result.error.message);
    assert.deepEqual(result.ok && result.value, [200, { secure: true }]);
    assert.deepEqual(seen, [{ servername: "api.test", host: `api.test:${port}`, authorization: `Bearer ${SECRET}` }]);
    assert.equal(result.fetches[0]?.verdict, "allowed");
  });

  test("a certificate the host does not trust fails the fetch with a TypeError", async () => {
    await using sandbox = await Sandbox.create(options({}));
    const result = await sandbox.run(`try { await fetch("https://api.test:${port}/"); "reached" } catch (error) { [error.name, error.message] }`);
    assert.equal(result.ok, true);
    const [name, message] = result.ok ? (result.value as [string, string]) : ["", ""];
    assert.equal(name, "TypeError");
    assert.match(message, /^fetch to api\.test:\d+ failed: the TLS handshake failed \(/);
  });

  test("a certificate for another name fails, although the address is the same and allowed", async () => {
    seen.length = 0;
    await using sandbox = await Sandbox.create(options({ ca: [ca] }));
    const result = await sandbox.run(`try { await fetch("https://other.test:${port}/"); "reached" } catch (error) { [error.name, error.message] }`);
    assert.equal(result.ok, true);
    const [name, message] = result.ok ? (result.value as [string, string]) : ["", ""];
    assert.equal(name, "TypeError");
    assert.match(message, /TLS handshake failed \(ERR_TLS_CERT_ALTNAME_INVALID\)/);
    assert.equal(seen.length, 0, "no request may be sent over a connection whose certificate is wrong");
  });

  test("a secret whose hosts name no scheme is not sent over plain http, even to its host", async () => {
    const received: Array<string | undefined> = [];
    const plain = createHttpServer((request, response) => {
      received.push(request.headers.authorization);
      response.end("ok");
    });
    await new Promise<void>((resolve) => plain.listen(0, "127.0.0.1", resolve));
    const plainPort = (plain.address() as AddressInfo).port;
    try {
      await using sandbox = await Sandbox.create(options({ allow: ["api.test:*"], secrets: { TOKEN: { value: SECRET, hosts: ["api.test:*"] } } }));
      const result = await sandbox.run(`(await fetch("http://api.test:${plainPort}/", { headers: { authorization: env.TOKEN } })).status`);
      assert.equal(result.ok && result.value, 200);
      assert.equal(received.length, 1);
      assert.match(received[0] ?? "", /^paddock-secret:TOKEN:[0-9a-f]+$/);
    } finally {
      plain.closeAllConnections();
      plain.close();
    }
  });
});
