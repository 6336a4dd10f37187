import assert from "node:assert/strict";
import { readUntil, test } from "./helpers.ts";

/**
 * Starts an example with PORT=0, returns its base URL, the process, its
 * stdout reader and `stop()`: sends a signal (if it still runs), waits for
 * the exit and releases stdout; resolves with the exit status.
 */
async function startExample(file: string, env: Record<string, string> = {}) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-ffi",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      new URL(`../examples/${file}`, import.meta.url).pathname,
    ],
    env: { PORT: "0", ...env },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out: string;
  try {
    out = await readUntil(reader, (t) => /Listening on (\S+)\n/.test(t), `${file} to listen`);
  } catch (e) {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
    await reader.cancel();
    throw e;
  }
  const url = /Listening on (\S+)\n/.exec(out)![1];
  const stop = async (signal: Deno.Signal = "SIGINT"): Promise<Deno.CommandStatus> => {
    try {
      child.kill(signal);
    } catch { /* already exited */ }
    const status = await child.status;
    await reader.cancel();
    return status;
  };
  return { child, url, reader, stop };
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  test(`examples/hello.ts answers every path and exits cleanly on ${signal}`, async () => {
    const { url, stop } = await startExample("hello.ts");
    try {
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      for (const path of ["", "any/path?x=1"]) {
        const res = await fetch(url + path);
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("content-type"), "application/json");
        assert.deepEqual(await res.json(), { message: "Hello, World!" });
      }
    } finally {
      assert.equal((await stop(signal)).code, 0);
    }
  });
}

test("examples/hello.ts honours HOSTNAME (IPv6)", async () => {
  const { url, stop } = await startExample("hello.ts", { HOSTNAME: "::1" });
  try {
    assert.match(url, /^http:\/\/\[::1\]:\d+\/$/);
    assert.equal((await (await fetch(url)).json()).message, "Hello, World!");
  } finally {
    await stop();
  }
});

test("examples/showcase.ts serves every route and exits cleanly with an event stream open", async () => {
  const uploadDir = Deno.makeTempDirSync();
  const { child, url, stop } = await startExample("showcase.ts", { UPLOAD_DIR: uploadDir });
  try {
    const page = await fetch(url);
    assert.match(page.headers.get("content-type") ?? "", /text\/html/);
    assert.match(await page.text(), /<h1>mgnet<\/h1>/);
    assert.deepEqual(await (await fetch(`${url}api/hello?name=Deno`)).json(), { message: "Hello, Deno!" });
    const metrics = await fetch(`${url}metrics`);
    assert.equal(metrics.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    // The page and /api/hello were answered (200 both); this request is not yet.
    assert.match(await metrics.text(), /^mgnet_http_responses_total\{code="200"\} 2$/m);
    const echo = await fetch(`${url}api/echo`, {
      method: "POST",
      body: '{"a":1}',
      headers: { "content-type": "application/json" },
    });
    assert.equal(echo.headers.get("content-type"), "application/json");
    assert.equal(await echo.text(), '{"a":1}');
    // /api/time answers the current time, cached for 2 s. The second request
    // goes out once this clock (the example's too) is past the first answer's
    // time, so an uncached answer would carry a later time; only the cache can
    // repeat the first one. The cache also adds an etag the handler does not.
    const r1 = await fetch(`${url}api/time`);
    const t1 = await r1.json();
    while (Date.now() <= Date.parse(t1.time) + 5) await new Promise((r) => setTimeout(r, 1));
    const r2 = await fetch(`${url}api/time`);
    const t2 = await r2.json();
    assert.ok(Date.now() - Date.parse(t1.time) < 2000, "the second request came within the 2 s ttl");
    assert.equal(t2.time, t1.time, "the second answer came from the native cache");
    assert.equal(r1.headers.get("etag"), null, "the handler's own answer has no etag");
    assert.match(r2.headers.get("etag") ?? "", /^"/, "the native cache's etag");
    assert.equal((await (await fetch(`${url}stream`)).arrayBuffer()).byteLength, 1 << 20);
    const missing = await fetch(`${url}nope`);
    assert.equal(missing.status, 404);
    await missing.text();
    const events = await fetch(`${url}sse`);
    assert.equal(events.headers.get("content-type"), "text/event-stream; charset=utf-8");
    const sse = events.body!.pipeThrough(new TextDecoderStream()).getReader();
    const text = await readUntil(sse, (t) => t.includes("data: 1\n\n"), "the first event");
    assert.equal(text, ": connected\nretry: 2000\n\nevent: tick\nid: 1\ndata: 1\n\n");
    const css = await fetch(`${url}static/assets/style.css`);
    assert.equal(css.headers.get("content-type"), "text/css; charset=utf-8");
    assert.equal(
      await css.text(),
      Deno.readTextFileSync(new URL("../examples/web_root/assets/style.css", import.meta.url)),
    );
    const index = await fetch(`${url}static/`);
    assert.match(await index.text(), /Static files/);
    const form = new FormData();
    form.append("note", "hi");
    form.append("file", new File(["uploaded bytes"], "../evil name.txt"));
    const saved = await (await fetch(`${url}upload`, { method: "POST", body: form })).json();
    assert.deepEqual(saved.fields, { note: "hi" });
    assert.equal(saved.files.length, 1);
    assert.match(saved.files[0].savedAs, /^[0-9a-f]{8}-evil name\.txt$/);
    assert.equal(Deno.readTextFileSync(`${uploadDir}/${saved.files[0].savedAs}`), "uploaded bytes");
    const bad = await fetch(`${url}upload`, {
      method: "POST",
      headers: { "content-type": "multipart/form-data; boundary=x" },
      body: "nonsense",
    });
    assert.equal(bad.status, 400);
    await bad.text();
    child.kill("SIGINT");
    assert.equal((await child.status).code, 0);
    await sse.cancel().catch(() => {});
  } finally {
    await stop();
    Deno.removeSync(uploadDir, { recursive: true });
  }
});

/** Runs `body` against an example, then stops it with SIGINT and expects exit code 0. */
async function withExample(
  file: string,
  body: (url: string, reader: ReadableStreamDefaultReader<string>) => Promise<void>,
  env: Record<string, string> = {},
): Promise<void> {
  const { url, reader, stop } = await startExample(file, env);
  try {
    await body(url, reader);
  } finally {
    assert.equal((await stop()).code, 0);
  }
}

test("examples/static_files.ts serves web_root with validators and ranges", async () => {
  await withExample("static_files.ts", async (url) => {
    const page = await fetch(url);
    assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
    assert.match(await page.text(), /Static files/);
    const etag = page.headers.get("etag")!;
    const again = await fetch(url, { headers: { "if-none-match": etag } });
    assert.equal(again.status, 304);
    await again.body?.cancel();
    const svg = await fetch(`${url}assets/logo.svg`, { headers: { range: "bytes=0-3" } });
    assert.equal(svg.status, 206);
    assert.equal(await svg.text(), "<svg");
    const escape = await fetch(`${url}assets/..%2f..%2fhello.ts`);
    assert.equal(escape.status, 404);
    await escape.body?.cancel();
  });
});

test("examples/rest_json.ts: create, read, update, delete, and its errors", async () => {
  await withExample("rest_json.ts", async (url) => {
    const json = { "content-type": "application/json" };
    const created = await fetch(`${url}notes`, { method: "POST", headers: json, body: '{"text":"first"}' });
    assert.equal(created.status, 201);
    const note = await created.json();
    assert.equal(created.headers.get("location"), `/notes/${note.id}`);
    assert.deepEqual(await (await fetch(`${url}notes`)).json(), [note]);
    const put = await fetch(`${url}notes/${note.id}`, {
      method: "PUT",
      headers: json,
      body: '{"text":"edited"}',
    });
    assert.deepEqual(await put.json(), { id: note.id, text: "edited" });
    const bad = await fetch(`${url}notes`, { method: "POST", headers: json, body: "{nope" });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
    const plain = await fetch(`${url}notes`, { method: "POST", body: "text" });
    assert.equal(plain.status, 415);
    await plain.body?.cancel();
    const del = await fetch(`${url}notes/${note.id}`, { method: "DELETE" });
    assert.equal(del.status, 204);
    await del.body?.cancel();
    const gone = await fetch(`${url}notes/${note.id}`);
    assert.equal(gone.status, 404);
    await gone.body?.cancel();
    const patch = await fetch(`${url}notes`, { method: "PATCH" });
    assert.equal(patch.status, 405);
    assert.equal(patch.headers.get("allow"), "GET, POST");
    await patch.body?.cancel();
  });
});

test("examples/sse.ts pushes timed events to an EventSource", async () => {
  await withExample("sse.ts", async (url) => {
    const es = new EventSource(`${url}events`);
    const first = await new Promise<MessageEvent>((resolve, reject) => {
      es.addEventListener("time", (e) => resolve(e as MessageEvent));
      es.onerror = () => reject(new Error("EventSource failed"));
    });
    es.close();
    assert.equal(first.lastEventId, "1");
    assert.ok(!Number.isNaN(Date.parse(first.data)));
  });
});

test("examples/upload.ts saves curl's upload under a sanitised name", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    await withExample("upload.ts", async (url) => {
      const src = `${dir}/source.txt`;
      Deno.writeTextFileSync(src, "curl upload");
      const out = await new Deno.Command("curl", {
        args: ["-s", "-F", `file=@${src};filename=../../x.txt`, `${url}upload`],
        env: { LD_PRELOAD: "" },
      }).output();
      const saved = JSON.parse(new TextDecoder().decode(out.stdout));
      assert.match(saved.files[0].savedAs, /^[0-9a-f]{8}-x\.txt$/);
      assert.equal(Deno.readTextFileSync(`${dir}/${saved.files[0].savedAs}`), "curl upload");
    }, { UPLOAD_DIR: dir });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

test("examples/shutdown.ts answers a request in progress after SIGINT, then exits", async () => {
  const { child, url, reader, stop } = await startExample("shutdown.ts");
  try {
    const slow = fetch(`${url}slow`).then((r) => r.text());
    let out = await readUntil(reader, (t) => t.includes("slow request"), "the slow request's log line");
    child.kill("SIGINT");
    assert.equal(await slow, "answered /slow\n");
    out = await readUntil(reader, (t) => t.includes("stopped"), "the shutdown's log lines", 10_000, out);
    assert.match(out, /shutting down[\s\S]*stopped/);
    assert.equal((await child.status).code, 0);
  } finally {
    await stop();
  }
});

test("examples/http_client.ts prints a response; a refused connection exits 1 with its kind", async () => {
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    async (req) => new Response(`${req.method} ${await req.text()}`, { headers: { "x-from": "deno" } }),
  );
  const file = new URL("../examples/http_client.ts", import.meta.url).pathname;
  const run = (...args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", file, ...args],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
  try {
    const ok = await run(`http://127.0.0.1:${server.addr.port}/`, '--data={"a":1}');
    const text = new TextDecoder().decode(ok.stdout);
    assert.equal(ok.code, 0);
    assert.match(text, /^HTTP\/1\.1 200 OK\n/);
    assert.match(text, /x-from: deno\n/);
    assert.ok(text.endsWith('\nPOST {"a":1}'), text);
  } finally {
    await server.shutdown();
  }
  const refused = await run(`http://127.0.0.1:${server.addr.port}/`);
  assert.equal(refused.code, 1);
  assert.match(new TextDecoder().decode(refused.stderr), /request failed \(refused\)/);
});

/** A TCP client of an example: `line()` reads the next `\n`-terminated line. */
async function tcpClient(port: number) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const reader = conn.readable.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  return {
    conn,
    send: (text: string) => conn.write(new TextEncoder().encode(text)),
    async line(): Promise<string> {
      buffered = await readUntil(reader, (t) => t.includes("\n"), "a line", 10_000, buffered);
      const i = buffered.indexOf("\n");
      const l = buffered.slice(0, i);
      buffered = buffered.slice(i + 1);
      return l;
    },
    async rest(): Promise<string> {
      let text = buffered;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return text;
        text += value;
      }
    },
  };
}

test("examples/tcp_echo.ts echoes bytes, answers a half-close with its own, exits cleanly", async () => {
  const { url, stop } = await startExample("tcp_echo.ts");
  try {
    assert.match(url, /^tcp:\/\/127\.0\.0\.1:\d+\/$/);
    const c = await tcpClient(Number(new URL(url).port));
    await c.send("hello\n");
    assert.equal(await c.line(), "hello");
    await c.send("bye");
    await c.conn.closeWrite();
    assert.equal(await c.rest(), "bye"); // then EOF: the server ended too
  } finally {
    assert.equal((await stop()).code, 0);
  }
});

test("examples/line_chat.ts relays lines between clients, with /nick, /who and /quit", async () => {
  const { url, stop } = await startExample("line_chat.ts");
  try {
    const port = Number(new URL(url).port);
    const a = await tcpClient(port);
    assert.match(await a.line(), /^welcome, guest1!/);
    const b = await tcpClient(port);
    assert.match(await b.line(), /^welcome, guest2!/);
    assert.equal(await a.line(), "* guest2 joined");
    await a.send("/nick ann\r\n");
    assert.equal(await a.line(), "you are ann");
    assert.equal(await b.line(), "* guest1 is now ann");
    await b.send("hi ");
    await b.send("all\n"); // a line split across writes arrives whole
    assert.equal(await a.line(), "guest2: hi all");
    await b.send("/who\n");
    assert.equal(await b.line(), "here: ann, guest2");
    await a.send("/quit\n");
    assert.equal(await a.line(), "bye");
    assert.equal(await a.rest(), "");
    assert.equal(await b.line(), "* ann left");
    b.conn.close();
  } finally {
    assert.equal((await stop()).code, 0);
  }
});

test("examples/udp_echo.ts echoes datagrams from nc and a Deno socket, and exits cleanly on SIGTERM", async () => {
  const { url, stop } = await startExample("udp_echo.ts");
  try {
    const m = /^udp:\/\/127\.0\.0\.1:(\d+)\/$/.exec(url);
    assert.ok(m, url);
    const port = Number(m[1]);
    // netcat-openbsd: send a line, print what comes back, quit 1 s after.
    const nc = new Deno.Command("nc", {
      args: ["-u", "-w1", "127.0.0.1", String(port)],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const w = nc.stdin.getWriter();
    await w.write(new TextEncoder().encode("hello from nc\n"));
    await w.close();
    assert.equal(new TextDecoder().decode((await nc.output()).stdout), "hello from nc\n");
    const peer = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      const bytes = new Uint8Array([0, 255, 1, 254]);
      await peer.send(bytes, { transport: "udp", hostname: "127.0.0.1", port });
      const [got, from] = await peer.receive();
      assert.deepEqual([...got], [...bytes]);
      assert.equal((from as Deno.NetAddr).port, port);
    } finally {
      peer.close();
    }
  } finally {
    assert.equal((await stop("SIGTERM")).code, 0);
  }
});

/** Opens a WebSocket and resolves with the first `n` messages. */
function wsMessages(url: string, send: string[], n: number): Promise<string[]> {
  const ws = new WebSocket(url);
  const got: string[] = [];
  return new Promise((resolve, reject) => {
    ws.onopen = () => send.forEach((m) => ws.send(m));
    ws.onerror = () => reject(new Error(`WebSocket ${url} failed`));
    ws.onmessage = (e) => {
      got.push(String(e.data));
      if (got.length === n) {
        ws.onclose = () => resolve(got);
        ws.close();
      }
    };
  });
}

test("examples/ws_echo.ts echoes WebSocket messages and answers plain HTTP", async () => {
  const { url, stop } = await startExample("ws_echo.ts");
  assert.match(url, /^ws:\/\/127\.0\.0\.1:\d+\/$/);
  assert.deepEqual(await wsMessages(url, ["a", "bb"], 2), ["a", "bb"]);
  const res = await fetch(url.replace("ws:", "http:"));
  assert.match(await res.text(), /WebSocket echo/);
  assert.equal((await stop()).success, true);
});

test("examples/ws_chat.ts serves its page and broadcasts a message to everyone", async () => {
  const { url, stop } = await startExample("ws_chat.ts");
  const page = await (await fetch(url)).text();
  assert.match(page, /new WebSocket/);
  const wsUrl = url.replace("http:", "ws:") + "ws";
  const a = new WebSocket(wsUrl);
  const aGot: string[] = [];
  await new Promise((r) => a.onopen = r);
  a.onmessage = (e) => aGot.push(e.data);
  // b joins and says hello: a sees both lines.
  const bLines = await wsMessages(wsUrl, ["hello"], 2);
  assert.match(bLines[0], /^guest\d+ joined$/);
  assert.match(bLines[1], /^guest\d+: hello$/);
  const deadline = Date.now() + 5000;
  while (!aGot.some((l) => l.endsWith(": hello")) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.ok(aGot.some((l) => /^guest\d+: hello$/.test(l)), aGot.join("|"));
  a.close();
  await new Promise((r) => a.onclose = r);
  assert.equal((await stop()).success, true);
});

test("examples/ws_hono.ts: Hono's upgradeWebSocket helper runs on mgnet", async () => {
  const { url, stop } = await startExample("ws_hono.ts");
  assert.equal(await (await fetch(url)).text(), "Hono + mgnet WebSockets: connect to /ws");
  assert.deepEqual(await wsMessages(url.replace("http:", "ws:") + "ws", ["hi", "there"], 2), [
    "echo: hi",
    "echo: there",
  ]);
  assert.equal((await stop()).success, true);
});

test("examples/proxy.ts forwards methods, paths, bodies and statuses to UPSTREAM", async () => {
  await using upstream = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    const { pathname, search } = new URL(req.url);
    if (pathname === "/missing") return new Response("no such thing", { status: 404 });
    const body = await req.text();
    return Response.json({
      method: req.method,
      path: `${pathname}${search}`,
      body,
      x: req.headers.get("x-a"),
    });
  });
  await withExample("proxy.ts", async (url) => {
    const got = await fetch(`${url}items?id=7`, { headers: { "x-a": "1" } });
    assert.equal(got.status, 200);
    assert.equal(got.headers.get("content-type"), "application/json");
    assert.deepEqual(await got.json(), { method: "GET", path: "/items?id=7", body: "", x: "1" });
    const posted = await fetch(`${url}items`, { method: "POST", body: "a body" });
    assert.deepEqual(await posted.json(), { method: "POST", path: "/items", body: "a body", x: null });
    const missing = await fetch(`${url}missing`);
    assert.equal(missing.status, 404);
    assert.equal(await missing.text(), "no such thing");
  }, { UPSTREAM: `http://127.0.0.1:${upstream.addr.port}` });
  // With the upstream gone, the proxy answers 502.
  await upstream.shutdown();
  await withExample("proxy.ts", async (url) => {
    const res = await fetch(`${url}x`);
    assert.equal(res.status, 502);
    assert.match(await res.text(), /^upstream failed: error sending request/);
  }, { UPSTREAM: `http://127.0.0.1:${upstream.addr.port}` });
});

test("examples/https.ts serves the hello JSON over TLS with a self-signed certificate, or CERT_FILE/KEY_FILE", async () => {
  const tmp = Deno.makeTempDirSync();
  try {
    // First run: a self-signed certificate generated in process into TMPDIR.
    const first = await startExample("https.ts", { TMPDIR: tmp });
    let certPem: string;
    try {
      assert.match(first.url, /^https:\/\/127\.0\.0\.1:\d+\/$/);
      certPem = Deno.readTextFileSync(`${tmp}/mgnet-https-example/cert.pem`);
      const client = Deno.createHttpClient({ caCerts: [certPem] });
      const res = await fetch(first.url.replace("127.0.0.1", "localhost") + "x", { client });
      assert.deepEqual(await res.json(), { message: "Hello, World!" });
      client.close();
    } finally {
      assert.equal((await first.stop()).code, 0);
    }
    // CERT_FILE/KEY_FILE: the given pair is served (here the one made above, copied).
    Deno.copyFileSync(`${tmp}/mgnet-https-example/cert.pem`, `${tmp}/c.pem`);
    Deno.copyFileSync(`${tmp}/mgnet-https-example/key.pem`, `${tmp}/k.pem`);
    Deno.removeSync(`${tmp}/mgnet-https-example`, { recursive: true });
    const second = await startExample("https.ts", {
      TMPDIR: tmp,
      CERT_FILE: `${tmp}/c.pem`,
      KEY_FILE: `${tmp}/k.pem`,
    });
    try {
      const client = Deno.createHttpClient({ caCerts: [certPem] });
      const res = await fetch(second.url.replace("127.0.0.1", "localhost"), { client });
      assert.deepEqual(await res.json(), { message: "Hello, World!" });
      client.close();
      assert.throws(() => Deno.statSync(`${tmp}/mgnet-https-example`), Deno.errors.NotFound);
    } finally {
      assert.equal((await second.stop("SIGTERM")).code, 0);
    }
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});
