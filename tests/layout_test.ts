import assert from "node:assert/strict";
import { test } from "./helpers.ts";
import { coreReachingUp, cycles, type Graph, importsOf, readGraph, rustReachingUp } from "./import_graph.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

test("layout: src/ has no import cycles", async () => {
  const graph = await readGraph(ROOT, "src");
  assert.ok(graph.size > 20, "the graph was read");
  assert.deepEqual(cycles(graph), []);
});

test("layout: nothing in src/core/ imports a protocol or the manager above it", async () => {
  const graph = await readGraph(ROOT, "src");
  assert.ok([...graph.keys()].some((p) => p.startsWith("src/core/")));
  assert.deepEqual(coreReachingUp(graph, "src/core/"), []);
});

test("layout: nothing in rust/src/core/ uses a protocol module", async () => {
  const files: string[] = [];
  async function walk(dir: string) {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) await walk(`${dir}/${e.name}`);
      else if (e.name.endsWith(".rs")) files.push(`${dir}/${e.name}`);
    }
  }
  await walk(`${ROOT}/rust/src/core`);
  assert.ok(files.length > 3, "rust/src/core/ holds the core");
  const bad: string[] = [];
  for (const f of files) {
    for (const p of rustReachingUp(await Deno.readTextFile(f), ["core", "sys"])) {
      bad.push(`${f.slice(ROOT.length + 1)}: ${p}`);
    }
  }
  assert.deepEqual(bad, []);
});

test("layout checker: finds a cycle and a core module reaching up (it can fail)", () => {
  const graph: Graph = new Map([
    ["src/core/loop.ts", ["src/core/ffi.ts", "src/http/protocol.ts"]],
    ["src/core/ffi.ts", []],
    ["src/http/protocol.ts", ["src/http/request_event.ts"]],
    ["src/http/request_event.ts", ["src/http/protocol.ts"]],
  ]);
  assert.deepEqual(cycles(graph), [[
    "src/http/protocol.ts",
    "src/http/request_event.ts",
    "src/http/protocol.ts",
  ]]);
  assert.deepEqual(coreReachingUp(graph, "src/core/"), ["src/core/loop.ts -> src/http/protocol.ts"]);
  assert.deepEqual(
    importsOf(
      "src/core/x.ts",
      'import { a } from "../http/y.ts";\nexport type { B } from "./z.ts";\nimport "npm:hono";',
    ),
    ["src/http/y.ts", "src/core/z.ts"],
  );
  assert.deepEqual(
    rustReachingUp("use crate::core::event;\nuse crate::http::Parser;\n// crate::ws in a comment", ["core"]),
    [
      "crate::http",
    ],
  );
  assert.deepEqual(rustReachingUp("use crate::{core::sys, ws::Frame};", ["core"]), ["crate::ws"]);
});
