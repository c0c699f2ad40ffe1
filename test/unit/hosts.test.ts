import { test } from "node:test";
import assert from "node:assert/strict";
import { HostPatterns } from "../../src/capabilities/fetch/hosts.js";

/** Which pattern admits each URL (undefined: none), checked row by row. */
function expectMatches(patterns: readonly string[], table: Record<string, string | undefined>): void {
  const hosts = new HostPatterns(patterns, "net.allow");
  for (const [url, expected] of Object.entries(table)) {
    assert.equal(hosts.match(new URL(url)), expected, url);
  }
}

test("an exact name admits that host only, whatever the path, query or userinfo", () => {
  expectMatches(["api.github.com"], {
    "https://api.github.com/": "api.github.com", "http://api.github.com/repos?x=1#y": "api.github.com",
    "https://user:pw@api.github.com/": "api.github.com", "https://API.GitHub.COM/": "api.github.com",
    "https://github.com/": undefined, "https://x.api.github.com/": undefined, "https://api.github.com.evil.com/": undefined,
    "https://evilapi.github.com/": undefined, "https://api.github.co/": undefined, "https://api-github.com/": undefined,
    "http://api.github.com@127.0.0.1/": undefined, "http://127.0.0.1/api.github.com": undefined,
  });
});

test("patterns are normalized like URL hosts: case, IDN, full-width dots, percent-escapes", () => {
  expectMatches(["API.GitHub.COM", "bücher.example", "*.MÜNCHEN.test", "example。com", "ex%61mple.org"], {
    "https://api.github.com/": "API.GitHub.COM",
    "https://xn--bcher-kva.example/": "bücher.example", "https://BÜCHER.example/": "bücher.example",
    "https://www.xn--mnchen-3ya.test/": "*.MÜNCHEN.test", "https://a.b.münchen.test/": "*.MÜNCHEN.test",
    "https://münchen.test/": undefined,
    "https://example.com/": "example。com", "https://example.org/": "ex%61mple.org",
    "https://bucher.example/": undefined,
  });
  expectMatches(["xn--bcher-kva.example"], { "https://bücher.example/": "xn--bcher-kva.example" });
});

test("one trailing dot is ignored on either side", () => {
  expectMatches(["LOCALHOST.", "example.com"], {
    "http://localhost/": "LOCALHOST.", "http://LOCALHOST./": "LOCALHOST.", "http://localhost../": undefined,
    "https://example.com./": "example.com", "https://example.com../": undefined,
  });
  expectMatches(["*.example.net."], { "https://a.example.net./": "*.example.net.", "https://a.example.net/": "*.example.net." });
});

test("a wildcard admits subdomains at any depth, never the name itself", () => {
  expectMatches(["*.example.com"], {
    "https://a.example.com/": "*.example.com", "https://a.b.c.d.example.com/": "*.example.com",
    "https://A.EXAMPLE.COM/": "*.example.com", "https://a.example.com./": "*.example.com",
    "https://example.com/": undefined, "https://example.com./": undefined, "https://badexample.com/": undefined,
    "https://a.example.com.evil.net/": undefined, "https://example.com.a.example.org/": undefined,
    "https://a.example.co/": undefined, "https://a-example.com/": undefined,
  });
  expectMatches(["*.com"], { "https://example.com/": "*.com", "https://com/": undefined, "https://example.org/": undefined });
});

test("the most specific pattern wins: exact name, then the closest wildcard, then *", () => {
  expectMatches(["*", "*.example.com", "*.b.example.com", "a.example.com"], {
    "https://a.example.com/": "a.example.com", "https://x.b.example.com/": "*.b.example.com",
    "https://b.example.com/": "*.example.com", "https://c.example.com/": "*.example.com",
    "https://example.com/": "*", "https://other.org/": "*", "http://127.0.0.1/": "*", "http://[::1]/": "*",
  });
});

test("* admits any host, IP literals included (the address policy judges those)", () => {
  expectMatches(["*"], {
    "https://example.com/": "*", "http://localhost/": "*", "http://10.0.0.1/": "*", "http://[fe80::1]/": "*",
    "http://example.com:8080/": undefined, "ftp://example.com/": undefined,
  });
});

test("IPv4 patterns match however the address was spelled", () => {
  for (const pattern of ["127.0.0.1", "127.1", "0x7f.1", "0x7f000001", "2130706433", "0177.0.0.1", "127.0.0.1."]) {
    expectMatches([pattern], {
      "http://127.0.0.1/": pattern, "http://127.1/": pattern, "http://0x7f.1/": pattern, "http://2130706433/": pattern,
      "http://127.0.0.2/": undefined, "http://[::ffff:127.0.0.1]/": undefined, "http://127.0.0.1.nip.io/": undefined,
    });
  }
});

test("IPv6 patterns are bracketed and compared in canonical form", () => {
  expectMatches(["[::1]"], { "http://[::1]/": "[::1]", "http://[0:0:0:0:0:0:0:1]/": "[::1]", "http://127.0.0.1/": undefined });
  expectMatches(["[0:0::1]:8080"], { "http://[::1]:8080/": "[0:0::1]:8080", "http://[::1]/": undefined });
  expectMatches(["[::ffff:127.0.0.1]"], { "http://[::ffff:7f00:1]/": "[::ffff:127.0.0.1]", "http://127.0.0.1/": undefined });
  expectMatches(["[FE80::1]"], { "http://[fe80::1]/": "[FE80::1]", "http://[fe80::2]/": undefined });
});

test("without a port: 80 and 443 with any scheme, or the scheme's own default", () => {
  expectMatches(["example.com"], {
    "http://example.com/": "example.com", "https://example.com/": "example.com",
    "http://example.com:443/": "example.com", "https://example.com:80/": "example.com",
    "http://example.com:8080/": undefined, "https://example.com:8443/": undefined, "http://example.com:1/": undefined,
  });
  expectMatches(["https://example.com"], {
    "https://example.com/": "https://example.com", "https://example.com:443/": "https://example.com",
    "http://example.com/": undefined, "http://example.com:443/": undefined, "https://example.com:80/": undefined,
  });
  expectMatches(["http://example.com"], {
    "http://example.com/": "http://example.com", "https://example.com/": undefined, "http://example.com:443/": undefined,
  });
});

test("an explicit port admits only that port; :* admits any", () => {
  expectMatches(["example.com:8080"], {
    "http://example.com:8080/": "example.com:8080", "https://example.com:8080/": "example.com:8080",
    "http://example.com/": undefined, "https://example.com/": undefined, "http://example.com:8081/": undefined,
  });
  expectMatches(["https://example.com:8443", "example.com:443"], {
    "https://example.com:8443/": "https://example.com:8443", "http://example.com:8443/": undefined,
    "https://example.com/": "example.com:443", "http://example.com:443/": "example.com:443", "http://example.com/": undefined,
  });
  expectMatches(["example.com:*"], {
    "http://example.com:1/": "example.com:*", "https://example.com:65535/": "example.com:*", "http://example.com/": "example.com:*",
  });
  expectMatches(["http://example.com:*", "*.example.com:1"], {
    "http://example.com:9/": "http://example.com:*", "https://example.com:9/": undefined,
    "https://a.example.com:1/": "*.example.com:1", "https://a.example.com/": undefined,
  });
  expectMatches(["*:*"], { "http://anything.test:12345/": "*:*", "https://[::1]:1/": "*:*" });
});

test("several patterns for one host: the first that admits the URL", () => {
  expectMatches(["example.com:8080", "https://example.com", "example.com"], {
    "http://example.com:8080/": "example.com:8080", "https://example.com/": "https://example.com",
    "http://example.com/": "example.com",
  });
});

test("schemes: only http and https URLs ever match; pattern schemes are case-insensitive", () => {
  expectMatches(["*:*", "HTTPS://secure.test"], {
    "ftp://example.com/": undefined, "ws://example.com/": undefined, "wss://example.com/": undefined,
    "file:///etc/passwd": undefined, "data:text/plain,hi": undefined, "blob:https://example.com/x": undefined,
    "javascript:alert(1)": undefined, "https://secure.test/": "HTTPS://secure.test",
  });
  expectMatches(["HTTPS://secure.test"], { "http://secure.test/": undefined });
  expectMatches([], { "https://example.com/": undefined });
});

test("invalid patterns throw a TypeError naming the list, the index, the pattern and why", () => {
  const cases: [unknown, string][] = [
    ["", "the host is empty"], ["https://", "the host is empty"], [":80", "the host is empty"], ["http://:80", "the host is empty"],
    ["ftp://example.com", "the scheme must be http or https"], ["ws://example.com", "the scheme must be http or https"],
    ["://example.com", "the scheme must be http or https"], ["https://http://example.com", "a path is not allowed"],
    ["example.com/", "a path is not allowed"], ["example.com/api", "a path is not allowed"], ["http:/example.com", "a path is not allowed"],
    ["example.com\\x", "a path is not allowed"], ["example.com?q=1", "a query or fragment is not allowed"],
    ["example.com#top", "a query or fragment is not allowed"], ["user@example.com", "userinfo is not allowed"],
    ["user:pass@example.com", "userinfo is not allowed"], ["allowed.example@127.0.0.1", "userinfo is not allowed"],
    ["example.com:0", "the port must be 1-65535 or *"], ["example.com:65536", "the port must be 1-65535 or *"],
    ["example.com:", "the port must be 1-65535 or *"], ["example.com:-1", "the port must be 1-65535 or *"],
    ["example.com:+80", "the port must be 1-65535 or *"], ["example.com:8o", "the port must be 1-65535 or *"],
    ["example.com:*8", "the port must be 1-65535 or *"], ["example.com:100000", "the port must be 1-65535 or *"],
    ["example.com:80:80", "too many colons (IPv6 literals go in brackets)"], ["::1", "too many colons (IPv6 literals go in brackets)"],
    ["[::1", "an unclosed ["], ["[::1]x", 'unexpected text after "]"'], ["[::1]:", "the port must be 1-65535 or *"],
    ["a.*.com", 'a wildcard may only be a leading "*." label'], ["*a.com", 'a wildcard may only be a leading "*." label'],
    ["a*", 'a wildcard may only be a leading "*." label'], ["*.*.example.com", 'a wildcard may only be a leading "*." label'],
    ["**.example.com", 'a wildcard may only be a leading "*." label'], ["*.*", 'a wildcard may only be a leading "*." label'],
    ["example.*", 'a wildcard may only be a leading "*." label'], ["＊.example.com", 'a wildcard may only be a leading "*." label'],
    ["*.", "not a valid host name"], [".example.com", "the host name has an empty label"], ["a..b", "the host name has an empty label"],
    ["example.com..", "the host name has an empty label"], ["*.1.2.3.4", 'only a domain name may follow "*."'],
    ["*.0.0.1", 'only a domain name may follow "*."'], ["*.[::1]", "too many colons (IPv6 literals go in brackets)"],
    ["[1.2.3.4]", "not a valid host name"], ["[example.com]", "not a valid host name"], ["256.0.0.1", "not a valid host name"],
    ["1.2.3.4.5", "not a valid host name"], ["a<b.com", "not a valid host name"], ["a%2Fb.com", "not a valid host name"],
    [" example.com", "whitespace and control characters are not allowed"],
    ["example.com\n", "whitespace and control characters are not allowed"],
    ["exa\tmple.com", "whitespace and control characters are not allowed"],
    ["exa\u0000mple.com", "whitespace and control characters are not allowed"],
    ["example.com\u00a0", "whitespace and control characters are not allowed"],
    [42, "expected a string"], [undefined, "expected a string"],
  ];
  for (const [pattern, why] of cases) {
    const shown = typeof pattern === "string" ? JSON.stringify(pattern) : String(pattern);
    assert.throws(() => new HostPatterns(["ok.test", "*.ok.test", pattern as string], "net.allow"), {
      name: "TypeError",
      message: `net.allow[2]: ${shown} is not a host pattern (${why})`,
    }, shown);
  }
  assert.throws(() => new HostPatterns(["x/"], "secrets.TOKEN.hosts"), {
    message: 'secrets.TOKEN.hosts[0]: "x/" is not a host pattern (a path is not allowed)',
  });
});
