import assert from "node:assert/strict";
import {
  ConnectionClosedError,
  type ConnErrorEvent,
  type HttpRequestEvent,
  Manager,
  ManagerClosedError,
  MgnetError,
  mongooseVersion,
} from "../mod.ts";
import {
  assertAlive,
  echoPath,
  exchange,
  get,
  kernelQueues,
  refused,
  serve,
  test,
  until,
  writeAll,
} from "./helpers.ts";

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

test("Manager.listen() rejects each bad part of a URL with an error naming it", async () => {
  await using mgr = new Manager();
  const bad: [string, RegExp][] = [
    ["ftp://127.0.0.1:0", /unsupported scheme "ftp:\/\/"/],
    ["127.0.0.1:0", /no scheme/],
    ["http://", /host is missing/],
    ["http://:8000", /host is missing/],
    ["http://not an ip:0", /host "not an ip" is not an IP address/],
    ["http://example.com:0", /host "example.com" is not an IP address/],
    ["http://256.1.1.1:0", /"256.1.1.1" is not an IPv4 address/],
    ["http://127.0.0.1", /port is missing/],
    ["http://127.0.0.1:", /port is missing/],
    ["http://127.0.0.1:99999", /port "99999" is not a number from 0 to 65535/],
    ["http://127.0.0.1:65536", /port "65536"/],
    ["http://127.0.0.1:-1", /port "-1"/],
    ["http://127.0.0.1:80a", /port "80a"/],
    ["http://127.0.0.1:0/path", /unexpected "\/path" after the address/],
    ["http://127.0.0.1:0?q=1", /unexpected "\?q=1"/],
    ["http://127.0.0.1:0#f", /unexpected "#f"/],
    ["http://[::1:0", /no closing '\]'/],
    ["http://[fe80::zz]:0", /"fe80::zz" is not an IPv6 address/],
    ["http://::1:0", /must be in brackets/],
    ["http://[::1]x:0", /unexpected "x:0" after the IPv6 address/],
    ["http://user@127.0.0.1:0", /no user information/],
  ];
  for (const [url, why] of bad) {
    assert.throws(
      () => mgr.listen(url),
      (e) =>
        e instanceof MgnetError && e.code === "Invalid" && why.test(e.message) && e.message.includes(url),
      url,
    );
  }
  // @ts-expect-error a number is not a URL
  assert.throws(() => mgr.listen(8000), TypeError);
  // The edges that are valid: port 65535 parses (binding it may fail), a trailing slash, localhost.
  for (const url of ["http://127.0.0.1:0/", "http://localhost:0", "http://[::1]:0", "HTTP://127.0.0.1:0"]) {
    assert.ok(mgr.listen(url).port > 0, url);
  }
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
  assert.equal(srv.events[2].conn?.closed, true);
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

test("ConnErrorEvent: a connection whose unfinished head reaches the 4 MiB receive limit fails, then closes", async (t) => {
  // maxHeaderSize above Mongoose's MG_MAX_RECV_SIZE (4 MiB, rust/build.rs):
  // the head never completes, the receive buffer fills, Mongoose reports
  // an error and closes the connection.
  const head = "GET / HTTP/1.1\r\nHost: t\r\nX: " + "a".repeat(5 << 20);
  await t.step("for await: an error event, then close", async () => {
    await using srv = serve(echoPath, { maxHeaderSize: 16 << 20 });
    const r = await exchange(srv.port, head);
    assert.equal(r.closed, true);
    assert.equal(r.responses.length, 0);
    await until(() => srv.events.some((e) => e.type === "close"), "the close event");
    assert.deepEqual(srv.events.map((e) => e.type), ["open", "error", "close"]);
    const err = srv.events[1];
    assert.ok(err.type === "error");
    assert.match(err.message, /MG_MAX_RECV_SIZE/);
    assert.equal(err.conn, srv.events[0].conn);
    await assertAlive(srv.port);
  });
  await t.step("listen handlers: onError, then onClose", async () => {
    await using mgr = new Manager({ maxHeaderSize: 16 << 20 });
    const seen: string[] = [];
    const { port } = mgr.listen("http://127.0.0.1:0", {
      onRequest: (ev) => void ev.reply(200, ev.path),
      onOpen: () => void seen.push("open"),
      onError: (ev: ConnErrorEvent) => void seen.push(`error ${ev.message} ${ev.conn.closed}`),
      onClose: () => void seen.push("close"),
    });
    const r = await exchange(port, head);
    assert.equal(r.closed, true);
    await until(() => seen.includes("close"), "onClose");
    assert.deepEqual(seen, ["open", "error MG_MAX_RECV_SIZE false", "close"]);
  });
});

test("a throwing onRequest: 500 for the request, the error logged; onHandlerError replaces the log", async (t) => {
  await t.step("default: console.error and a 500", async () => {
    const logged: unknown[][] = [];
    const error = console.error;
    console.error = (...a: unknown[]) => void logged.push(a);
    try {
      await using mgr = new Manager();
      const { port } = mgr.listen("http://127.0.0.1:0", {
        onRequest(ev) {
          if (ev.path === "/sync") throw new Error("sync boom");
          if (ev.path === "/async") return Promise.reject(new Error("async boom"));
          if (ev.path === "/answered") {
            ev.reply(200, "answered first");
            throw new Error("after the answer");
          }
          ev.reply(200, "fine");
        },
      });
      const r = await exchange(
        port,
        ["/sync", "/async", "/answered", "/ok"].map((p) => `GET ${p} HTTP/1.1\r\nHost: t\r\n\r\n`).join(""),
        { responses: 4, probe: true },
      );
      assert.deepEqual(r.responses.map((x) => [x.status, x.text]), [
        [500, "Internal Server Error\n"],
        [500, "Internal Server Error\n"],
        [200, "answered first"],
        [200, "fine"],
      ]);
      assert.equal(r.usable, true, "the connection survives the failures");
    } finally {
      console.error = error;
    }
    // (A rejection is logged once its promise settles: order aside.)
    assert.deepEqual(
      logged.map((a) => `${a[0]} ${(a[1] as Error).message}`).sort(),
      [
        "mgnet: request handler failed: after the answer",
        "mgnet: request handler failed: async boom",
        "mgnet: request handler failed: sync boom",
      ],
    );
  });
  await t.step("onHandlerError gets the error and the event; no log", async () => {
    const logged: unknown[] = [];
    const error = console.error;
    console.error = (...a: unknown[]) => void logged.push(a);
    const seen: string[] = [];
    try {
      await using mgr = new Manager();
      const { port } = mgr.listen("http://127.0.0.1:0", {
        onRequest(ev) {
          if (ev.path === "/custom") throw new Error("custom");
          throw new Error("plain");
        },
        onHandlerError(e, ev) {
          seen.push(`${(e as Error).message} ${ev.path}`);
          if (ev.path === "/custom") ev.reply(503, "handled");
        },
      });
      const r = await exchange(
        port,
        "GET /custom HTTP/1.1\r\nHost: t\r\n\r\nGET /plain HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
      );
      assert.deepEqual(r.responses.map((x) => [x.status, x.text]), [
        [503, "handled"],
        [500, "Internal Server Error\n"],
      ]);
    } finally {
      console.error = error;
    }
    assert.deepEqual(seen, ["custom /custom", "plain /plain"]);
    assert.deepEqual(logged, []);
  });
});

test("maxHeaderSize, maxUriLength and maxHeaders set from TypeScript are enforced at their exact values", async () => {
  const limits = { maxHeaderSize: 1024, maxUriLength: 100, maxHeaders: 5 };
  await using srv = serve(echoPath, limits);
  await using defaults = serve(echoPath);
  const status = async (port: number, req: string) => (await exchange(port, req)).responses[0]?.status;
  const uri = (n: number) => `GET /${"u".repeat(n - 1)} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`;
  assert.equal(await status(srv.port, uri(100)), 200);
  assert.equal(await status(srv.port, uri(101)), 414);
  const headers = (n: number) => {
    let req = "GET / HTTP/1.1\r\nHost: t\r\n";
    for (let i = 2; i < n; i++) req += `X-${i}: v\r\n`;
    return req + "Connection: close\r\n\r\n";
  };
  assert.equal(await status(srv.port, headers(5)), 200);
  assert.equal(await status(srv.port, headers(6)), 431);
  // Request line plus headers, final CRLF included.
  const sized = (n: number) => {
    const base = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX: \r\n\r\n";
    return base.replace("X: ", "X: " + "a".repeat(n - base.length));
  };
  assert.equal(sized(1025).length, 1025);
  assert.equal(await status(srv.port, sized(1024)), 200);
  assert.equal(await status(srv.port, sized(1025)), 431);
  // The same requests pass a manager with the defaults (64 KiB, 16 KiB, 128).
  for (const req of [uri(101), headers(6), sized(1025)]) assert.equal(await status(defaults.port, req), 200);
});

test("reply() returns false when the client left before JS heard of it, and throws after the close event", async () => {
  // Nothing iterates the manager while the client resets its connection, so
  // the next batch holds the reset; during that batch, before its close
  // event, a reply is dropped and reported with false.
  await using mgr = new Manager();
  const { port } = mgr.listen("http://127.0.0.1:0");
  const it = mgr[Symbol.asyncIterator]();
  const next = async () => {
    const r = await it.next();
    assert.ok(!r.done, "the manager ended");
    return r.value;
  };
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(
    conn,
    new TextEncoder().encode(
      ["/1", "/2", "/3"].map((p) => `GET ${p} HTTP/1.1\r\nHost: t\r\n\r\n`).join(""),
    ),
  );
  const held: HttpRequestEvent[] = [];
  while (held.length < 3) {
    const ev = await next();
    if (ev.type === "http") held.push(ev);
  }
  assert.equal(held[0].reply(200, "first"), true);
  // Closing with that answer unread makes the kernel send a reset.
  const local = (conn.localAddr as Deno.NetAddr).port;
  await until(() => kernelQueues(local, port).rx > 0, "the first answer to arrive");
  conn.close();
  const first = await next();
  assert.equal(first.type, "error", "the reset is reported before the close");
  assert.equal(first.conn, held[1].conn);
  assert.equal(held[1].conn.closed, false);
  assert.equal(held[1].reply(200, "too late"), false);
  const close = await next();
  assert.equal(close.type, "close");
  assert.throws(() => held[2].reply(200, "later still"), ConnectionClosedError);
  await it.return?.();
});
