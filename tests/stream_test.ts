import assert from "node:assert/strict";
import { ConnectionClosedError, type HttpRequestEvent, Manager } from "../mod.ts";
import { STREAM_HIGH_WATER } from "../src/http/response.ts";
import { exchange, serve, test, until } from "./helpers.ts";

test("respond(): a streamed body arrives chunked and whole", async () => {
  await using srv = serve((ev) => {
    (async () => {
      const out = ev.respond(200, { "content-type": "text/plain" });
      for (let i = 0; i < 10; i++) {
        await out.write(`part ${i}\n`);
        await new Promise((r) => setTimeout(r, 1));
      }
      out.end();
    })();
  });
  const res = await fetch(`http://127.0.0.1:${srv.port}/`);
  assert.equal(res.headers.get("transfer-encoding"), "chunked");
  assert.equal(await res.text(), Array.from({ length: 10 }, (_, i) => `part ${i}\n`).join(""));
});

test("respond(): raw chunked framing, then the connection stays usable", async () => {
  await using srv = serve((ev) => {
    if (ev.path === "/next") return void ev.reply(200, "next");
    const out = ev.respond(200);
    out.write("abc");
    out.write(new Uint8Array([0, 1]));
    out.end();
  });
  const r = await exchange(
    srv.port,
    "GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
  );
  const raw = new TextDecoder().decode(r.raw);
  assert.ok(raw.includes("transfer-encoding: chunked\r\n"));
  assert.ok(raw.includes("\r\n\r\n3\r\nabc\r\n2\r\n\0\x01\r\n0\r\n\r\nHTTP/1.1 200 OK"), JSON.stringify(raw));
  assert.ok(raw.endsWith("next"));
});

test("respond(): an HTTP/1.0 client gets a close-delimited body", async () => {
  await using srv = serve((ev) => {
    const out = ev.respond(200);
    out.write("one ");
    out.write("two");
    out.end();
  });
  const r = await exchange(srv.port, "GET / HTTP/1.0\r\n\r\n");
  const raw = new TextDecoder().decode(r.raw);
  assert.ok(!raw.includes("chunked"));
  assert.match(raw, /connection: close\r\n/);
  assert.ok(raw.endsWith("\r\n\r\none two"));
  assert.equal(r.closed, true);
});

test("respond(): HEAD gets the head only; the next bytes on the connection are the next response", async () => {
  await using srv = serve((ev) => {
    if (ev.path === "/next") return void ev.reply(200, "next");
    const out = ev.respond(200);
    out.write("body");
    out.end();
  });
  const r = await exchange(
    srv.port,
    "HEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
  );
  const raw = new TextDecoder().decode(r.raw);
  const headEnd = raw.indexOf("\r\n\r\n") + 4;
  assert.ok(headEnd > 4, JSON.stringify(raw));
  // Nothing between the HEAD's head and the next status line: no body, no
  // chunked framing (a leaked "4\r\nbody\r\n0\r\n\r\n" would sit here).
  assert.ok(raw.slice(headEnd).startsWith("HTTP/1.1 200 OK\r\n"), JSON.stringify(raw));
  assert.ok(raw.endsWith("\r\n\r\nnext"), JSON.stringify(raw));
  assert.equal(r.closed, true);
});

test("respond(): pipelined streamed and plain replies keep request order", async () => {
  const held: HttpRequestEvent[] = [];
  await using srv = serve((ev) => {
    held.push(ev);
    if (held.length < 3) return;
    // Answer in reverse: the plain replies wait for the stream ahead of them.
    held[2].reply(200, "third");
    held[1].reply(200, "second");
    const out = held[0].respond(200);
    (async () => {
      for (const p of ["fi", "r", "st"]) {
        await new Promise((r) => setTimeout(r, 2));
        await out.write(p);
      }
      out.end();
    })();
  });
  const req =
    "GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\nGET /3 HTTP/1.1\r\nHost: t\r\n\r\n";
  const r = await exchange(srv.port, req, { responses: 2 });
  const raw = new TextDecoder().decode(r.raw);
  assert.match(
    raw,
    /\r\n\r\n2\r\nfi\r\n1\r\nr\r\n2\r\nst\r\n0\r\n\r\nHTTP\/1\.1 200 OK[\s\S]*second[\s\S]*third$/,
  );
});

test("respond(): a for-await body awaiting write() does not stall the loop", async () => {
  const mgr = new Manager();
  const { port } = mgr.listen("http://127.0.0.1:0");
  const total = 8 << 20;
  const loop = (async () => {
    for await (const ev of mgr) {
      if (ev.type !== "http") continue;
      const out = ev.respond(200);
      const chunk = new Uint8Array(64 * 1024).fill(7);
      for (let sent = 0; sent < total; sent += chunk.length) await out.write(chunk);
      out.end();
    }
  })();
  const res = await fetch(`http://127.0.0.1:${port}/`);
  assert.equal((await res.arrayBuffer()).byteLength, total);
  await mgr.close();
  await loop;
});

test(
  "respond(): 100 MB to a slow reader stays within the backpressure bound",
  { timeoutMs: 60_000 },
  async () => {
    let maxQueued = 0;
    let finished = false;
    const chunk = new Uint8Array(64 * 1024).fill(120);
    const total = 100 << 20;
    await using srv = serve((ev) => {
      (async () => {
        const out = ev.respond(200, { "content-type": "application/octet-stream" });
        for (let sent = 0; sent < total; sent += chunk.length) {
          await out.write(chunk);
          maxQueued = Math.max(maxQueued, out.queued);
        }
        out.end();
        finished = true;
      })();
    });
    const received = await slowRead(srv.port);
    await until(() => finished, "the writer to finish");
    assert.ok(received > total, `received ${received}`);
    // The writer never let more than the high-water mark plus one chunk pile up.
    assert.ok(maxQueued <= STREAM_HIGH_WATER + chunk.length + 64, `max queued ${maxQueued}`);
  },
);

for (const mode of ["respond", "serve"]) {
  test(`memory: a server process sending 100 MB to a slow reader stays small (${mode})`, {
    timeoutMs: 60_000,
  }, async () => {
    // The server runs in its own process: test modules share this one, so
    // its RSS would count their allocations too.
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("./fixtures/slow_reader_server.ts", import.meta.url).pathname, mode],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter()).getReader();
    try {
      const first = (await lines.read()).value ?? "";
      assert.match(first, /^port \d+$/);
      const rssBefore = residentBytes(child.pid);
      let maxRss = rssBefore;
      const received = await slowRead(Number(first.slice(5)), () => {
        maxRss = Math.max(maxRss, residentBytes(child.pid));
      });
      assert.equal((await lines.read()).value, "done");
      assert.ok(received > 100 << 20, `received ${received}`);
      // 100 MB went through; the server never held more than a few MB of it.
      assert.ok(maxRss - rssBefore < 32 << 20, `server RSS grew by ${(maxRss - rssBefore) >> 20} MB`);
    } finally {
      await child.stdin.close();
      await lines.cancel();
      assert.equal((await child.status).code, 0);
    }
  });
}

/** A process's resident set size in bytes, from /proc. */
function residentBytes(pid: number): number {
  const kb = Deno.readTextFileSync(`/proc/${pid}/status`).match(/^VmRSS:\s+(\d+) kB$/m);
  assert.ok(kb, "VmRSS in /proc/PID/status");
  return Number(kb[1]) * 1024;
}

/** Splits a text stream into lines. */
function lineSplitter(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(text, c) {
      const parts = (rest + text).split("\n");
      rest = parts.pop()!;
      for (const line of parts) c.enqueue(line);
    },
  });
}

/**
 * GETs `/` with `Connection: close` and reads the reply to its end like a
 * slow reader: a 1 ms pause every 8 reads, so the server must wait for room.
 * `onPause` runs at each pause. Returns the bytes received.
 */
async function slowRead(port: number, onPause = () => {}): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
  const buf = new Uint8Array(256 * 1024);
  let received = 0;
  for (let reads = 1;; reads++) {
    const n = await conn.read(buf);
    if (n === null) break;
    received += n;
    if (reads % 8 === 0) {
      await new Promise((r) => setTimeout(r, 1));
      onPause();
    }
  }
  conn.close();
  return received;
}

test("large output that was not waited for arrives whole and in order, between pipelined replies", async () => {
  // 8 MB replies and 8 MB of writes nobody awaited go beyond what a send
  // buffer holds at once; the rest queues behind it and must keep its place.
  const size = 8 << 20;
  const pattern = (seed: number) => Uint8Array.from({ length: size }, (_, i) => (i * 7 + seed) % 251);
  const big = pattern(1);
  const streamed = pattern(2);
  await using srv = serve((ev) => {
    if (ev.path === "/big") return void ev.reply(200, big);
    if (ev.path === "/stream") {
      const out = ev.respond(200);
      for (let i = 0; i < size; i += 100_000) out.write(streamed.subarray(i, i + 100_000));
      out.end();
      return;
    }
    ev.reply(200, ev.path);
  });
  const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: t\r\n\r\n`;
  const r = await exchange(srv.port, get("/big") + get("/a") + get("/stream") + get("/big") + get("/b"), {
    responses: 5,
  });
  assert.deepEqual(r.responses.map((x) => x.body.length), [size, 2, size, size, 2]);
  assert.deepEqual(r.responses[0].body, big);
  assert.equal(r.responses[1].text, "/a");
  assert.deepEqual(r.responses[2].body, streamed);
  assert.deepEqual(r.responses[3].body, big);
  assert.equal(r.responses[4].text, "/b");
});

test("a large reply with connection: close arrives whole before the connection closes", async () => {
  const size = 8 << 20;
  const body = Uint8Array.from({ length: size }, (_, i) => (i * 13) % 251);
  await using srv = serve((ev) => void ev.reply(200, body));
  for (
    const request of ["GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", "GET / HTTP/1.0\r\n\r\n"]
  ) {
    const r = await exchange(srv.port, request);
    assert.ok(r.closed, "the server closed the connection");
    assert.equal(r.responses.length, 1);
    assert.deepEqual(r.responses[0].body, body);
  }
});

test("respond(): writes after the client left throw ConnectionClosedError", async () => {
  let error: unknown;
  let done = false;
  await using srv = serve((ev) => {
    (async () => {
      const out = ev.respond(200);
      try {
        for (;;) await out.write(new Uint8Array(256 * 1024));
      } catch (e) {
        error = e;
      } finally {
        done = true;
      }
    })();
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: srv.port });
  await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
  await conn.read(new Uint8Array(1024));
  conn.close();
  await until(() => done, "the writer to fail");
  assert.ok(error instanceof ConnectionClosedError, String(error));
});

test("respond() with a content length: unframed body, HEAD gets the length, overrun refused", async () => {
  const errors: string[] = [];
  await using srv = serve((ev) => {
    (async () => {
      const out = ev.respond(200, { "content-type": "text/plain" }, 10);
      await out.write("hello");
      if (ev.path === "/over") await out.write("123456").catch((e) => errors.push(`${e.name}:${e.code}`));
      await out.write("world");
      out.end();
    })();
  });
  const req = "GET / HTTP/1.1\r\nHost: t\r\n\r\nHEAD / HTTP/1.1\r\nHost: t\r\n\r\n" +
    "GET /over HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
  const r = await exchange(srv.port, req, { noBody: [false, true, false] });
  assert.equal(r.responses.length, 3);
  for (const res of r.responses) {
    assert.equal(res.headers.get("content-length"), "10");
    assert.equal(res.headers.get("transfer-encoding"), undefined);
  }
  assert.equal(r.responses[0].text, "helloworld");
  assert.equal(r.responses[1].text, "");
  assert.equal(r.responses[2].text, "helloworld");
  assert.deepEqual(errors, ["MgnetError:Invalid"]);
});

test("respond() with a content length: a body that ends short closes the connection", async () => {
  // What each handler's write() did, by path; every handler reports.
  const outcomes = new Map<string, string>();
  await using srv = serve((ev) => {
    const out = ev.respond(200, {}, 100);
    out.write("only this").then(
      () => outcomes.set(ev.path, "written"),
      (e) => outcomes.set(ev.path, e instanceof ConnectionClosedError ? "ConnectionClosedError" : String(e)),
    );
    out.end();
  });
  const r = await exchange(srv.port, "GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\n");
  assert.equal(r.closed, true);
  assert.equal(r.responses.length, 0); // incomplete: the parser never sees 100 bytes
  assert.ok(new TextDecoder().decode(r.raw).endsWith("\r\n\r\nonly this"));
  const delivered = () => srv.events.filter((e) => e.type === "http").length;
  await until(() => outcomes.size === delivered(), "every handler's write to settle");
  assert.equal(outcomes.get("/1"), "written");
  // The second pipelined request, if it was parsed before the close, finds
  // the connection closing: its writer refuses with ConnectionClosedError.
  for (const [path, outcome] of outcomes) {
    if (path !== "/1") assert.equal(outcome, "ConnectionClosedError", path);
  }
});

test("respond(): a content length that is not a non-negative integer is a RangeError", async () => {
  let thrown: unknown;
  await using srv = serve((ev) => {
    try {
      ev.respond(200, {}, -1);
    } catch (e) {
      thrown = e;
    }
    ev.reply(200, "ok");
  });
  await (await fetch(`http://127.0.0.1:${srv.port}/`)).text();
  assert.ok(thrown instanceof RangeError);
});
