/**
 * Native utilities: JSON lookup by path (exported) and the glob matcher
 * kept for the benchmark (not exported: a RegExp is faster).
 */
import assert from "node:assert/strict";
import { jsonGet, jsonGetRaw, Manager, MgnetError } from "../mod.ts";
import { globMatch } from "../src/util/glob.ts";
import { test } from "./helpers.ts";

const enc = new TextEncoder();

test("jsonGet: values by path agree with JSON.parse, from bytes and strings", () => {
  const value = {
    a: { b: [1, "two", { c: null, d: [true, false] }], "k y": -1.5e3 },
    s: 'é"\\\n😀',
    empty: {},
    list: [],
  };
  const text = JSON.stringify(value);
  const cases: [string, unknown][] = [
    ["$", value],
    ["$.a.b[1]", "two"],
    ["$.a.b[2].c", null],
    ["$.a.b[2].d[1]", false],
    ["$.s", value.s],
    ["$.empty", {}],
    ["$.list", []],
    ["$.a.b", value.a.b],
  ];
  for (const [path, want] of cases) {
    assert.deepEqual(jsonGet(text, path), want, path);
    assert.deepEqual(jsonGet(enc.encode(text), path), want, `${path} (bytes)`);
  }
  assert.equal(jsonGetRaw(text, "$.a.b[2].d"), "[true,false]");
  for (const path of ["$.nope", "$.a.b[3]", "$.list[0]", "$.s.x"]) {
    assert.equal(jsonGet(text, path), undefined, path);
  }
});

test("jsonGet: a bad path or document is Invalid; a truncated tail after the value is not noticed", () => {
  const isInvalid = (e: unknown) => e instanceof MgnetError && e.code === "Invalid";
  assert.throws(() => jsonGet('{"a":1}', "a"), isInvalid);
  assert.throws(() => jsonGet('{"a":1}', "$".padEnd(2000, "x")), isInvalid);
  assert.throws(() => jsonGet('{"a" 1}', "$.a"), isInvalid);
  assert.throws(() => jsonGet("nonsense", "$.a"), isInvalid);
  // Documented difference from JSON.parse: Mongoose stops at the value.
  assert.equal(jsonGet('{"a":1,"b":', "$.a"), 1);
  // Liveness after refusals.
  assert.equal(jsonGet('{"ok":true}', "$.ok"), true);
});

test("jsonGet: a 1 MB request body is searched without a full parse", async () => {
  await using mgr = new Manager();
  const items = Array.from({ length: 20_000 }, (_, i) => ({ id: i, name: `n${i}` }));
  const body = JSON.stringify({ items, meta: { count: items.length } });
  assert.ok(body.length > 500_000);
  const { port } = mgr.listen("http://127.0.0.1:0", {
    onRequest: (ev) => {
      ev.reply(
        200,
        JSON.stringify([jsonGet(ev.body, "$.meta.count"), jsonGet(ev.body, "$.items[19999].name")]),
      );
    },
  });
  const res = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body });
  assert.deepEqual(await res.json(), [20_000, "n19999"]);
});

test("globMatch (not exported): Mongoose's wildcards and captures", () => {
  assert.deepEqual(globMatch("/api/users/42", "/api/*/*"), ["users", "42"]);
  assert.equal(globMatch("/api/users/42/x", "/api/*/*"), undefined, "* stops at /");
  assert.deepEqual(globMatch("/static/a/b.css", "/static/#"), ["a/b.css"]);
  assert.deepEqual(globMatch("abc", "a?c"), ["b"]);
  assert.equal(globMatch("abd", "a?c"), undefined);
});
