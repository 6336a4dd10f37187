/**
 * Hostile and malformed input: each case hits a live server, checks the
 * answer (or the close), then checks that the server still answers a
 * normal request.
 */
import assert from "node:assert/strict";
import { assertAlive, echoPath, exchange, readResponses, serve, untilStalled, writeAll, test } from "./helpers.ts";

const enc = new TextEncoder();

interface Case {
  name: string;
  input: string | Uint8Array | (string | Uint8Array)[];
  /** Expected status of the only response, or "closed" for no response and a close. */
  expect: number | "closed";
  closeWrite?: boolean;
}

const bigHeader = `GET / HTTP/1.1\r\nHost: t\r\nX-Big: ${"a".repeat(100 * 1024)}\r\n\r\n`;
let manyHeaders = "GET / HTTP/1.1\r\nHost: t\r\n";
for (let i = 0; i < 500; i++) manyHeaders += `X-H${i}: ${i}\r\n`;
manyHeaders += "\r\n";
const junk = new Uint8Array(4096);
for (let i = 0; i < junk.length; i++) junk[i] = (i * 131 + 7) & 0xff;

const cases: Case[] = [
  { name: "garbage request line", input: "HELLO THERE\r\n\r\n", expect: 400 },
  { name: "request line without version", input: "GET /\r\n\r\n", expect: 400 },
  {
    name: "unterminated headers then half-close",
    input: "GET / HTTP/1.1\r\nHost: t\r\nX-A: b",
    expect: "closed",
    closeWrite: true,
  },
  { name: "100 KB header", input: bigHeader, expect: 431 },
  { name: "500 headers", input: manyHeaders, expect: 431 },
  { name: "NUL in the URI", input: "GET /a\0b HTTP/1.1\r\nHost: t\r\n\r\n", expect: 400 },
  { name: "20 KB URI", input: `GET /${"u".repeat(20 * 1024)} HTTP/1.1\r\nHost: t\r\n\r\n`, expect: 414 },
  {
    name: "conflicting Content-Length",
    input: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    expect: 400,
  },
  {
    name: "negative Content-Length",
    input: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n",
    expect: 400,
  },
  {
    name: "non-numeric Content-Length",
    input: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0x10\r\n\r\n",
    expect: 400,
  },
  {
    name: "Transfer-Encoding with Content-Length (smuggling)",
    input: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    expect: 400,
  },
  {
    name: "invalid chunk size",
    input: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nXYZ\r\nabc\r\n0\r\n\r\n",
    expect: 400,
  },
  {
    name: "chunk data longer than its size",
    input: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcdef\r\n0\r\n\r\n",
    expect: 400,
  },
  {
    name: "huge chunk size",
    input: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n",
    expect: 413,
  },
  { name: "binary junk", input: junk, expect: 400 },
  { name: "space before the colon", input: "GET / HTTP/1.1\r\nHost : t\r\n\r\n", expect: 400 },
  { name: "header line without a colon", input: "GET / HTTP/1.1\r\nHost: t\r\nNoColon\r\n\r\n", expect: 400 },
  { name: "obsolete line folding", input: "GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n 2\r\n\r\n", expect: 400 },
  { name: "missing Host in HTTP/1.1", input: "GET / HTTP/1.1\r\n\r\n", expect: 400 },
  { name: "two Host headers", input: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", expect: 400 },
  { name: "HTTP/2 preface", input: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", expect: 505 },
  {
    name: "unknown transfer coding",
    input: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
    expect: 400,
  },
  {
    name: "control character in a header value",
    input: "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x01b\r\n\r\n",
    expect: 400,
  },
  {
    name: "body over maxBodySize",
    input: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n",
    expect: 413,
  },
  {
    name: "valid request followed by garbage on the same connection",
    input: "GET /ok HTTP/1.1\r\nHost: t\r\n\r\n\x00\x01\x02GARBAGE\r\n\r\n",
    expect: 200,
  },
];

for (const c of cases) {
  test(`hostile input: ${c.name}; the server still answers`, async () => {
    await using srv = serve(echoPath, { maxBodySize: 1 << 20 });
    const r = await exchange(srv.port, c.input, { closeWrite: c.closeWrite });
    if (c.expect === "closed") {
      assert.equal(r.responses.length, 0);
      assert.equal(r.closed, true);
    } else {
      assert.ok(
        r.responses.length >= 1,
        `no response; got ${JSON.stringify(new TextDecoder().decode(r.raw))}`,
      );
      assert.equal(r.responses[0].status, c.expect);
      if (c.expect >= 400) {
        assert.equal(r.responses.length, 1);
        assert.equal(r.responses[0].headers.get("connection"), "close");
        assert.equal(r.closed, true, "the connection is closed after a rejection");
      }
    }
    await assertAlive(srv.port);
    // The handler never saw the bad requests.
    assert.ok(srv.events.every((e) => e.type !== "http" || e.path === "/alive" || e.path === "/ok"));
  });
}

test("hostile input: abrupt resets mid-request and mid-response; the server still answers", async () => {
  await using srv = serve((ev) => ev.reply(200, new Uint8Array(4 << 20)));
  for (let i = 0; i < 20; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: srv.port });
    await writeAll(conn, enc.encode(i % 2 ? "GET / HTTP/1.1\r\nHo" : "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
    if (i % 2 === 0) await conn.read(new Uint8Array(1024)); // part of a 4 MB response is in flight
    conn.close();
  }
  await using alive = serve(echoPath);
  await assertAlive(alive.port);
  const r = await exchange(srv.port, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  assert.equal(r.responses[0].body.length, 4 << 20);
});

test("hostile input: a slowloris client does not delay other clients", async () => {
  await using srv = serve(echoPath);
  const slow = await Deno.connect({ hostname: "127.0.0.1", port: srv.port });
  try {
    const head = "GET /slow HTTP/1.1\r\nHost: t\r\nX-Pad: " + "p".repeat(200);
    // Drip the head one byte at a time while normal clients are served.
    let served = 0;
    for (let i = 0; i < head.length; i++) {
      await writeAll(slow, enc.encode(head[i]));
      if (i % 10 === 0) {
        const res = await fetch(`http://127.0.0.1:${srv.port}/fast${i}`);
        assert.equal(await res.text(), `/fast${i}`);
        served++;
      }
    }
    assert.ok(served >= 20);
    // Finishing the request gets it answered too.
    await writeAll(slow, enc.encode("\r\n\r\n"));
    const r = await readResponses(slow, { responses: 1 });
    assert.equal(r.responses[0].text, "/slow");
  } finally {
    slow.close();
  }
});

test("hostile input: pipelining without reading replies is bounded and survivable", async () => {
  await using srv = serve((ev) => ev.reply(200, ev.path === "/alive" ? ev.path : new Uint8Array(64 * 1024)));
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: srv.port });
  // 4,000 requests whose 256 MB of replies we never read.
  const req = enc.encode("GET / HTTP/1.1\r\nHost: t\r\n\r\n".repeat(100));
  try {
    for (let i = 0; i < 40; i++) {
      const wrote = await Promise.race([
        writeAll(conn, req).then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), 2000)),
      ]);
      if (!wrote) break; // the server stopped reading: backpressure reached us
    }
  } catch {
    // the server may close a connection that floods it
  } finally {
    conn.close();
  }
  await assertAlive(srv.port);
});

test("pipelining without reading, then reading: every response arrives (reads pause, no disconnect)", async () => {
  let handled = 0;
  const body = "x".repeat(4096);
  await using srv = serve((ev) => {
    handled++;
    ev.reply(200, body);
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: srv.port });
  // 6 MiB of requests (more than Mongoose's 4 MiB receive limit, which used
  // to close such a connection) answered by 24 MiB that we do not read yet.
  const count = 6144;
  const one = `GET / HTTP/1.1\r\nHost: t\r\nX-Pad: ${"p".repeat(990)}\r\n\r\n`;
  let writerDone = false;
  const writer = writeAll(conn, enc.encode(one.repeat(count))).then(() => writerDone = true);
  // Wait until the server stops making progress (its output is stuck) or
  // everything was written.
  await untilStalled(() => handled, () => writerDone);
  const r = await readResponses(conn, { responses: count, timeoutMs: 60_000 });
  await writer;
  conn.close();
  assert.equal(r.responses.length, count);
  assert.equal(r.closed, false);
  assert.ok(r.responses.every((x) => x.status === 200 && x.body.length === 4096));
});

test("hostile input: many connections opened and dropped without a request", async () => {
  await using srv = serve(echoPath);
  const conns = await Promise.all(
    Array.from({ length: 200 }, () => Deno.connect({ hostname: "127.0.0.1", port: srv.port })),
  );
  for (const c of conns) c.close();
  await assertAlive(srv.port);
});
