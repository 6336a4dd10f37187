import assert from "node:assert/strict";
import { type HttpServer, MgnetError, serve, type ServeHandler } from "../mod.ts";
import { STREAM_HIGH_WATER } from "../src/http/response.ts";
import { countingStream, exchange, inFlight, refused, test, until } from "./helpers.ts";

function start(handler: ServeHandler, extra: Record<string, unknown> = {}): HttpServer & { url: string } {
  const s = serve({ port: 0, hostname: "127.0.0.1", onListen: false, ...extra }, handler);
  return Object.assign(s, { url: `http://127.0.0.1:${s.addr.port}` });
}

test("serve(): the three call forms of Deno.serve", async () => {
  const h: ServeHandler = () => new Response("ok");
  const listened: number[] = [];
  const servers = [
    serve({ port: 0, hostname: "127.0.0.1", onListen: (a) => listened.push(a.port) }, h),
    serve({ port: 0, hostname: "127.0.0.1", onListen: (a) => listened.push(a.port), handler: h }),
  ];
  for (const s of servers) {
    assert.equal(s.addr.hostname, "127.0.0.1");
    assert.equal(await (await fetch(`http://127.0.0.1:${s.addr.port}/`)).text(), "ok");
    await s.shutdown();
    await s.finished;
  }
  assert.deepEqual(listened, servers.map((s) => s.addr.port));
  // serve(handler): Deno.serve's defaults, 0.0.0.0:8000, and a log line.
  const token = crypto.randomUUID();
  const logged: unknown[][] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => void logged.push(a);
  let server: HttpServer | undefined;
  let error: unknown;
  try {
    server = serve(() => new Response(token));
  } catch (e) {
    error = e;
  } finally {
    console.log = log;
  }
  if (server) {
    try {
      assert.deepEqual(server.addr, { transport: "tcp", hostname: "0.0.0.0", port: 8000 });
      assert.deepEqual(logged, [["Listening on http://localhost:8000/"]]);
      assert.equal(await (await fetch("http://127.0.0.1:8000/")).text(), token);
    } finally {
      await server.shutdown();
    }
  } else {
    // Something else on this machine holds port 8000: the handler-only
    // form still chose it (an options object without a port would too, but
    // a misread call form throws TypeError instead).
    assert.ok(error instanceof MgnetError && /in use/i.test(error.message), String(error));
    assert.throws(() => Deno.listen({ hostname: "0.0.0.0", port: 8000 }).close(), Deno.errors.AddrInUse);
  }
  assert.throws(() => serve({ port: 0 } as never), TypeError);
  assert.throws(() => serve({ port: 70000, onListen: false }, h), RangeError);
});

test("serve(): the Request is a lazy but complete web Request", async () => {
  let seen: Record<string, unknown> = {};
  await using s = start(async (req, info) => {
    seen = {
      instance: req instanceof Request,
      method: req.method,
      url: req.url,
      ct: req.headers.get("content-type"),
      multi: req.headers.get("x-multi"),
      used: req.bodyUsed,
      json: await req.json(),
      usedAfter: req.bodyUsed,
      remote: info.remoteAddr.hostname,
    };
    return new Response("done");
  });
  const res = await fetch(`${s.url}/p/a?q=1`, {
    method: "PUT",
    headers: { "content-type": "application/json", "x-multi": "a" },
    body: JSON.stringify({ k: [1, 2] }),
  });
  assert.equal(await res.text(), "done");
  assert.deepEqual(seen, {
    instance: true,
    method: "PUT",
    url: `${s.url}/p/a?q=1`,
    ct: "application/json",
    multi: "a",
    used: false,
    json: { k: [1, 2] },
    usedAfter: true,
    remote: "127.0.0.1",
  });
});

test("serve(): request bodies as text, bytes, stream, form data, blob, clone", async () => {
  await using s = start(async (req) => {
    const kind = new URL(req.url).pathname.slice(1);
    if (kind === "text") return new Response(await req.text());
    if (kind === "bytes") return new Response(String((await req.arrayBuffer()).byteLength));
    if (kind === "stream") {
      let n = 0;
      for await (const chunk of req.body!) n += chunk.length;
      return new Response(String(n));
    }
    if (kind === "form") return new Response((await req.formData()).get("name") as string);
    if (kind === "blob") return new Response((await req.blob()).type);
    if (kind === "clone") {
      const c = req.clone();
      return new Response(`${c instanceof Request} ${await c.text()}`);
    }
    if (kind === "twice") {
      await req.text();
      try {
        await req.text();
      } catch (e) {
        return new Response(String(e instanceof TypeError));
      }
    }
    return new Response("?");
  });
  const post = (path: string, body: BodyInit, headers?: HeadersInit) =>
    fetch(`${s.url}/${path}`, { method: "POST", body, headers }).then((r) => r.text());
  assert.equal(await post("text", "héllo"), "héllo");
  assert.equal(await post("bytes", new Uint8Array(100_000)), "100000");
  assert.equal(await post("stream", new Uint8Array(70_000)), "70000");
  const form = new FormData();
  form.set("name", "mgnet");
  assert.equal(await post("form", form), "mgnet");
  assert.equal(
    await post("form", "name=url%20encoded", { "content-type": "application/x-www-form-urlencoded" }),
    "url encoded",
  );
  assert.equal(await post("blob", "x", { "content-type": "text/csv" }), "text/csv");
  assert.equal(await post("clone", "cloned"), "true cloned");
  assert.equal(await post("twice", "once"), "true");
});

test("serve(): every kind of Response body and header", async () => {
  await using s = start((req) => {
    switch (new URL(req.url).pathname) {
      case "/string":
        return new Response("plain");
      case "/bytes":
        return new Response(new Uint8Array([0, 1, 2, 0]), {
          headers: { "content-type": "application/x-bin" },
        });
      case "/json":
        return Response.json({ hello: "world" }, { status: 201, headers: { "x-a": "1" } });
      case "/redirect":
        return Response.redirect("http://example.com/next", 307);
      case "/empty":
        return new Response(null, { status: 204 });
      case "/stream":
        return new Response(
          new ReadableStream({
            start(c) {
              c.enqueue(new TextEncoder().encode("str"));
              c.enqueue(new TextEncoder().encode("eam"));
              c.close();
            },
          }),
        );
      case "/blob":
        return new Response(new Blob(["blob body"]), { headers: { "content-type": "text/x-blob" } });
      case "/cookies": {
        const h = new Headers();
        h.append("set-cookie", "a=1");
        h.append("set-cookie", "b=2");
        return new Response("c", { headers: h });
      }
      default:
        return new Response("not found", { status: 404 });
    }
  });
  const get = (p: string) => fetch(`${s.url}${p}`, { redirect: "manual" });
  let r = await get("/string");
  assert.equal(r.headers.get("content-type"), "text/plain;charset=UTF-8");
  assert.equal(await r.text(), "plain");
  r = await get("/bytes");
  assert.equal(r.headers.get("content-type"), "application/x-bin");
  assert.deepEqual(new Uint8Array(await r.arrayBuffer()), new Uint8Array([0, 1, 2, 0]));
  r = await get("/json");
  assert.equal(r.status, 201);
  assert.equal(r.headers.get("x-a"), "1");
  assert.deepEqual(await r.json(), { hello: "world" });
  r = await get("/redirect");
  assert.equal(r.status, 307);
  assert.equal(r.headers.get("location"), "http://example.com/next");
  await r.body?.cancel();
  r = await get("/empty");
  assert.equal(r.status, 204);
  assert.equal(await r.text(), "");
  r = await get("/stream");
  assert.equal(r.headers.get("transfer-encoding"), "chunked");
  assert.equal(await r.text(), "stream");
  r = await get("/blob");
  assert.equal(r.headers.get("content-type"), "text/x-blob");
  assert.equal(await r.text(), "blob body");
  r = await get("/cookies");
  await r.text();
  assert.deepEqual(r.headers.getSetCookie(), ["a=1", "b=2"]);
  r = await get("/missing");
  assert.equal(r.status, 404);
  await r.text();
});

test("serve(): a handler that throws gets a 500 and onError; the server keeps serving", async () => {
  const errors: unknown[] = [];
  await using s = start((req) => {
    const p = new URL(req.url).pathname;
    if (p === "/sync") throw new Error("sync boom");
    if (p === "/async") return Promise.reject(new Error("async boom"));
    if (p === "/not-a-response") return "oops" as unknown as Response;
    return new Response("fine");
  }, {
    onError: (e: unknown) => {
      errors.push(e);
      return new Response(`handled: ${(e as Error).message}`, { status: 500 });
    },
  });
  for (const p of ["/sync", "/async"]) {
    const r = await fetch(`${s.url}${p}`);
    assert.equal(r.status, 500);
    assert.match(await r.text(), /handled: (sync|async) boom/);
  }
  const r = await fetch(`${s.url}/not-a-response`);
  assert.equal(r.status, 500);
  await r.text();
  assert.equal(await (await fetch(`${s.url}/ok`)).text(), "fine");
  assert.equal(errors.length, 3);
  assert.ok(errors[2] instanceof TypeError);
});

test("serve(): without onError a throwing handler gets a plain 500", async () => {
  const logged: unknown[] = [];
  const original = console.error;
  console.error = (...a: unknown[]) => logged.push(a);
  try {
    await using s = start(() => {
      throw new Error("unhandled");
    });
    const r = await fetch(s.url);
    assert.equal(r.status, 500);
    assert.equal(await r.text(), "Internal Server Error");
  } finally {
    console.error = original;
  }
  assert.equal(logged.length, 1);
});

test("serve(): concurrent async handlers answer pipelined requests in order", async () => {
  await using s = start(async (req) => {
    const n = Number(new URL(req.url).pathname.slice(1));
    await new Promise((r) => setTimeout(r, (20 - n) * 2));
    return new Response(`r${n}`);
  });
  let raw = "";
  for (let i = 0; i < 20; i++) raw += `GET /${i} HTTP/1.1\r\nHost: t\r\n\r\n`;
  const r = await exchange(s.addr.port, raw, { responses: 20 });
  assert.deepEqual(r.responses.map((x) => x.text), Array.from({ length: 20 }, (_, i) => `r${i}`));
  const parallel = await Promise.all(
    Array.from({ length: 50 }, (_, i) => fetch(`${s.url}/${i % 20}`).then((x) => x.text())),
  );
  assert.deepEqual(parallel, Array.from({ length: 50 }, (_, i) => `r${i % 20}`));
});

test("serve(): request.signal aborts when the client leaves mid-body", async () => {
  let aborted = false;
  let cancelled = false;
  await using s = start((req) => {
    req.signal.addEventListener("abort", () => aborted = true);
    return new Response(
      new ReadableStream({
        pull(c) {
          c.enqueue(new Uint8Array(64 * 1024));
          return new Promise((r) => setTimeout(r, 1));
        },
        cancel() {
          cancelled = true;
        },
      }),
    );
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.addr.port });
  await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
  await conn.read(new Uint8Array(4096)); // the head and the first bytes of the body
  conn.close();
  await until(() => aborted && cancelled, "the abort and the stream's cancel");
});

test("serve(): a 100 MB ReadableStream body to a slow reader is pulled only as fast as it is read", async () => {
  const total = 100 << 20;
  const body = countingStream(total, 97);
  await using s = start(() => new Response(body.stream));
  // What the server holds is what the stream produced minus what we read
  // minus what the kernel holds on the way (its send queue, our receive
  // queue: /proc/net/tcp); sampled between reads, when nothing moves
  // (server and reader share this thread). serve() writes a stream body with
  // ResponseWriter, which waits above STREAM_HIGH_WATER (256 KiB) queued, so
  // the server holds at most that, the 64 KiB chunk that crossed it and the
  // next chunk pulled while waiting; 1 KiB covers head and chunk framing.
  const bound = STREAM_HIGH_WATER + 2 * 64 * 1024 + 1024;
  let maxHeld = 0;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.addr.port });
  const client = (conn.localAddr as Deno.NetAddr).port;
  await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
  const buf = new Uint8Array(128 * 1024);
  let received = 0;
  let samples = 0;
  for (let reads = 0;; reads++) {
    const n = await conn.read(buf);
    if (n === null) break;
    received += n;
    // Sampled at every 16th read: reading /proc/net/tcp takes milliseconds.
    if (reads % 16 === 0 && body.pulled() < total) {
      maxHeld = Math.max(maxHeld, body.pulled() - received - inFlight(s.addr.port, client));
      samples++;
    }
    if (reads % 16 === 0) await new Promise((r) => setTimeout(r, 1));
  }
  conn.close();
  assert.ok(received > total);
  assert.ok(samples > 20, `${samples} samples`);
  assert.ok(maxHeld <= bound, `the server held ${maxHeld >> 10} KiB (bound ${bound >> 10} KiB)`);
  // (The server's memory over such a transfer is measured in its own
  // process by stream_test.ts.)
});

test("serve(): shutdown() lets in-flight requests finish, then refuses connections", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  let arrived = false;
  const s = start(async () => {
    arrived = true;
    await gate;
    return new Response("late but complete");
  });
  const pending = fetch(s.url).then((r) => r.text());
  await until(() => arrived, "the request to reach the handler");
  const stopping = s.shutdown();
  await until(() => refused(s.addr.port), "the listener to close");
  release();
  assert.equal(await pending, "late but complete");
  await stopping;
  await s.finished;
  assert.equal(await refused(s.addr.port), true);
});

test("serve(): an aborted signal shuts the server down", async () => {
  const ac = new AbortController();
  const s = start(() => new Response("x"), { signal: ac.signal });
  assert.equal(await (await fetch(s.url)).text(), "x");
  ac.abort();
  await s.finished;
  assert.equal(await refused(s.addr.port), true);
});
