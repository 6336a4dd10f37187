import assert from "node:assert/strict";
import { Hono } from "hono";
import { serve } from "../mod.ts";
import { app } from "../examples/hono.ts";
import { readUntil, test } from "./helpers.ts";

test("Hono: the example app runs unchanged on serve(app.fetch)", async () => {
  await using s = serve({ port: 0, hostname: "127.0.0.1", onListen: false }, app.fetch);
  const base = `http://127.0.0.1:${s.addr.port}`;
  let r = await fetch(`${base}/`);
  assert.equal(await r.text(), "Hello from Hono on mgnet!");
  assert.equal(r.headers.get("x-powered-by"), "mgnet+hono");
  r = await fetch(`${base}/hello/deno`);
  assert.equal(r.headers.get("content-type"), "application/json");
  assert.deepEqual(await r.json(), { message: "Hello, deno!" });
  r = await fetch(`${base}/echo`, {
    method: "POST",
    body: JSON.stringify({ a: [1] }),
    headers: { "content-type": "application/json" },
  });
  assert.deepEqual(await r.json(), { received: { a: [1] } });
  r = await fetch(`${base}/nope`);
  assert.equal(r.status, 404);
  await r.text();
});

test("Hono: routing, params, query, middleware order, errors, streaming", async () => {
  const order: string[] = [];
  const h = new Hono();
  h.use("*", async (_c, next) => {
    order.push("before");
    await next();
    order.push("after");
  });
  h.get("/users/:id/posts/:post", (c) => c.json({ ...c.req.param(), q: c.req.query("q") }));
  h.get("/header", (c) => c.text(c.req.header("x-test") ?? "none"));
  h.get("/boom", () => {
    throw new Error("boom");
  });
  h.onError((err, c) => c.text(`caught ${err.message}`, 500));
  h.get("/stream", (c) =>
    c.body(
      new ReadableStream({
        start(ctl) {
          for (const p of ["a", "b", "c"]) ctl.enqueue(new TextEncoder().encode(p));
          ctl.close();
        },
      }),
    ));
  await using s = serve({ port: 0, hostname: "127.0.0.1", onListen: false }, h.fetch);
  const base = `http://127.0.0.1:${s.addr.port}`;
  assert.deepEqual(await (await fetch(`${base}/users/7/posts/9?q=x`)).json(), { id: "7", post: "9", q: "x" });
  assert.deepEqual(order, ["before", "after"]);
  assert.equal(await (await fetch(`${base}/header`, { headers: { "x-test": "yes" } })).text(), "yes");
  const boom = await fetch(`${base}/boom`);
  assert.equal(boom.status, 500);
  assert.equal(await boom.text(), "caught boom");
  assert.equal(await (await fetch(`${base}/stream`)).text(), "abc");
});

test("serve CLI: runs a module written for `deno serve`", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../src/serve/cli.ts", import.meta.url).pathname,
      `--port=${port}`,
      "--host",
      "127.0.0.1",
      new URL("fixtures/deno_serve_app.ts", import.meta.url).pathname,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    await readUntil(reader, (t) => t.includes("Listening on"), "the CLI to listen");
    const r = await fetch(`http://127.0.0.1:${port}/some/path`, { method: "DELETE" });
    assert.deepEqual(await r.json(), { path: "/some/path", method: "DELETE" });
  } finally {
    child.kill("SIGTERM");
    assert.equal((await child.status).code, 0);
    await reader.cancel();
  }
});
