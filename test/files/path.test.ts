/** The path normaliser both halves of files rely on: `/` is the root, `..` stops there, names are literal. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { isNormalPath, isWithin, normalizePath, parentOf, MAX_NAME_BYTES, MAX_PATH_BYTES, MAX_DEPTH } from "../../src/capabilities/files/path.js";

test("relative paths start at the root; `.`, empty segments and trailing slashes go", () => {
  for (const [input, normal] of [
    ["", "/"], ["/", "/"], [".", "/"], ["a", "/a"], ["./a/", "/a"], ["a//b/./c/", "/a/b/c"], ["/a/b", "/a/b"],
  ] as const) assert.equal(normalizePath(input), normal, input);
});

test("`..` climbs, but never above the root", () => {
  for (const [input, normal] of [
    ["..", "/"], ["../../etc/passwd", "/etc/passwd"], ["/a/../../../b", "/b"], ["a/b/../c", "/a/c"], ["/a/b/c/../../..", "/"],
  ] as const) assert.equal(normalizePath(input), normal, input);
});

test("escapes, backslashes and drive letters are literal names, never separators", () => {
  for (const [input, normal] of [
    ["%2e%2e/x", "/%2e%2e/x"], ["..%2f..%2fetc", "/..%2f..%2fetc"], ["\\..\\x", "/\\..\\x"], ["C:\\Windows", "/C:\\Windows"],
    ["...", "/..."], ["a/..b", "/a/..b"], ["\u2024\u2024/x", "/\u2024\u2024/x"],
  ] as const) assert.equal(normalizePath(input), normal, input);
});

test("NUL bytes and overlong names or paths are refused", () => {
  assert.equal(normalizePath("a\0b"), "ERR_INVALID_ARG_VALUE");
  assert.equal(normalizePath("/x/\0/../y"), "ERR_INVALID_ARG_VALUE");
  assert.equal(normalizePath("a".repeat(MAX_NAME_BYTES)), "/" + "a".repeat(MAX_NAME_BYTES));
  assert.equal(normalizePath("a".repeat(MAX_NAME_BYTES + 1)), "ENAMETOOLONG");
  // Bytes, not characters: 128 two-byte characters are 256 bytes.
  assert.equal(normalizePath("é".repeat(128)), "ENAMETOOLONG");
  assert.equal(normalizePath("😀".repeat(63)), "/" + "😀".repeat(63));
  assert.equal(normalizePath("😀".repeat(64)), "ENAMETOOLONG");
  assert.equal(normalizePath(("a".repeat(200) + "/").repeat(21)), "ENAMETOOLONG");
  assert.equal(normalizePath("a/".repeat(MAX_DEPTH + 1)), "ENAMETOOLONG");
  assert.equal(normalizePath("x".repeat(10 * MAX_PATH_BYTES)), "ENAMETOOLONG");
  // A long path that `..` brings back under the limits is fine.
  assert.equal(normalizePath("a/".repeat(MAX_DEPTH + 10) + "../".repeat(MAX_DEPTH + 10) + "b"), "/b");
});

test("only normal paths pass isNormalPath (what the host accepts from a carrier)", () => {
  for (const good of ["/", "/a", "/a/b", "/%2e%2e", "/\\.."]) assert.ok(isNormalPath(good), good);
  for (const bad of ["", "a", "/a/", "//a", "/a/../b", "/.", "/..", "/a\0", "/" + "a".repeat(MAX_NAME_BYTES + 1)]) assert.ok(!isNormalPath(bad), JSON.stringify(bad));
});

test("parents and containment", () => {
  assert.equal(parentOf("/a/b"), "/a");
  assert.equal(parentOf("/a"), "/");
  assert.equal(parentOf("/"), "/");
  assert.ok(isWithin("/a/b", "/a"));
  assert.ok(isWithin("/a", "/a"));
  assert.ok(!isWithin("/ab", "/a"));
  assert.ok(isWithin("/anything", "/"));
});
