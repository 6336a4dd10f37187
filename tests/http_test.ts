import assert from "node:assert/strict";
import { ConnectionClosedError, type HttpRequestEvent, MgnetError } from "../mod.ts";
import { echoPath, exchange, readResponses, serve, test, toolEnv, until, writeAll } from "./helpers.ts";

const enc = new TextEncoder();

test("fetch gets the reply with content-type, content-length and date", async () => {
  await using srv = serve((ev) => ev.reply(200, '{"a":1}', { "content-type": "application/json" }));
  const res = await fetch(`http://127.0.0.1:${srv.port}/`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.equal(res.headers.get("content-length"), "7");
  assert.ok(!Number.isNaN(Date.parse(res.headers.get("date") ?? "")));
  assert.deepEqual(await res.json(), { a: 1 });
});

test("request fields: method, uri, path, query, headers, body", async () => {
  let seen: Record<string, unknown> = {};
  await using srv = serve((ev) => {
    seen = {
      method: ev.method,
      uri: ev.uri,
      path: ev.path,
      query: ev.query,
      q: ev.searchParams.get("q"),
      ct: ev.header("CONTENT-TYPE"),
      multi: ev.header("x-multi"),
      missing: ev.header("x-missing"),
      raw: ev.rawHeaders.filter(([k]) => k.toLowerCase() === "x-multi"),
      headersObj: ev.headers.get("x-multi"),
      version: ev.httpVersion,
      keepAlive: ev.keepAlive,
      json: ev.json(),
    };
    ev.reply(201);
  });
  const res = await exchange(
    srv.port,
    'PATCH /p/a%20b?q=deno&x=1 HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nX-Multi: 1\r\nx-multi: 2\r\nContent-Length: 9\r\n\r\n{"k":[1]}',
    { responses: 1 },
  );
  assert.equal(res.responses[0].status, 201);
  assert.deepEqual(seen, {
    method: "PATCH",
    uri: "/p/a%20b?q=deno&x=1",
    path: "/p/a%20b",
    query: "q=deno&x=1",
    q: "deno",
    ct: "application/json",
    multi: "1, 2",
    missing: undefined,
    raw: [["X-Multi", "1"], ["x-multi", "2"]],
    headersObj: "1, 2",
    version: "HTTP/1.1",
    keepAlive: true,
    json: { k: [1] },
  });
});

test("uncommon methods are decoded from their bytes", async () => {
  await using srv = serve((ev) => ev.reply(200, ev.method));
  const res = await exchange(srv.port, "PROPFIND /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  assert.equal(res.responses[0].text, "PROPFIND");
});

test("keep-alive: many requests on one connection", async () => {
  await using srv = serve(echoPath);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: srv.port });
  try {
    for (let i = 0; i < 20; i++) {
      await writeAll(conn, enc.encode(`GET /k${i} HTTP/1.1\r\nHost: t\r\n\r\n`));
      const r = await readResponses(conn, { responses: 1 });
      assert.equal(r.responses[0]?.text, `/k${i}`);
    }
  } finally {
    conn.close();
  }
  // One connection served all of them (each answer came on the same
  // socket, so it stayed open after the 19 before the last).
  assert.equal(srv.events.filter((e) => e.type === "open").length, 1);
});

test("pipelining: 100 requests in one write are answered in order", async () => {
  await using srv = serve(echoPath);
  let req = "";
  for (let i = 0; i < 100; i++) req += `GET /p${i} HTTP/1.1\r\nHost: t\r\n\r\n`;
  const r = await exchange(srv.port, req, { responses: 100 });
  assert.deepEqual(r.responses.map((x) => x.text), Array.from({ length: 100 }, (_, i) => `/p${i}`));
});

test("pipelining: async handlers finishing in reverse order still answer in order", async () => {
  const held: HttpRequestEvent[] = [];
  await using srv = serve((ev) => {
    held.push(ev);
    if (held.length === 64) {
      for (const e of held.slice().reverse()) e.reply(200, e.path);
    }
  });
  let req = "";
  for (let i = 0; i < 64; i++) req += `GET /r${i} HTTP/1.1\r\nHost: t\r\n\r\n`;
  const r = await exchange(srv.port, req, { responses: 64 });
  assert.deepEqual(r.responses.map((x) => x.text), Array.from({ length: 64 }, (_, i) => `/r${i}`));
});

test("pipelining: more requests than the in-flight window are all answered", async () => {
  await using srv = serve((ev) => setTimeout(() => ev.reply(200, ev.path), 0));
  let req = "";
  for (let i = 0; i < 600; i++) req += `GET /w${i} HTTP/1.1\r\nHost: t\r\n\r\n`;
  const r = await exchange(srv.port, req, { responses: 600 });
  assert.equal(r.responses.length, 600);
  assert.equal(r.responses[599].text, "/w599");
});

test("conn.reply() answers the oldest unanswered request", async () => {
  await using srv = serve((ev) => ev.conn.reply(200, ev.path));
  const r = await exchange(
    srv.port,
    "GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\n",
    { responses: 2 },
  );
  assert.deepEqual(r.responses.map((x) => x.text), ["/1", "/2"]);
});

test("bodies containing NUL bytes arrive intact both ways", async () => {
  await using srv = serve((ev) => ev.reply(200, ev.body, { "content-type": "application/octet-stream" }));
  const body = new Uint8Array([0, 1, 0, 255, 0, 0, 65, 0]);
  const res = await fetch(`http://127.0.0.1:${srv.port}/`, { method: "POST", body });
  assert.deepEqual(new Uint8Array(await res.arrayBuffer()), body);
  // A string body with NUL is not cut at the NUL (no printf path).
  await using srv2 = serve((ev) => ev.reply(200, "a\0b\0c"));
  const text = await (await fetch(`http://127.0.0.1:${srv2.port}/`)).text();
  assert.equal(text, "a\0b\0c");
});

test("1 MB request and response bodies are echoed intact", async () => {
  await using srv = serve((ev) => ev.reply(200, ev.body));
  const body = new Uint8Array(1 << 20);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7919) & 0xff;
  const res = await fetch(`http://127.0.0.1:${srv.port}/`, { method: "POST", body });
  const got = new Uint8Array(await res.arrayBuffer());
  assert.equal(got.length, body.length);
  assert.deepEqual(got, body);
});

test("a 1 MB chunked upload is decoded", async () => {
  await using srv = serve((ev) => ev.reply(200, String(ev.body.length)));
  const part = new Uint8Array(64 * 1024).fill(120);
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < 16; i++) c.enqueue(part);
      c.close();
    },
  });
  const res = await fetch(`http://127.0.0.1:${srv.port}/`, { method: "PUT", body: stream });
  assert.equal(await res.text(), String(1 << 20));
});

test("UTF-8 string replies are encoded correctly", async () => {
  const long = "ünïcødé ✓ ".repeat(1000);
  await using srv = serve((ev) => ev.reply(200, ev.path === "/long" ? long : "héllo ✓"));
  assert.equal(await (await fetch(`http://127.0.0.1:${srv.port}/`)).text(), "héllo ✓");
  assert.equal(await (await fetch(`http://127.0.0.1:${srv.port}/long`)).text(), long);
});

test("reply accepts ArrayBuffer, typed array views, Headers and pairs", async () => {
  await using srv = serve((ev) => {
    if (ev.path === "/ab") ev.reply(200, new TextEncoder().encode("ab").buffer);
    else if (ev.path === "/view") {
      ev.reply(200, new DataView(new TextEncoder().encode("xviewx").buffer, 1, 4));
    } else if (ev.path === "/headers") ev.reply(200, "h", new Headers({ "x-a": "1" }));
    else ev.reply(200, "p", [["x-b", "2"], ["x-b", "3"]]);
  });
  const base = `http://127.0.0.1:${srv.port}`;
  assert.equal(await (await fetch(`${base}/ab`)).text(), "ab");
  assert.equal(await (await fetch(`${base}/view`)).text(), "view");
  assert.equal(
    (await fetch(`${base}/headers`).then(async (r) => (await r.text(), r))).headers.get("x-a"),
    "1",
  );
  const pairs = await fetch(`${base}/pairs`);
  await pairs.text();
  assert.equal(pairs.headers.get("x-b"), "2, 3");
});

test("HEAD gets the length but no body; the next response is intact", async () => {
  await using srv = serve((ev) => ev.reply(200, "twelve bytes"));
  const r = await exchange(
    srv.port,
    "HEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n",
    { responses: 2, noBody: [true] },
  );
  assert.equal(r.responses[0].headers.get("content-length"), "12");
  assert.equal(r.responses[0].body.length, 0);
  assert.equal(r.responses[1].text, "twelve bytes");
  const raw = new TextDecoder().decode(r.raw);
  assert.equal(raw.split("twelve bytes").length, 2, "the body is sent once, for the GET");
});

test("HTTP/1.0 requests are answered and the connection is closed", async () => {
  await using srv = serve(echoPath);
  const r = await exchange(srv.port, "GET /old HTTP/1.0\r\n\r\n");
  assert.equal(r.responses.length, 1);
  assert.equal(r.responses[0].text, "/old");
  assert.equal(r.responses[0].headers.get("connection"), "close");
  assert.equal(r.closed, true);
});

test("HTTP/1.0 keep-alive is honoured", async () => {
  await using srv = serve(echoPath);
  const r = await exchange(
    srv.port,
    "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    { responses: 2, probe: true },
  );
  assert.deepEqual(r.responses.map((x) => x.text), ["/a", "/b"]);
  assert.equal(r.responses[0].headers.get("connection"), "keep-alive");
  assert.equal(r.responses[1].headers.get("connection"), "keep-alive");
  assert.equal(r.usable, true, "a third request on the connection is answered");
});

test("Connection: close from the client or the handler closes after the response", async () => {
  await using srv = serve((ev) =>
    ev.path === "/bye" ? ev.reply(200, "bye", { connection: "close" }) : ev.reply(200, ev.path)
  );
  const a = await exchange(srv.port, "GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  assert.equal(a.responses[0].text, "/a");
  assert.equal(a.closed, true);
  const b = await exchange(
    srv.port,
    "GET /bye HTTP/1.1\r\nHost: t\r\n\r\nGET /never HTTP/1.1\r\nHost: t\r\n\r\n",
  );
  assert.equal(b.responses.length, 1);
  assert.equal(b.responses[0].headers.get("connection"), "close");
  assert.equal(b.closed, true);
});

test("204 and 304 carry no body; custom headers and statuses pass through", async () => {
  await using srv = serve((ev) => {
    const status = Number(ev.path.slice(1));
    ev.reply(status, "ignored", { "x-custom": "yes", etag: '"v1"' });
  });
  for (const status of [204, 304]) {
    const r = await exchange(srv.port, `GET /${status} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`);
    assert.equal(r.responses[0].status, status);
    assert.equal(r.responses[0].headers.get("content-length"), undefined);
    assert.equal(r.responses[0].headers.get("x-custom"), "yes");
    assert.ok(!new TextDecoder().decode(r.raw).includes("ignored"));
  }
  const r = await exchange(srv.port, "GET /418 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  assert.equal(r.responses[0].status, 418);
  assert.equal(r.responses[0].text, "ignored");
});

test("reply validates its arguments", async () => {
  const errors: unknown[] = [];
  await using srv = serve((ev) => {
    for (
      const bad of [
        () => ev.reply(99),
        () => ev.reply(600),
        () => ev.reply(200.5),
        () => ev.reply(200, "x", { "bad name": "v" }),
        () => ev.reply(200, "x", { "x-a": "line\r\nInjected: 1" }),
        () => ev.reply(200, "x", { "x-a": "nul\0" }),
        // @ts-expect-error a number is not a body
        () => ev.reply(200, 42),
      ]
    ) {
      try {
        bad();
      } catch (e) {
        errors.push(e);
      }
    }
    ev.reply(200, "fine", { "content-length": "999", "transfer-encoding": "chunked" });
    try {
      ev.reply(200, "twice");
    } catch (e) {
      errors.push(e);
    }
  });
  const r = await exchange(srv.port, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  assert.equal(r.responses[0].text, "fine", "mgnet sets the framing headers itself");
  assert.equal(r.responses[0].headers.get("content-length"), "4");
  assert.equal(errors.length, 8);
  assert.ok(errors.slice(0, 3).every((e) => e instanceof RangeError));
  assert.ok(errors.slice(3, 7).every((e) => e instanceof TypeError));
  assert.match(String(errors[7]), /already answered/);
  assert.ok(
    errors[7] instanceof MgnetError && errors[7].code === "State",
    "answering twice is a typed misuse",
  );
});

test("a handler's own date header replaces mgnet's", async () => {
  await using srv = serve((ev) => ev.reply(200, "d", { date: "Wed, 21 Oct 2015 07:28:00 GMT" }));
  const r = await exchange(srv.port, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  assert.equal(r.responses[0].headers.get("date"), "Wed, 21 Oct 2015 07:28:00 GMT");
});

test("Connection.close() closes after sending what is queued", async () => {
  await using srv = serve((ev) => {
    ev.reply(200, "last");
    ev.conn.close();
    ev.conn.close(); // idempotent
  });
  const r = await exchange(srv.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  assert.equal(r.responses[0].text, "last");
  assert.equal(r.closed, true);
});

test("async handlers: replies after awaiting a timer go out without waiting for a poll", async () => {
  await using srv = serve((ev) => {
    setTimeout(() => ev.reply(200, ev.path), 5);
  });
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) => fetch(`http://127.0.0.1:${srv.port}/t${i}`).then((r) => r.text())),
  );
  assert.deepEqual(results, Array.from({ length: 20 }, (_, i) => `/t${i}`));
});

test("1,000 concurrent connections are all answered", async () => {
  await using srv = serve(echoPath);
  const conns = await Promise.all(
    Array.from({ length: 1000 }, () => Deno.connect({ hostname: "127.0.0.1", port: srv.port })),
  );
  try {
    await Promise.all(conns.map((c, i) => writeAll(c, enc.encode(`GET /c${i} HTTP/1.1\r\nHost: t\r\n\r\n`))));
    const got = await Promise.all(conns.map((c) => readResponses(c, { responses: 1 })));
    got.forEach((r, i) => assert.equal(r.responses[0]?.text, `/c${i}`));
  } finally {
    for (const c of conns) c.close();
  }
  await until(() => srv.events.filter((e) => e.type === "close").length === 1000, "1000 close events");
});

test("curl (an independent client) gets the reply", async () => {
  await using srv = serve((ev) => ev.reply(200, `curl saw ${ev.method} ${ev.uri}`, { "x-from": "mgnet" }));
  const out = await new Deno.Command("curl", {
    args: ["-s", "-i", "--max-time", "10", `http://127.0.0.1:${srv.port}/c?x=1`],
    env: toolEnv,
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const text = new TextDecoder().decode(out.stdout);
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(text, /x-from: mgnet\r\n/);
  assert.ok(text.endsWith("curl saw GET /c?x=1"));
});

test("curl uploads with Expect: 100-continue complete", async () => {
  await using srv = serve((ev) => ev.reply(200, String(ev.body.length)));
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeFile(file, new Uint8Array(2 << 20).fill(97));
    const out = await new Deno.Command("curl", {
      args: ["-s", "--max-time", "20", "--data-binary", `@${file}`, `http://127.0.0.1:${srv.port}/up`],
      env: toolEnv,
    }).output();
    assert.equal(new TextDecoder().decode(out.stdout), String(2 << 20));
  } finally {
    await Deno.remove(file);
  }
});

test("a closed connection's pending request cannot be answered", async () => {
  const held: HttpRequestEvent[] = [];
  await using srv = serve((ev) => held.push(ev));
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: srv.port });
  await writeAll(conn, enc.encode("GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
  await until(() => held.length === 1, "the request");
  conn.close();
  await until(() => held[0].conn.closed, "the close event");
  assert.throws(() => held[0].reply(200), ConnectionClosedError);
  assert.throws(() => held[0].conn.reply(200), ConnectionClosedError);
});

test("a client that half-closes after its request still gets the response", async () => {
  await using srv = serve(echoPath);
  for (let i = 0; i < 20; i++) {
    const r = await exchange(srv.port, `GET /half${i} HTTP/1.1\r\nHost: t\r\n\r\n`, { closeWrite: true });
    assert.equal(r.responses[0]?.text, `/half${i}`);
    assert.equal(r.closed, true);
  }
});

test("a client closing right after pipelined requests does not disturb the server", async () => {
  await using srv = serve(echoPath);
  for (let i = 0; i < 20; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: srv.port });
    await writeAll(conn, enc.encode("GET /a HTTP/1.1\r\nHost: t\r\n\r\n".repeat(10)));
    conn.close();
  }
  const r = await exchange(srv.port, "GET /after HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  assert.equal(r.responses[0].text, "/after");
});

test("ev.text() decodes the body as UTF-8; ev.bodyStream() gives it as a ReadableStream", async () => {
  const seen: string[] = [];
  await using srv = serve((ev) => {
    if (ev.path === "/text") return void ev.reply(200, `${ev.text().length}:${ev.text()}`);
    (async () => {
      const parts: Uint8Array[] = [];
      const stream = ev.bodyStream();
      seen.push(String(stream instanceof ReadableStream));
      for await (const p of stream) parts.push(p.slice());
      const n = parts.reduce((a, p) => a + p.length, 0);
      ev.reply(200, `${n} ${parts.length}`);
    })();
  });
  const res = await fetch(`http://127.0.0.1:${srv.port}/text`, { method: "POST", body: "héllo ✓ \u{1F600}" });
  assert.equal(await res.text(), "10:héllo ✓ \u{1F600}");
  const body = new Uint8Array(300_000).fill(3);
  const streamed = await fetch(`http://127.0.0.1:${srv.port}/stream`, { method: "POST", body });
  assert.equal(await streamed.text(), "300000 1", "a buffered body is one piece");
  const empty = await fetch(`http://127.0.0.1:${srv.port}/stream`);
  assert.equal(await empty.text(), "0 0", "no body: an empty stream");
  assert.deepEqual(seen, ["true", "true"]);
});

test("ev.bodyStream() of a streamed body (streamBodiesOver) delivers it in pieces", async () => {
  await using srv = serve((ev) => {
    (async () => {
      let n = 0, pieces = 0, sum = 0;
      for await (const p of ev.bodyStream()) {
        n += p.length;
        pieces++;
        for (const b of p) sum = (sum + b) % 65521;
      }
      ev.reply(200, `${ev.bodyStreamed} ${n} ${pieces > 1} ${sum}`);
    })();
  }, { streamBodiesOver: 64 * 1024 });
  const body = Uint8Array.from({ length: 5 << 20 }, (_, i) => (i * 31) & 0xff);
  let sum = 0;
  for (const b of body) sum = (sum + b) % 65521;
  const res = await fetch(`http://127.0.0.1:${srv.port}/`, { method: "POST", body });
  assert.equal(await res.text(), `true ${5 << 20} true ${sum}`);
});
