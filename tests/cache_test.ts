import assert from "node:assert/strict";
import { cached, Manager, serve } from "../mod.ts";
import { exchange, serve as serveEvents, test } from "./helpers.ts";

test("Manager.cache(): GET and HEAD are answered natively, with ETag and 304", async () => {
  let handled = 0;
  await using srv = serveEvents((ev) => {
    handled++;
    ev.reply(200, `from js ${ev.uri}`);
  });
  srv.mgr.cache("/static", { body: "cached body", headers: { "content-type": "text/plain" } }, {
    etag: '"v7"',
  });
  let r = await fetch(`http://127.0.0.1:${srv.port}/static`);
  assert.equal(await r.text(), "cached body");
  assert.equal(r.headers.get("etag"), '"v7"');
  assert.equal(r.headers.get("content-type"), "text/plain");
  assert.ok(r.headers.get("date"));
  r = await fetch(`http://127.0.0.1:${srv.port}/static`, { headers: { "if-none-match": 'W/"v7"' } });
  assert.equal(r.status, 304);
  assert.equal(r.headers.get("etag"), '"v7"');
  await r.body?.cancel();
  const head = await exchange(srv.port, "HEAD /static HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", {
    noBody: [true],
  });
  assert.equal(head.responses[0].headers.get("content-length"), "11");
  assert.ok(new TextDecoder().decode(head.raw).endsWith("\r\n\r\n"));
  // Other targets, other methods and query strings still reach JS.
  assert.equal(await (await fetch(`http://127.0.0.1:${srv.port}/static?x=1`)).text(), "from js /static?x=1");
  assert.equal(
    await (await fetch(`http://127.0.0.1:${srv.port}/static`, { method: "POST" })).text(),
    "from js /static",
  );
  assert.equal(handled, 2);
  // Three answered natively (GET, the 304, HEAD) of five requests.
  const stats = srv.mgr.stats();
  assert.equal(stats.cacheHits, 3);
  assert.equal(stats.requests, 5);
  assert.equal(srv.mgr.uncache("/static"), true);
  assert.equal(await (await fetch(`http://127.0.0.1:${srv.port}/static`)).text(), "from js /static");
});

test("Manager.cache(): cached and JS answers stay in request order when pipelined", async () => {
  await using srv = serveEvents((ev) => {
    setTimeout(() => ev.reply(200, `js${ev.path}`), 2);
  });
  srv.mgr.cache("/c", { body: "native" });
  const r = await exchange(
    srv.port,
    "GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /c HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\nGET /c HTTP/1.1\r\nHost: t\r\n\r\n",
    { responses: 4 },
  );
  assert.deepEqual(r.responses.map((x) => x.text), ["js/a", "native", "js/b", "native"]);
});

test("Manager.cache(): entries expire after their ttl and fall by tag", async () => {
  await using srv = serveEvents((ev) => ev.reply(200, "js"));
  srv.mgr.cache("/short", { body: "short" }, { ttl: 30 });
  srv.mgr.cache("/u/1", { body: "u1" }, { tags: ["users"] });
  srv.mgr.cache("/u/2", { body: "u2" }, { tags: ["users", "two"] });
  const get = async (p: string) => await (await fetch(`http://127.0.0.1:${srv.port}${p}`)).text();
  assert.equal(await get("/short"), "short");
  const start = Date.now();
  while (await get("/short") === "short") {
    assert.ok(Date.now() - start < 5000, "the entry never expired");
  }
  assert.equal(await get("/u/2"), "u2");
  assert.equal(srv.mgr.invalidate("users"), 2);
  assert.equal(await get("/u/1"), "js");
  assert.equal(await get("/u/2"), "js");
});

test("Manager.cache(): arguments are validated", async () => {
  await using mgr = new Manager();
  assert.throws(() => mgr.cache("", { body: "x" }), TypeError);
  assert.throws(() => mgr.cache("/a b", { body: "x" }), TypeError);
  assert.throws(() => mgr.cache("/", { status: 99 }), RangeError);
  assert.throws(() => mgr.cache("/", { body: "x" }, { ttl: -1 }), RangeError);
  assert.throws(() => mgr.cache("/", { body: "x" }, { tags: ["a\nb"] }), TypeError);
  assert.throws(() => mgr.cache("/", { body: "x" }, { etag: "unquoted" }), TypeError);
  assert.throws(() => mgr.cache("/", { body: "x", headers: { connection: "close" } }), TypeError);
  assert.throws(() => mgr.cache("/", { body: "x", headers: { "x-a": "bad\r\nvalue" } }), TypeError);
});

test("serve(): cached() responses are answered natively afterwards; server.cache() and invalidate()", async () => {
  let calls = 0;
  await using s = serve({ port: 0, hostname: "127.0.0.1", onListen: false }, (req) => {
    calls++;
    const path = new URL(req.url).pathname;
    return path === "/report"
      ? cached(Response.json({ report: calls }), { ttl: 60_000, tags: ["reports"] })
      : new Response(`live ${calls}`);
  });
  const base = `http://127.0.0.1:${s.addr.port}`;
  const first = await (await fetch(`${base}/report`)).json();
  const second = await (await fetch(`${base}/report`)).json();
  assert.deepEqual(first, { report: 1 });
  assert.deepEqual(second, { report: 1 }, "the second answer came from the cache");
  assert.equal(calls, 1);
  assert.equal(s.invalidate("reports"), 1);
  assert.deepEqual(await (await fetch(`${base}/report`)).json(), { report: 2 });
  await s.cache("/about", new Response("about us", { headers: { "content-type": "text/html" } }));
  const about = await fetch(`${base}/about`);
  assert.equal(about.headers.get("content-type"), "text/html");
  assert.equal(await about.text(), "about us");
  assert.equal(calls, 2);
});

test("invalidate() with no tag clears every entry, tagged or not (Manager and serve())", async () => {
  await using srv = serveEvents((ev) => ev.reply(200, "js"));
  srv.mgr.cache("/a", { body: "a" }, { tags: ["x"] });
  srv.mgr.cache("/b", { body: "b" });
  srv.mgr.cache("/c", { body: "c" }, { tags: ["y", "z"] });
  const get = async (p: string) => await (await fetch(`http://127.0.0.1:${srv.port}${p}`)).text();
  assert.deepEqual([await get("/a"), await get("/b"), await get("/c")], ["a", "b", "c"]);
  assert.equal(srv.mgr.invalidate(), 0, "documented: 0 when clearing everything");
  assert.deepEqual([await get("/a"), await get("/b"), await get("/c")], ["js", "js", "js"]);
  assert.equal(srv.mgr.uncache("/b"), false, "nothing left to remove");

  let calls = 0;
  await using s = serve({ port: 0, hostname: "127.0.0.1", onListen: false }, () => {
    calls++;
    return cached(new Response(`call ${calls}`));
  });
  const base = `http://127.0.0.1:${s.addr.port}`;
  assert.equal(await (await fetch(`${base}/p`)).text(), "call 1");
  assert.equal(await (await fetch(`${base}/p`)).text(), "call 1");
  s.invalidate();
  assert.equal(await (await fetch(`${base}/p`)).text(), "call 2");
});
