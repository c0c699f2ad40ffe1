import { test } from "node:test";
import assert from "node:assert/strict";
import { AddressPolicy, ipLiteral } from "../../src/capabilities/fetch/address.js";

const noPrivate = new AddressPolicy([]);

/** "ok" for public addresses, else the refusal's rule, so tables read as address → outcome. */
function outcome(policy: AddressPolicy, address: string): string {
  const verdict = policy.check(address);
  if (verdict.ok) return verdict.rule === "public address" ? "ok" : `ok: ${verdict.rule}`;
  return verdict.rule;
}

function expectAll(policy: AddressPolicy, table: Record<string, string>): void {
  for (const [address, expected] of Object.entries(table)) {
    assert.equal(outcome(policy, address), expected, address);
  }
}

test("IPv4 special ranges, first and last address, and their public neighbours", () => {
  expectAll(noPrivate, {
    "0.0.0.0": "unspecified address", "0.255.255.255": "unspecified address", "1.0.0.0": "ok",
    "9.255.255.255": "ok", "10.0.0.0": "private address", "10.255.255.255": "private address", "11.0.0.0": "ok",
    "172.15.255.255": "ok", "172.16.0.0": "private address", "172.31.255.255": "private address", "172.32.0.0": "ok",
    "192.167.255.255": "ok", "192.168.0.0": "private address", "192.168.255.255": "private address", "192.169.0.0": "ok",
    "126.255.255.255": "ok", "127.0.0.0": "loopback address", "127.255.255.255": "loopback address", "128.0.0.0": "ok",
    "169.253.255.255": "ok", "169.254.0.0": "link-local address", "169.254.255.255": "link-local address", "169.255.0.0": "ok",
    "100.63.255.255": "ok", "100.64.0.0": "carrier-grade NAT address", "100.127.255.255": "carrier-grade NAT address",
    "100.128.0.0": "ok",
    "223.255.255.255": "ok", "224.0.0.0": "multicast address", "239.255.255.255": "multicast address",
    "240.0.0.0": "reserved address", "255.255.255.254": "reserved address", "255.255.255.255": "broadcast address",
  });
});

test("IPv4 reserved, documentation, benchmarking, AS112 and AMT blocks are refused", () => {
  expectAll(noPrivate, {
    "192.0.0.0": "reserved address", "192.0.0.255": "reserved address", "192.0.1.0": "ok",
    "192.0.2.0": "reserved address", "192.0.2.255": "reserved address", "192.0.3.0": "ok",
    "192.88.99.0": "reserved address", "192.88.99.255": "reserved address", "192.88.100.0": "ok",
    "198.17.255.255": "ok", "198.18.0.0": "reserved address", "198.19.255.255": "reserved address", "198.20.0.0": "ok",
    "198.51.100.7": "reserved address", "203.0.113.7": "reserved address", "203.0.114.0": "ok",
    "192.175.48.1": "reserved address", "192.31.196.1": "reserved address", "192.52.193.1": "reserved address",
    "8.8.8.8": "ok", "1.1.1.1": "ok", "223.5.5.5": "ok",
  });
});

test("cloud metadata addresses are refused, and only those exact addresses", () => {
  expectAll(noPrivate, {
    "169.254.169.254": "cloud metadata address", "169.254.169.253": "link-local address",
    "169.254.170.2": "cloud metadata address", "169.254.170.23": "cloud metadata address",
    "169.254.170.3": "link-local address",
    "168.63.129.16": "cloud metadata address", "168.63.129.15": "ok", "168.63.129.17": "ok",
    "100.100.100.200": "cloud metadata address", "100.100.100.201": "carrier-grade NAT address",
    "fd00:ec2::254": "cloud metadata address", "FD00:EC2::254": "cloud metadata address",
    "fd00:ec2:0:0:0:0:0:254": "cloud metadata address", "[fd00:ec2::254]": "cloud metadata address",
    "fd00:ec2::23": "cloud metadata address", "fd00:ec2::255": "unique-local address",
    "::ffff:169.254.169.254": "cloud metadata address", "::ffff:a9fe:a9fe": "cloud metadata address",
    "::ffff:168.63.129.16": "cloud metadata address",
  });
});

test("IPv6 special ranges, first and last address, and their neighbours", () => {
  expectAll(noPrivate, {
    "::": "unspecified address", "0:0:0:0:0:0:0:0": "unspecified address",
    "::1": "loopback address", "0:0:0:0:0:0:0:1": "loopback address",
    "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "reserved address",
    "fe80::": "link-local address", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "link-local address",
    "fec0::1": "reserved address",
    "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "reserved address",
    "fc00::": "unique-local address", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "unique-local address",
    "ff00::": "multicast address", "ff02::1": "multicast address", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "multicast address",
    "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "reserved address", "2000::": "ok",
    "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "ok", "3fff::": "reserved address",
    "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff": "reserved address", "3fff:1000::": "ok", "4000::": "reserved address",
    "100::": "reserved address", "100::ffff:ffff:ffff:ffff": "reserved address", "5f00::1": "reserved address",
    "2001:db8::": "reserved address", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff": "reserved address", "2001:db9::": "ok",
    "2001:1::1": "reserved address", "2001:2::1": "reserved address", "2001:3::1": "reserved address",
    "2001:4:112::1": "reserved address", "2001:10::1": "reserved address", "2001:20::1": "reserved address",
    "2001:30::1": "reserved address", "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff": "reserved address", "2001:200::": "ok",
    "2620:4f:8000::1": "reserved address", "2620:4f:8001::": "ok",
    "2606:4700:4700::1111": "ok", "2001:4860:4860::8888": "ok", "2a00:1450:4001:80b::200e": "ok",
  });
});

test("IPv6 transition addresses are refused by kind", () => {
  expectAll(noPrivate, {
    "64:ff9b::": "IPv6 transition address (NAT64)", "64:ff9b::808:808": "IPv6 transition address (NAT64)",
    "64:ff9b::8.8.8.8": "IPv6 transition address (NAT64)", "64:ff9b::ffff:ffff": "IPv6 transition address (NAT64)",
    "64:ff9b::1:0:0": "reserved address",
    "64:ff9b:1::": "IPv6 transition address (NAT64)",
    "64:ff9b:1:ffff:ffff:ffff:ffff:ffff": "IPv6 transition address (NAT64)", "64:ff9b:2::": "reserved address",
    "2002::": "IPv6 transition address (6to4)", "2002:7f00:1::": "IPv6 transition address (6to4)",
    "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "IPv6 transition address (6to4)", "2003::": "ok",
    "2001::": "IPv6 transition address (Teredo)", "2001:0:ffff:ffff:ffff:ffff:ffff:ffff": "IPv6 transition address (Teredo)",
    "::2": "IPv6 transition address (IPv4-compatible)", "::ffff": "IPv6 transition address (IPv4-compatible)",
    "::ffff:ffff": "IPv6 transition address (IPv4-compatible)", "::1:0:0": "reserved address",
    "::ffff:0:0:0": "IPv6 transition address (IPv4-translated)",
    "::ffff:0:ffff:ffff": "IPv6 transition address (IPv4-translated)",
    "::ffff:0:8.8.8.8": "IPv6 transition address (IPv4-translated)",
  });
});

test("the dotted IPv4-compatible spelling is not mistaken for IPv4-mapped", () => {
  // ipaddr.js alone reads "::8.8.8.8" as "::ffff:8.8.8.8"; the socket would reach ::808:808.
  expectAll(noPrivate, {
    "::8.8.8.8": "IPv6 transition address (IPv4-compatible)", "[::8.8.8.8]": "IPv6 transition address (IPv4-compatible)",
    "::127.0.0.1": "IPv6 transition address (IPv4-compatible)",
    "0:0:0:0:0:0:8.8.8.8": "IPv6 transition address (IPv4-compatible)",
    "::808:808": "IPv6 transition address (IPv4-compatible)",
  });
  const policy = new AddressPolicy(["::10.0.0.0/104"]);
  expectAll(policy, { "::10.0.0.1": "ok: allowPrivate ::10.0.0.0/104", "10.0.0.1": "private address", "::ffff:10.0.0.1": "private address" });
});

test("IPv4-mapped addresses are judged as the IPv4 address they reach", () => {
  expectAll(noPrivate, {
    "::ffff:127.0.0.1": "loopback address", "[::ffff:127.0.0.1]": "loopback address",
    "::ffff:7f00:1": "loopback address", "[::ffff:7f00:1]": "loopback address", "::FFFF:7F00:1": "loopback address",
    "0:0:0:0:0:ffff:127.0.0.1": "loopback address", "0000:0000:0000:0000:0000:ffff:7f00:0001": "loopback address",
    "::ffff:10.0.0.1": "private address", "::ffff:0.0.0.0": "unspecified address", "::ffff:0:0": "unspecified address",
    "::ffff:255.255.255.255": "broadcast address", "::ffff:100.64.0.1": "carrier-grade NAT address",
    "::ffff:8.8.8.8": "ok", "[::ffff:808:808]": "ok",
  });
});

test("brackets, zone ids and upper-case hex", () => {
  expectAll(noPrivate, {
    "[::1]": "loopback address", "[0:0:0:0:0:0:0:1]": "loopback address", "[::]": "unspecified address",
    "fe80::1%eth0": "link-local address", "fe80::1%25eth0": "link-local address", "fe80::1%eth-0.5": "link-local address",
    "[fe80::1%eth0]": "link-local address", "FE80::1": "link-local address", "FE80::1%ETH0": "link-local address",
    "::1%lo": "loopback address", "2606:4700:4700::1111%eth0": "ok", "FC00::1": "unique-local address",
    "2606:4700:4700:0:0:0:0:1111": "ok", "2606:4700:4700::1111": "ok",
  });
});

test("anything that is not a plain IP literal is an invalid address", () => {
  for (const address of [
    "", "localhost", "example.com", "metadata.google.internal", "127.1", "0x7f.1", "0x7f000001", "2130706433",
    "0177.0.0.1", "010.0.0.1", "127.0.0.01", "1.2.3", "1.2.3.4.5", "256.0.0.1", " 1.2.3.4", "1.2.3.4 ", "1.2.3.4\n",
    "[1.2.3.4]", "[::1", "::1]", "[[::1]]", "[]", "1::2::3", "12345::", ":::", "::ffff:127.1", "::ffff:0x7f.0.0.1",
    "::ffff:127.0.0.01", "1.2.3.4/32", "::1/128", "fe80::1%", "fe80::1%a%b", "fe80::1% x", "127.0.0.1%eth0",
    "１２７.0.0.1", "http://127.0.0.1/",
  ]) {
    assert.deepEqual(noPrivate.check(address), { ok: false, rule: "invalid address" }, JSON.stringify(address));
  }
  for (const notAString of [undefined, null, 2130706433, ["127.0.0.1"]]) {
    assert.deepEqual(noPrivate.check(notAString as unknown as string), { ok: false, rule: "invalid address" });
  }
});

test("every hostile spelling in ssrf.md, as the URL parser hands it over, is refused", () => {
  const table: Record<string, string | undefined> = {
    "http://127.0.0.1/": "loopback address", "http://127.1/": "loopback address",
    "http://0177.0.0.1/": "loopback address", "http://2130706433/": "loopback address",
    "http://0x7f000001/": "loopback address", "http://0x7f.1/": "loopback address",
    "http://0.0.0.0/": "unspecified address", "http://[::]/": "unspecified address",
    "http://[::1]/": "loopback address", "http://[0:0:0:0:0:0:0:1]/": "loopback address",
    "http://[::ffff:127.0.0.1]/": "loopback address", "http://[::ffff:169.254.169.254]/": "cloud metadata address",
    "http://169.254.169.254/latest/meta-data/": "cloud metadata address", "http://[fd00:ec2::254]/": "cloud metadata address",
    "http://10.0.0.1/": "private address", "http://172.16.0.1/": "private address",
    "http://192.168.0.1/": "private address", "http://100.64.0.1/": "carrier-grade NAT address",
    "http://[fc00::1]/": "unique-local address", "http://[fe80::1]/": "link-local address",
    "http://allowed.example@127.0.0.1/": "loopback address", "http://127.0.0.1.:8080/": "loopback address",
    "http://[::FFFF:7F00:1]/": "loopback address", "http://0/": "unspecified address",
    // Names are not literals: they must be resolved and each resolved address checked.
    "http://localhost/": undefined, "http://LOCALHOST./": undefined, "http://metadata.google.internal/": undefined,
  };
  for (const [url, expected] of Object.entries(table)) {
    const literal = ipLiteral(new URL(url).hostname);
    assert.equal(literal === undefined ? undefined : outcome(noPrivate, literal), expected, url);
    if (literal !== undefined) assert.equal(outcome(noPrivate, new URL(url).hostname), expected, `${url} with brackets`);
  }
});

test("ipLiteral returns the bare address of IP literals only", () => {
  assert.equal(ipLiteral("127.0.0.1"), "127.0.0.1");
  assert.equal(ipLiteral("[::1]"), "::1");
  assert.equal(ipLiteral("[::ffff:7f00:1]"), "::ffff:7f00:1");
  assert.equal(ipLiteral("::1"), "::1");
  assert.equal(ipLiteral(new URL("http://[0:0:0:0:0:0:0:1]/").hostname), "::1");
  assert.equal(ipLiteral(new URL("http://0x7f.1/").hostname), "127.0.0.1");
  for (const hostname of ["example.com", "localhost", "[example.com]", "[127.0.0.1]", "", "[]", "127.1", "1.2.3.4.", "xn--nxasmq6b"]) {
    assert.equal(ipLiteral(hostname), undefined, hostname);
  }
});

test("allowPrivate ranges admit what they contain, named as the user wrote them", () => {
  const policy = new AddressPolicy(["10.1.2.0/24", "127.0.0.1", "::1", "fd00::/8", "172.16.0.0/12"]);
  expectAll(policy, {
    "10.1.2.0": "ok: allowPrivate 10.1.2.0/24", "10.1.2.255": "ok: allowPrivate 10.1.2.0/24",
    "10.1.1.255": "private address", "10.1.3.0": "private address",
    "::ffff:10.1.2.9": "ok: allowPrivate 10.1.2.0/24", "[::ffff:a01:209]": "ok: allowPrivate 10.1.2.0/24",
    "127.0.0.1": "ok: allowPrivate 127.0.0.1", "127.0.0.2": "loopback address", "::ffff:127.0.0.1": "ok: allowPrivate 127.0.0.1",
    "::1": "ok: allowPrivate ::1", "[::1]": "ok: allowPrivate ::1", "::2": "IPv6 transition address (IPv4-compatible)",
    "fd00::": "ok: allowPrivate fd00::/8", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "ok: allowPrivate fd00::/8",
    "fc00::1": "unique-local address", "fe80::1": "link-local address",
    "172.31.255.255": "ok: allowPrivate 172.16.0.0/12", "172.32.0.0": "ok", "192.168.1.1": "private address",
    "8.8.8.8": "ok",
  });
});

test("IPv4 entries match IPv4 (and mapped) addresses; IPv6 entries match IPv6", () => {
  const v6All = new AddressPolicy(["::/0"]);
  expectAll(v6All, {
    "fe80::1": "ok: allowPrivate ::/0", "::": "ok: allowPrivate ::/0", "64:ff9b::a00:1": "ok: allowPrivate ::/0",
    "10.0.0.1": "private address", "::ffff:10.0.0.1": "private address", "169.254.169.254": "cloud metadata address",
    "fd00:ec2::254": "cloud metadata address",
  });
  const v4 = new AddressPolicy(["10.0.0.0/8"]);
  expectAll(v4, {
    "::ffff:10.0.0.1": "ok: allowPrivate 10.0.0.0/8", "64:ff9b::10.0.0.1": "IPv6 transition address (NAT64)",
    "2002:a00:1::": "IPv6 transition address (6to4)", "::10.0.0.1": "IPv6 transition address (IPv4-compatible)",
    "::ffff:0:10.0.0.1": "IPv6 transition address (IPv4-translated)",
  });
  const mapped = new AddressPolicy(["::ffff:192.168.0.0/112", "[::ffff:127.0.0.1]"]);
  expectAll(mapped, {
    "192.168.4.4": "ok: allowPrivate ::ffff:192.168.0.0/112", "::ffff:192.168.4.4": "ok: allowPrivate ::ffff:192.168.0.0/112",
    "127.0.0.1": "ok: allowPrivate [::ffff:127.0.0.1]", "192.169.0.1": "ok",
  });
});

test("transition addresses can be allowed explicitly", () => {
  const policy = new AddressPolicy(["64:ff9b::/96", "2002::/16", "2001::/32", "::/96", "::ffff:0:0:0/96"]);
  expectAll(policy, {
    "64:ff9b::8.8.8.8": "ok: allowPrivate 64:ff9b::/96", "64:ff9b:1::1": "IPv6 transition address (NAT64)",
    "2002:7f00:1::": "ok: allowPrivate 2002::/16", "2001::1": "ok: allowPrivate 2001::/32",
    "::8.8.8.8": "ok: allowPrivate ::/96", "::127.0.0.1": "ok: allowPrivate ::/96",
    "::ffff:127.0.0.1": "loopback address", "::ffff:0:127.0.0.1": "ok: allowPrivate ::ffff:0:0:0/96",
  });
});

test("metadata addresses stay refused inside allowed ranges unless named exactly", () => {
  const broad = new AddressPolicy(["169.254.0.0/16", "0.0.0.0/0", "fd00::/8", "100.64.0.0/10", "168.63.129.0/24"]);
  expectAll(broad, {
    "169.254.1.1": "ok: allowPrivate 169.254.0.0/16", "169.254.169.254": "cloud metadata address",
    "169.254.170.2": "cloud metadata address", "169.254.170.23": "cloud metadata address",
    "::ffff:169.254.169.254": "cloud metadata address", "168.63.129.16": "cloud metadata address",
    "100.100.100.200": "cloud metadata address", "100.100.100.199": "ok: allowPrivate 0.0.0.0/0",
    "fd00:ec2::254": "cloud metadata address", "fd00:ec2::23": "cloud metadata address",
    "fd00:ec2::1": "ok: allowPrivate fd00::/8", "127.0.0.1": "ok: allowPrivate 0.0.0.0/0",
  });
  const exact = new AddressPolicy(["169.254.0.0/16", "169.254.169.254/32", "fd00:ec2::254/128", "168.63.129.16", "[fd00:ec2::23]"]);
  expectAll(exact, {
    "169.254.169.254": "ok: allowPrivate 169.254.169.254/32", "::ffff:169.254.169.254": "ok: allowPrivate 169.254.169.254/32",
    "169.254.170.2": "cloud metadata address", "fd00:ec2::254": "ok: allowPrivate fd00:ec2::254/128",
    "FD00:EC2:0::254": "ok: allowPrivate fd00:ec2::254/128", "168.63.129.16": "ok: allowPrivate 168.63.129.16",
    "fd00:ec2::23": "ok: allowPrivate [fd00:ec2::23]", "100.100.100.200": "cloud metadata address",
  });
  const viaMapped = new AddressPolicy(["::ffff:169.254.169.254/128", "::ffff:100.100.100.200"]);
  expectAll(viaMapped, {
    "169.254.169.254": "ok: allowPrivate ::ffff:169.254.169.254/128", "100.100.100.200": "ok: allowPrivate ::ffff:100.100.100.200",
  });
});

test("entries are tried in order, and public addresses stay public", () => {
  const policy = new AddressPolicy(["10.0.0.0/8", "10.1.0.0/16", "0.0.0.0/0"]);
  expectAll(policy, { "10.1.0.1": "ok: allowPrivate 10.0.0.0/8", "192.168.0.1": "ok: allowPrivate 0.0.0.0/0", "8.8.8.8": "ok" });
});

test("invalid allowPrivate entries throw a TypeError naming the entry and why", () => {
  const cases: [unknown, string][] = [
    ["10.1.2.5/24", 'bits are set past the /24 prefix; did you mean "10.1.2.0/24"?'],
    ["fd00::1/8", 'bits are set past the /8 prefix; did you mean "fd00::/8"?'],
    ["10.0.0.0/33", "the prefix length must be 0-32"], ["::1/129", "the prefix length must be 0-128"],
    ["10.0.0.0/", "the prefix length must be 0-32"], ["10.0.0.0/+8", "the prefix length must be 0-32"],
    ["10.0.0.0/-1", "the prefix length must be 0-32"], ["10.0.0.0/8/8", "the prefix length must be 0-32"],
    ["10.0.0.0/0x8", "the prefix length must be 0-32"], ["10.0.0.0/8 ", "the prefix length must be 0-32"],
    ["10.0.0.0/1e1", "the prefix length must be 0-32"], ["10.0.0.0/0008", "the prefix length must be 0-32"],
    ["fe80::1%eth0", "zone ids are not allowed"], ["fe80::%eth0/64", "zone ids are not allowed"],
    ["", "not a valid IP address"], ["/8", "not a valid IP address"], ["10/8", "not a valid IP address"],
    ["10.0.0/8", "not a valid IP address"], ["010.0.0.0/8", "not a valid IP address"], ["0x0a.0.0.0/8", "not a valid IP address"],
    [" 10.0.0.0/8", "not a valid IP address"], ["localhost", "not a valid IP address"], ["[10.0.0.1]", "not a valid IP address"],
    ["[::1", "not a valid IP address"], ["10.0.0.0-10.0.0.255", "not a valid IP address"], ["*", "not a valid IP address"],
    [42, "expected a string"], [null, "expected a string"],
  ];
  for (const [entry, why] of cases) {
    const shown = typeof entry === "string" ? JSON.stringify(entry) : String(entry);
    assert.throws(() => new AddressPolicy(["10.0.0.0/8", entry as string]), {
      name: "TypeError",
      message: `allowPrivate[1]: ${shown} is not an IP address or CIDR range (${why})`,
    }, shown);
  }
});

test("verdicts are shared but frozen, so no caller can change another's answer", () => {
  const verdict = noPrivate.check("8.8.8.8");
  assert.equal(Object.isFrozen(verdict), true);
  assert.equal(Object.isFrozen(new AddressPolicy(["10.0.0.0/8"]).check("10.0.0.1")), true);
  assert.equal(Object.isFrozen(noPrivate.check("10.0.0.1")), true);
});
