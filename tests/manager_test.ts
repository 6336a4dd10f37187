import assert from "node:assert/strict";
import { ConnectionClosedError, Manager, ManagerClosedError, MgnetError, mongooseVersion } from "../mod.ts";
import { echoPath, get, refused, serve, until, test } from "./helpers.ts";

test("Manager.listen() binds an ephemeral port", async () => {
  await using mgr = new Manager();
  const a = mgr.listen("http://127.0.0.1:0");
  const b = mgr.listen("http://127.0.0.1:0");
  assert.ok(a.port > 0 && b.port > 0);
  assert.notEqual(a.port, b.port);
  assert.equal(a.url, "http://127.0.0.1:0");
  // The port is really bound: a plain TCP connect succeeds.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: a.port });
  conn.close();
});

test("Manager.listen() on a port in use throws MgnetError", async () => {
  await using mgr = new Manager();
  const a = mgr.listen("http://127.0.0.1:0");
  assert.throws(() => mgr.listen(`http://127.0.0.1:${a.port}`), (e: unknown) => {
    assert.ok(e instanceof MgnetError);
    assert.match((e as Error).message, /in use/i);
    return true;
  });
});

test("Manager.listen() rejects unsupported and malformed URLs", async () => {
  await using mgr = new Manager();
  assert.throws(() => mgr.listen("ftp://127.0.0.1:0"), /unsupported listen URL/);
  assert.throws(() => mgr.listen("http://"), MgnetError);
  assert.throws(() => mgr.listen("http://not an ip:0"), MgnetError);
  // @ts-expect-error a number is not a URL
  assert.throws(() => mgr.listen(8000), TypeError);
});

test("Manager.listen() serves IPv6", async () => {
  await using srv = serve(echoPath, { host: "[::1]" });
  const res = await fetch(`http://[::1]:${srv.port}/six`);
  assert.equal(await res.text(), "/six");
});

test("Manager.close() is idempotent and ends the loop", async () => {
  const srv = serve(echoPath);
  assert.equal((await get(srv.port, "/x")).responses[0].text, "/x");
  const p1 = srv.mgr.close();
  const p2 = srv.mgr.close();
  assert.equal(p1, p2);
  await p1;
  await srv.done;
  assert.equal(srv.mgr.closed, true);
  await assert.rejects(
    () => Deno.connect({ hostname: "127.0.0.1", port: srv.port }),
    Deno.errors.ConnectionRefused,
  );
  assert.throws(() => srv.mgr.listen("http://127.0.0.1:0"), ManagerClosedError);
});

test("Manager supports await using (Symbol.asyncDispose)", async () => {
  let port = 0;
  {
    await using mgr = new Manager();
    port = mgr.listen("http://127.0.0.1:0").port;
  }
  await assert.rejects(() => Deno.connect({ hostname: "127.0.0.1", port }), Deno.errors.ConnectionRefused);
});

test("breaking out of for await closes the manager", async () => {
  const mgr = new Manager();
  const { port } = mgr.listen("http://127.0.0.1:0");
  const client = fetch(`http://127.0.0.1:${port}/once`).then((r) => r.text());
  for await (const ev of mgr) {
    if (ev.type === "http") {
      ev.reply(200, "once");
      break;
    }
  }
  assert.equal(mgr.closed, true);
  assert.equal(await client, "once");
  await assert.rejects(() => Deno.connect({ hostname: "127.0.0.1", port }), Deno.errors.ConnectionRefused);
});

test("a manager can be iterated by one loop only", async () => {
  await using mgr = new Manager();
  const it = mgr[Symbol.asyncIterator]();
  assert.throws(() => mgr[Symbol.asyncIterator](), MgnetError);
  await it.return?.();
});

test("Listener.close() stops accepting and is idempotent", async () => {
  await using mgr = new Manager();
  const l = mgr.listen("http://127.0.0.1:0");
  const loop = (async () => {
    for await (const _ of mgr) { /* drain */ }
  })();
  l.close();
  l.close();
  assert.equal(l.closed, true);
  // The close takes effect on the loop's next poll.
  await until(() => refused(l.port), "the listener to close");
  await mgr.close();
  await loop;
});

test("events: open, http and close arrive in order with addresses", async () => {
  await using srv = serve(echoPath);
  await get(srv.port, "/a");
  await until(() => srv.events.some((e) => e.type === "close"), "the close event");
  const kinds = srv.events.map((e) => e.type);
  assert.deepEqual(kinds, ["open", "http", "close"]);
  const open = srv.events[0];
  assert.equal(open.type, "open");
  if (open.type !== "open") return;
  assert.equal(open.conn.remoteAddr?.hostname, "127.0.0.1");
  assert.equal(open.conn.localAddr?.port, srv.port);
  assert.ok((open.conn.remoteAddr?.port ?? 0) > 0);
  assert.equal(srv.events[1].conn, open.conn, "one Connection object per connection");
  assert.equal(srv.events[2].conn.closed, true);
});

test("replying on a closed connection throws ConnectionClosedError", async () => {
  const held: { reply(status: number, body?: string): void }[] = [];
  await using srv = serve((ev) => held.push(ev));
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: srv.port });
  await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  await until(() => held.length > 0, "the request");
  conn.close();
  await until(() => srv.events.some((e) => e.type === "close"), "the close event");
  assert.throws(() => held[0].reply(200, "late"), ConnectionClosedError);
});

test("mongooseVersion() reports the compiled Mongoose", () => {
  assert.match(mongooseVersion(), /^\d+\.\d+/);
});

test("Manager options are validated", () => {
  assert.throws(() => new Manager({ maxHeaders: 0 }), RangeError);
  assert.throws(() => new Manager({ maxHeaders: 5000 }), RangeError);
  assert.throws(() => new Manager({ maxBodySize: 1.5 }), RangeError);
});

test("stats(): counts polls, accepted connections and requests; throws once closed", async () => {
  const mgr = new Manager();
  const { port } = mgr.listen("http://127.0.0.1:0", { onRequest: (ev) => void ev.reply(200, "ok") });
  for (let i = 0; i < 3; i++) await (await fetch(`http://127.0.0.1:${port}/`)).text();
  const s = mgr.stats();
  assert.equal(s.requests, 3);
  assert.ok(s.accepted >= 1 && s.accepted <= 3, `accepted ${s.accepted}`);
  assert.ok(s.polls >= 1);
  assert.equal(s.cacheHits, 0);
  await mgr.close();
  assert.throws(() => mgr.stats(), ManagerClosedError);
});

test("connections that arrive together are accepted in a few polls, not one poll each", async () => {
  // Mongoose accepts one connection per poll; mgnet polls again while polls
  // accept. 64 clients connect and send a request before the manager's
  // first poll (nothing iterates it yet; the kernel completes handshakes).
  const mgr = new Manager();
  const { port } = mgr.listen("http://127.0.0.1:0");
  const n = 64;
  const conns = await Promise.all(
    Array.from({ length: n }, () => Deno.connect({ hostname: "127.0.0.1", port })),
  );
  const request = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  for (const c of conns) await c.write(request);
  let answered = 0;
  let polls = 0;
  for await (const ev of mgr) {
    if (ev.type !== "http") continue;
    ev.reply(200, "ok");
    if (++answered === n) {
      polls = mgr.stats().polls;
      break;
    }
  }
  for (const c of conns) c.close();
  // One poll per connection would be 64 or more.
  assert.ok(polls <= 8, `${polls} polls for ${n} connections`);
});
