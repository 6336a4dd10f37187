import assert from "node:assert/strict";
import { ConnectionClosedError, serve as mgServe } from "../mod.ts";
import { formatSse, sseResponse, startSse } from "../src/http/sse.ts";
import { STREAM_HIGH_WATER } from "../src/http/response.ts";
import { inFlight, serve, test, until, untilStalled, writeAll } from "./helpers.ts";

test("formatSse: multi-line data, id, event, retry and comments", () => {
  assert.equal(
    formatSse({ comment: "hi\nthere", event: "update", id: "7", retry: 1500, data: "a\r\nb\rc\nd" }),
    ": hi\n: there\nevent: update\nid: 7\nretry: 1500\ndata: a\ndata: b\ndata: c\ndata: d\n\n",
  );
  assert.equal(formatSse({ data: "" }), "data: \n\n");
  assert.equal(formatSse({}), "");
  assert.throws(() => formatSse({ event: "a\nb" }), TypeError);
  assert.throws(() => formatSse({ id: "1\r" }), TypeError);
  assert.throws(() => formatSse({ id: "1\0" }), TypeError);
  assert.throws(() => formatSse({ retry: -1 }), RangeError);
  assert.throws(() => formatSse({ retry: 1.5 }), RangeError);
});

test("startSse: a real EventSource receives data, ids and named events", async () => {
  await using srv = serve((ev) => {
    (async () => {
      const stream = startSse(ev, { "x-extra": "1" });
      await stream.comment("keep-alive");
      await stream.send({ id: "1", data: "line one\nline two" });
      await stream.send({ event: "custom", id: "2", data: "named" });
      await stream.send("plain");
    })();
  });
  const es = new EventSource(`http://127.0.0.1:${srv.port}/events`);
  const got: string[] = [];
  const done = Promise.withResolvers<void>();
  es.onmessage = (e) => {
    got.push(`message:${e.lastEventId}:${e.data}`);
    if (got.length === 3) done.resolve();
  };
  es.addEventListener(
    "custom",
    (e) => got.push(`custom:${(e as MessageEvent).lastEventId}:${(e as MessageEvent).data}`),
  );
  es.onerror = () => done.reject(new Error("EventSource error"));
  await done.promise;
  es.close();
  assert.deepEqual(got, ["message:1:line one\nline two", "custom:2:named", "message:2:plain"]);
});

test("startSse: headers, and writes fail with ConnectionClosedError once the client left", async () => {
  const failed = Promise.withResolvers<unknown>();
  await using srv = serve((ev) => {
    (async () => {
      const stream = startSse(ev);
      try {
        for (;;) {
          await stream.send({ data: "x".repeat(1024) });
          await new Promise((r) => setTimeout(r, 1));
        }
      } catch (e) {
        failed.resolve(e);
      }
    })();
  });
  const res = await fetch(`http://127.0.0.1:${srv.port}/`);
  assert.equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
  assert.equal(res.headers.get("cache-control"), "no-cache");
  const reader = res.body!.getReader();
  await reader.read();
  await reader.cancel();
  assert.ok((await failed.promise) instanceof ConnectionClosedError);
  await until(() => srv.events.some((e) => e.type === "close"));
});

test("sseResponse: a serve() handler streams an async generator; a client abort ends it", async () => {
  const finished = Promise.withResolvers<void>();
  await using server = mgServe({ port: 0, hostname: "127.0.0.1", onListen: false }, (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/short") {
      return sseResponse((async function* () {
        yield { event: "a", data: "1" };
        yield "2";
      })());
    }
    return sseResponse((async function* () {
      try {
        for (let i = 0;; i++) {
          yield { id: String(i), data: `tick ${i}` };
          await new Promise((r) => setTimeout(r, 1));
        }
      } finally {
        finished.resolve();
      }
    })());
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  assert.equal(await (await fetch(`${base}/short`)).text(), "event: a\ndata: 1\n\ndata: 2\n\n");
  const res = await fetch(`${base}/endless`);
  const reader = res.body!.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  assert.match(first, /^id: 0\ndata: tick 0\n\n/);
  await reader.cancel();
  await finished.promise; // the generator's finally ran
});

test("startSse: send() waits while the client does not read (backpressure), bounded by STREAM_HIGH_WATER", async () => {
  const message = { data: "x".repeat(1000) };
  const size = formatSse(message).length;
  let handed = 0; // bytes of messages given to send()
  let failed: unknown;
  await using srv = serve((ev) => {
    (async () => {
      const stream = startSse(ev);
      try {
        for (;;) {
          handed += size;
          await stream.send(message);
        }
      } catch (e) {
        failed = e;
      }
    })();
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: srv.port });
  const client = (conn.localAddr as Deno.NetAddr).port;
  await writeAll(conn, new TextEncoder().encode("GET /events HTTP/1.1\r\nHost: t\r\n\r\n"));
  const buf = new Uint8Array(4096);
  const n = await conn.read(buf); // the head (and maybe some events); then we stop reading
  assert.ok(n !== null, "EOF before the head");
  try {
    await untilStalled(() => handed, () => handed > 64 << 20);
    // What the server holds: handed to send() minus what we read minus what
    // the kernel holds (/proc/net/tcp). send() waits above STREAM_HIGH_WATER
    // queued, so at most that plus the message that crossed it and the one
    // waiting in send() (chunk framing only makes the estimate smaller).
    const held = handed - n - inFlight(srv.port, client);
    assert.ok(handed < 64 << 20, "send() never waited");
    assert.ok(held <= STREAM_HIGH_WATER + 2 * size, `the server holds ${held >> 10} KiB of events`);
  } finally {
    conn.close();
  }
  await until(() => failed !== undefined, "send() to fail once the client left");
  assert.ok(failed instanceof ConnectionClosedError, String(failed));
});
