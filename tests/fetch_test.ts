import assert from "node:assert/strict";
import { ClientError, createFetch, fetch, Manager, serve } from "../mod.ts";
import { handlerContext } from "../src/manager.ts";
import { makeCert, test, toolEnv } from "./helpers.ts";

const enc = new TextEncoder();

/** What the echo handler reports about a request. */
interface Echo {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

/** The same fetch-style handler for both servers: echoes the request, or redirects, or streams. */
async function handler(req: Request, info?: { remoteAddr: unknown }): Promise<Response> {
  const url = new URL(req.url);
  const p = url.pathname;
  const m = /^\/redirect\/(\d{3})\/(\d+)$/.exec(p);
  if (m) {
    const left = Number(m[2]);
    const location = left > 1 ? `/redirect/${m[1]}/${left - 1}` : "/echo";
    return new Response(null, { status: Number(m[1]), headers: { location } });
  }
  if (p === "/loop") return new Response(null, { status: 302, headers: { location: "/loop" } });
  if (p === "/status") {
    return new Response("teapot", { status: 418, statusText: "I'm a teapot", headers: { "x-a": "1" } });
  }
  if (p === "/empty") return new Response(null, { status: 204 });
  if (p === "/form") {
    const form = await req.formData();
    const file = form.get("file") as File;
    return Response.json({ name: form.get("name"), file: file.name, text: await file.text() });
  }
  const headers: Record<string, string> = {};
  for (const [k, v] of req.headers) headers[k] = v;
  const echo: Echo = { method: req.method, path: `${p}${url.search}`, headers, body: await req.text() };
  return Response.json(echo, {
    headers: { "set-cookie": "a=1", "x-peer-port": String((info?.remoteAddr as Deno.NetAddr).port) },
  });
}

interface Server extends AsyncDisposable {
  name: string;
  port: number;
}

function denoServer(h: Deno.ServeHandler = handler): Server {
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, h);
  return { name: "Deno.serve", port: server.addr.port, [Symbol.asyncDispose]: () => server.shutdown() };
}

function mgnetServer(h = handler): Server {
  const server = serve({ port: 0, hostname: "127.0.0.1", onListen: false }, h);
  return { name: "mgnet serve()", port: server.addr.port, [Symbol.asyncDispose]: () => server.shutdown() };
}

const SERVERS = [["Deno.serve", denoServer], ["mgnet serve()", mgnetServer]] as const;

/** Rejects with a TypeError whose cause is a ClientError of `kind`. */
async function rejectsNetwork(p: Promise<unknown>, kind: string): Promise<void> {
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof TypeError, `a TypeError, not ${e}`);
    assert.ok(e.cause instanceof ClientError, `cause ${e.cause}`);
    assert.equal(e.cause.kind, kind);
    return true;
  });
}

for (const [label, make] of SERVERS) {
  test(`fetch (${label}): methods, headers, Response fields`, async () => {
    await using srv = make();
    await using mgr = new Manager();
    const f = createFetch(mgr);
    const base = `http://127.0.0.1:${srv.port}`;
    for (const method of ["GET", "DELETE", "OPTIONS", "post", "PUT", "PATCH"]) {
      const res = await f(`${base}/echo?x=1`, { method, headers: { "x-custom": "v1", "X-Two": "a" } });
      assert.ok(res instanceof Response);
      assert.equal(res.status, 200);
      assert.equal(res.ok, true);
      assert.equal(res.url, `${base}/echo?x=1`);
      assert.equal(res.redirected, false);
      assert.equal(res.headers.get("content-type"), "application/json");
      assert.equal(res.headers.get("set-cookie"), "a=1");
      const echo = await res.json() as Echo;
      assert.equal(echo.method, method === "post" ? "POST" : method);
      assert.equal(echo.path, "/echo?x=1");
      assert.equal(echo.headers["x-custom"], "v1");
      assert.equal(echo.headers["x-two"], "a");
      assert.equal(echo.headers["accept"], "*/*");
    }
    const head = await f(`${base}/echo`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.body, null);
    const status = await f(`${base}/status#frag`);
    assert.equal(status.status, 418);
    // (mgnet's serve() sends no reason phrase: the client reports what came.)
    if (srv.name === "Deno.serve") assert.equal(status.statusText, "I'm a teapot");
    assert.equal(status.ok, false);
    assert.equal(status.url, `${base}/status`);
    assert.equal(status.headers.get("x-a"), "1");
    assert.equal(await status.text(), "teapot");
    const empty = await f(`${base}/empty`);
    assert.equal(empty.status, 204);
    assert.equal(empty.body, null);
    // A Request as input, merged with init as the standard says.
    const req = new Request(`${base}/echo`, { method: "PUT", body: "from request", headers: { "x-r": "1" } });
    const fromReq = await (await f(req)).json() as Echo;
    assert.deepEqual([fromReq.method, fromReq.body, fromReq.headers["x-r"]], ["PUT", "from request", "1"]);
    const again = new Request(`${base}/echo`, { method: "PUT", body: "from request" });
    const merged = await (await f(again, { method: "POST", body: "override" })).json() as Echo;
    assert.deepEqual([merged.method, merged.body], ["POST", "override"]);
    await assert.rejects(f(`${base}/echo`, { method: "GET", body: "x" }), TypeError);
    await assert.rejects(f(`${base}/echo`, { method: "CONNECT" }), TypeError);
    await assert.rejects(f(`${base}/echo`, { headers: { "bad name": "x" } }), TypeError);
    await assert.rejects(f("ftp://127.0.0.1/"), TypeError);
    await assert.rejects(f(`http://user:pw@127.0.0.1:${srv.port}/echo`), TypeError);
    await assert.rejects(f(`${base}/echo`, { redirect: "sideways" as RequestRedirect }), TypeError);
  });

  test(`fetch (${label}): bodies: string, bytes, ArrayBuffer, stream, FormData, URLSearchParams, Blob`, async () => {
    await using srv = make();
    await using mgr = new Manager();
    const f = createFetch(mgr);
    const url = `http://127.0.0.1:${srv.port}/echo`;
    const post = async (body: BodyInit, headers?: HeadersInit) =>
      await (await f(url, { method: "POST", body, headers })).json() as Echo;

    let e = await post("héllo");
    assert.equal(e.body, "héllo");
    assert.equal(e.headers["content-type"], "text/plain;charset=UTF-8");
    assert.equal(e.headers["content-length"], "6");
    e = await post("x", { "content-type": "application/x-mine" });
    assert.equal(e.headers["content-type"], "application/x-mine");
    e = await post(enc.encode("bytes"));
    assert.deepEqual([e.body, e.headers["content-type"], e.headers["content-length"]], [
      "bytes",
      undefined,
      "5",
    ]);
    e = await post(enc.encode("xxbuffer").buffer.slice(2));
    assert.equal(e.body, "buffer");
    e = await post(new URLSearchParams({ a: "1", b: "two words" }));
    assert.equal(e.body, "a=1&b=two+words");
    assert.equal(e.headers["content-type"], "application/x-www-form-urlencoded;charset=UTF-8");
    e = await post(new Blob(["blob body"], { type: "text/x-blob" }));
    assert.deepEqual([e.body, e.headers["content-type"]], ["blob body", "text/x-blob"]);

    // A stream goes chunked, as it comes.
    const parts = ["one ", "two ", "three"];
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        const p = parts.shift();
        if (p === undefined) c.close();
        else c.enqueue(enc.encode(p));
      },
    });
    e = await post(stream);
    assert.equal(e.body, "one two three");
    assert.equal(e.headers["transfer-encoding"], "chunked");
    assert.equal(e.headers["content-length"], undefined);

    // FormData: multipart with its boundary, parsed by the server.
    const form = new FormData();
    form.append("name", "mgnet");
    form.append("file", new File(["file contents"], "a.txt", { type: "text/plain" }));
    const res = await f(`http://127.0.0.1:${srv.port}/form`, { method: "POST", body: form });
    assert.deepEqual(await res.json(), { name: "mgnet", file: "a.txt", text: "file contents" });
  });

  test(`fetch (${label}): clone() keeps url, redirected and type, as the global fetch's does`, async () => {
    await using srv = make();
    await using mgr = new Manager();
    const f = createFetch(mgr);
    const url = `http://127.0.0.1:${srv.port}/redirect/302/1`;
    const global = await fetch(url);
    const res = await f(url);
    for (const r of [res, res.clone(), res.clone().clone()]) {
      assert.equal(r.url, global.url);
      assert.equal(r.redirected, true);
      assert.equal(r.type, global.type);
      assert.equal(r.status, 200);
    }
    const copy = res.clone();
    assert.deepEqual(await copy.json(), await global.json());
    assert.equal(((await res.json()) as Echo).method, "GET");
  });

  test(`fetch (${label}): redirects follow, manual and error, with the standard's rewriting`, async () => {
    await using srv = make();
    await using mgr = new Manager();
    const f = createFetch(mgr);
    const base = `http://127.0.0.1:${srv.port}`;
    const body = { method: "POST", body: "payload", headers: { "content-type": "text/x-p" } };
    for (
      const [code, method, kept] of [[301, "GET", ""], [302, "GET", ""], [303, "GET", ""], [
        307,
        "POST",
        "payload",
      ], [308, "POST", "payload"]] as const
    ) {
      const res = await f(`${base}/redirect/${code}/2`, body);
      assert.equal(res.status, 200, `${code}`);
      assert.equal(res.redirected, true);
      assert.equal(res.url, `${base}/echo`);
      const e = await res.json() as Echo;
      assert.equal(e.method, method, `${code}`);
      assert.equal(e.body, kept, `${code}`);
      assert.equal(e.headers["content-type"], kept ? "text/x-p" : undefined, `${code}`);
    }
    // 303 turns every method but HEAD into GET; 301 keeps a PUT.
    assert.equal(
      (await (await f(`${base}/redirect/303/1`, { method: "PUT", body: "x" })).json() as Echo).method,
      "GET",
    );
    assert.equal(
      (await (await f(`${base}/redirect/301/1`, { method: "PUT", body: "x" })).json() as Echo).method,
      "PUT",
    );
    // A streamed body cannot be sent twice.
    await assert.rejects(
      f(`${base}/redirect/307/1`, { method: "POST", body: new Blob(["s"]).stream() }),
      TypeError,
    );
    const manual = await f(`${base}/redirect/302/1`, { redirect: "manual" });
    assert.equal(manual.status, 302);
    assert.equal(manual.headers.get("location"), "/echo");
    assert.equal(manual.redirected, false);
    await assert.rejects(f(`${base}/redirect/302/1`, { redirect: "error" }), TypeError);
    // 20 redirects are followed, the 21st is an error.
    assert.equal((await f(`${base}/redirect/302/20`)).status, 200);
    await assert.rejects(f(`${base}/redirect/302/21`), TypeError);
    await assert.rejects(f(`${base}/loop`), TypeError);
  });

  test(`fetch (${label}): keep-alive reuses one connection`, async () => {
    await using srv = make();
    await using mgr = new Manager();
    const f = createFetch(mgr);
    const peers = new Set<string | null>();
    for (let i = 0; i < 5; i++) {
      const res = await f(`http://127.0.0.1:${srv.port}/echo`);
      peers.add(res.headers.get("x-peer-port"));
      await res.text();
    }
    assert.equal(peers.size, 1, `one client port: ${[...peers]}`);
  });
}

/** A raw server: sends `head` and the first chunk, then waits for `more` before the rest. */
function streamingServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const more = Promise.withResolvers<void>();
  const closed = Promise.withResolvers<void>();
  const served = (async () => {
    for await (const conn of listener) {
      (async () => {
        const buf = new Uint8Array(4096);
        await conn.read(buf);
        await conn.write(enc.encode("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n"));
        // The client sends nothing more: a read ends only when it goes away.
        const gone = conn.read(buf).catch(() => null).then(() => "gone" as const);
        if ((await Promise.race([more.promise, gone])) !== "gone") {
          await conn.write(enc.encode("4\r\nlast\r\n0\r\n\r\n")).catch(() => {});
          await gone;
        }
        closed.resolve();
        conn.close();
      })();
    }
  })();
  return {
    port: listener.addr.port,
    more,
    closed: closed.promise,
    async [Symbol.asyncDispose]() {
      listener.close();
      more.resolve();
      await served.catch(() => {});
    },
  };
}

test("fetch: the body streams as bytes arrive", async () => {
  await using srv = streamingServer();
  await using mgr = new Manager();
  const res = await createFetch(mgr)(`http://127.0.0.1:${srv.port}/`);
  const reader = res.body!.getReader();
  const first = await reader.read();
  assert.equal(new TextDecoder().decode(first.value), "first"); // before the server sent the rest
  srv.more.resolve();
  const rest = await reader.read();
  assert.equal(new TextDecoder().decode(rest.value), "last");
  assert.equal((await reader.read()).done, true);
});

test("fetch: abort before connecting, while waiting for the head, and mid-body", async () => {
  await using mgr = new Manager();
  const f = createFetch(mgr);
  // Before: rejects with the signal's reason, like the global fetch.
  const reason = new Error("stop");
  await assert.rejects(f("http://127.0.0.1:1/", { signal: AbortSignal.abort(reason) }), (e) => e === reason);
  await assert.rejects(
    f("http://127.0.0.1:1/", { signal: AbortSignal.abort() }),
    (e) => e instanceof DOMException && e.name === "AbortError",
  );

  // While the server has not answered.
  const gotRequest = Promise.withResolvers<void>();
  const never = Promise.withResolvers<Response>();
  await using slow = denoServer(() => {
    gotRequest.resolve();
    return never.promise;
  });
  const c1 = new AbortController();
  const pending = f(`http://127.0.0.1:${slow.port}/`, { signal: c1.signal });
  await gotRequest.promise;
  c1.abort(reason);
  await assert.rejects(pending, (e) => e === reason);
  never.resolve(new Response("late"));

  // Mid-body: the body errors with the reason; the connection is dropped, not pooled.
  await using srv = streamingServer();
  const c2 = new AbortController();
  const res = await f(`http://127.0.0.1:${srv.port}/`, { signal: c2.signal });
  const reader = res.body!.getReader();
  assert.equal(new TextDecoder().decode((await reader.read()).value), "first");
  c2.abort(reason);
  await assert.rejects(reader.read(), (e) => e === reason);
  await srv.closed; // the server saw the connection end
});

test("fetch: errors are TypeErrors like the global fetch's, with mgnet's ClientError as cause", async () => {
  await using mgr = new Manager();
  const f = createFetch(mgr);
  const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  free.close();
  await rejectsNetwork(f(`http://127.0.0.1:${free.addr.port}/`), "refused");
  await assert.rejects(globalThis.fetch(`http://127.0.0.1:${free.addr.port}/`), TypeError);
  await rejectsNetwork(f("http://no-such-host.invalid/"), "dns");
  await assert.rejects(globalThis.fetch("http://no-such-host.invalid/"), TypeError);

  // TLS: a certificate nobody trusts.
  const dir = Deno.makeTempDirSync();
  try {
    const { cert, key } = makeCert(dir, "localhost", "DNS:localhost,IP:127.0.0.1");
    await using tls = Deno.serve(
      { port: 0, hostname: "127.0.0.1", onListen() {}, cert, key },
      () => new Response("secure"),
    );
    const url = `https://localhost:${tls.addr.port}/`;
    await rejectsNetwork(f(url), "tls");
    await assert.rejects(globalThis.fetch(url), TypeError);
    assert.equal(await (await f(url, { ca: cert })).text(), "secure");
    assert.equal(await (await f(url, { insecure: true })).text(), "secure");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

test("fetch: inside a serve() handler it runs on the server's own manager", async () => {
  await using upstream = denoServer((_req, info) =>
    new Response(`up ${(info.remoteAddr as Deno.NetAddr).port}`)
  );
  let seen: Manager | undefined;
  const server = serve({ port: 0, hostname: "127.0.0.1", onListen: false }, async () => {
    await null; // still inside the handler after an await
    seen = handlerContext.getStore();
    const res = await fetch(`http://127.0.0.1:${upstream.port}/`);
    return new Response(`via ${await res.text()}`);
  });
  try {
    const first = await (await globalThis.fetch(`http://127.0.0.1:${server.addr.port}/`)).text();
    assert.match(first, /^via up \d+$/);
    assert.equal(seen, server.manager);
    // The upstream connection was pooled on that manager and is reused.
    const second = await (await globalThis.fetch(`http://127.0.0.1:${server.addr.port}/`)).text();
    assert.equal(second, first);
  } finally {
    await server.shutdown();
  }
  assert.equal(handlerContext.getStore(), undefined, "outside handlers: no manager");
});

test("fetch: outside handlers, a shared manager that lets the process exit", async () => {
  await using srv = denoServer(() => new Response("shared"));
  const mod = new URL("../mod.ts", import.meta.url).href;
  const code = `import { fetch } from "${mod}";
const res = await fetch("http://127.0.0.1:${srv.port}/");
console.log(await res.text());`;
  const started = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--unstable-ffi", code],
    env: { ...toolEnv, LD_PRELOAD: Deno.env.get("LD_PRELOAD") ?? "" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const ms = performance.now() - started;
  assert.equal(new TextDecoder().decode(out.stdout), "shared\n", new TextDecoder().decode(out.stderr));
  assert.ok(out.success);
  // The idle pooled connection (kept 4 s) does not hold the process.
  assert.ok(ms < 3_500, `exited after ${ms.toFixed(0)} ms`);
});

test("fetch: a gzip body is decoded when the caller asked for it; none is asked for by default", async () => {
  const text = "compressible ".repeat(1000);
  const gz = new Uint8Array(
    await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer(),
  );
  let asked: string | null = "unset";
  await using srv = denoServer((req) => {
    asked = req.headers.get("accept-encoding");
    return new Response(gz, { headers: { "content-encoding": "gzip", "content-type": "text/plain" } });
  });
  await using mgr = new Manager();
  const f = createFetch(mgr);
  const res = await f(`http://127.0.0.1:${srv.port}/`, { headers: { "accept-encoding": "gzip" } });
  assert.equal(asked, "gzip");
  assert.equal(await res.text(), text);
  await (await f(`http://127.0.0.1:${srv.port}/`)).body?.cancel();
  assert.equal(asked, null);
});
