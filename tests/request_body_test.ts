import assert from "node:assert/strict";
import {
  ConnectionClosedError,
  type HttpRequestEvent,
  Manager,
  type ManagerOptions,
  MgnetError,
  saveBodyToFile,
  serve as mgServe,
} from "../mod.ts";
import { inFlight, readResponses, test, toolEnv, until, untilStalled, writeAll } from "./helpers.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function pattern(n: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 12)) & 0xff;
  return b;
}

function checksum(parts: Iterable<Uint8Array>): number {
  let h = 0;
  for (const p of parts) for (let i = 0; i < p.length; i++) h = (h * 31 + p[i]) >>> 0;
  return h;
}

/** A manager with `streamBodiesOver`, calling `onRequest` for each request. */
function streamingServer(onRequest: (ev: HttpRequestEvent) => unknown, options: ManagerOptions = {}) {
  const mgr = new Manager({ streamBodiesOver: 64 * 1024, maxBodySize: 256 << 20, ...options });
  const { port } = mgr.listen("http://127.0.0.1:0", {
    onRequest: (ev) => void onRequest(ev),
  });
  return { mgr, port, [Symbol.asyncDispose]: () => mgr.close() };
}

function tempDir(): { dir: string; files: () => string[]; [Symbol.dispose](): void } {
  const dir = Deno.makeTempDirSync({ prefix: "mgnet-body-" });
  return {
    dir,
    files: () => [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
    [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }),
  };
}

test("streamed bodies: large ones arrive in pieces, small ones stay buffered", async () => {
  const seen: { streamed: boolean; size: number; pieces: number; sum: number; bodyThrows: boolean }[] = [];
  await using srv = streamingServer(async (ev) => {
    let bodyThrows = false;
    try {
      void ev.body;
    } catch (e) {
      bodyThrows = e instanceof TypeError;
    }
    const parts: Uint8Array[] = [];
    for await (const c of ev.bodyChunks()) parts.push(c.slice());
    const size = parts.reduce((a, p) => a + p.length, 0);
    seen.push({ streamed: ev.bodyStreamed, size, pieces: parts.length, sum: checksum(parts), bodyThrows });
    ev.reply(200, String(size));
  });
  const big = pattern(20 << 20);
  const small = pattern(1000);
  assert.equal(
    await (await fetch(`http://127.0.0.1:${srv.port}/`, { method: "POST", body: big })).text(),
    String(big.length),
  );
  assert.equal(
    await (await fetch(`http://127.0.0.1:${srv.port}/`, { method: "POST", body: small })).text(),
    "1000",
  );
  assert.equal(seen[0].streamed, true);
  assert.equal(seen[0].bodyThrows, true);
  assert.ok(seen[0].pieces > 1);
  assert.equal(seen[0].sum, checksum([big]));
  assert.deepEqual(
    { streamed: seen[1].streamed, pieces: seen[1].pieces, bodyThrows: seen[1].bodyThrows },
    { streamed: false, pieces: 1, bodyThrows: false },
  );
  assert.equal(seen[1].sum, checksum([small]));
});

test("streamed bodies: a chunked body switches to streaming once it outgrows the threshold", async () => {
  const seen: boolean[] = [];
  await using srv = streamingServer(async (ev) => {
    let n = 0;
    for await (const c of ev.bodyChunks()) n += c.length;
    seen.push(ev.bodyStreamed);
    ev.reply(200, String(n));
  });
  const stream = (total: number) =>
    new ReadableStream<Uint8Array>({
      start(c) {
        for (let sent = 0; sent < total; sent += 16 * 1024) {
          c.enqueue(pattern(Math.min(16 * 1024, total - sent)));
        }
        c.close();
      },
    });
  for (const total of [1 << 20, 10_000]) {
    const res = await fetch(`http://127.0.0.1:${srv.port}/`, { method: "POST", body: stream(total) });
    assert.equal(await res.text(), String(total));
  }
  assert.deepEqual(seen, [true, false]);
});

test("saveBodyToFile: curl uploads (with Expect: 100-continue and chunked) land whole", async () => {
  using tmp = tempDir();
  await using srv = streamingServer(async (ev) => {
    const n = await saveBodyToFile(ev, `${tmp.dir}/${ev.path.slice(1)}`, { limit: 64 << 20 });
    if (n !== null) ev.reply(201, `stored ${n}`);
  });
  const src = `${tmp.dir}/../mgnet-src-${crypto.randomUUID()}.bin`;
  Deno.writeFileSync(src, pattern(30 << 20));
  try {
    for (
      const [name, extra] of [["plain.bin", []], ["chunked.bin", [
        "-H",
        "transfer-encoding: chunked",
      ]]] as const
    ) {
      const out = await new Deno.Command("curl", {
        args: [
          "-s",
          "-w",
          " %{http_code}",
          ...extra,
          "--data-binary",
          `@${src}`,
          `http://127.0.0.1:${srv.port}/${name}`,
        ],
        env: toolEnv,
      }).output();
      assert.equal(dec.decode(out.stdout), `stored ${30 << 20} 201`);
      assert.ok(
        (await new Deno.Command("cmp", { args: [src, `${tmp.dir}/${name}`] }).output()).success,
        name,
      );
    }
    assert.deepEqual(tmp.files(), ["chunked.bin", "plain.bin"]); // no temporary files left
  } finally {
    Deno.removeSync(src);
  }
});

test("saveBodyToFile: over the limit is 413 and leaves nothing, whether declared or chunked", async () => {
  using tmp = tempDir();
  const results: (number | null)[] = [];
  await using srv = streamingServer(async (ev) => {
    results.push(await saveBodyToFile(ev, `${tmp.dir}/upload.bin`, { limit: 1 << 20 }));
  });
  const declared = await fetch(`http://127.0.0.1:${srv.port}/`, { method: "POST", body: pattern(2 << 20) });
  assert.equal(declared.status, 413);
  assert.equal(declared.headers.get("connection"), "close");
  await declared.body?.cancel();
  // The chunked upload goes over a raw socket: fetch rejects when the 413
  // arrives before it finished sending, which would skip the check. We stop
  // writing once the answer is in (or the server stopped reading).
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: srv.port });
  try {
    await writeAll(conn, enc.encode("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
    const answer = readResponses(conn, { responses: 1 });
    let answered = false;
    answer.finally(() => answered = true);
    const piece = pattern(64 * 1024);
    const chunk = new Uint8Array([...enc.encode(`${piece.length.toString(16)}\r\n`), ...piece, 13, 10]);
    for (let i = 0; i < 40 && !answered; i++) {
      if (!(await writeAll(conn, chunk).then(() => true, () => false))) break; // closed by the server
    }
    const r = await answer;
    assert.equal(r.responses[0]?.status, 413, `got ${dec.decode(r.raw.subarray(0, 200))}`);
    assert.equal(r.responses[0].headers.get("connection"), "close");
  } finally {
    conn.close();
  }
  await until(() => results.length === 2, "both handlers");
  assert.deepEqual(results, [null, null]);
  assert.deepEqual(tmp.files(), []);
});

test("saveBodyToFile: a client that leaves midway leaves no partial file", async () => {
  using tmp = tempDir();
  const outcome = Promise.withResolvers<unknown>();
  await using srv = streamingServer(async (ev) => {
    try {
      outcome.resolve(await saveBodyToFile(ev, `${tmp.dir}/upload.bin`, { limit: 64 << 20 }));
    } catch (e) {
      outcome.resolve(e);
    }
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: srv.port });
  await writeAll(conn, enc.encode("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n"));
  await writeAll(conn, pattern(3 << 20));
  conn.close();
  const e = await outcome.promise;
  assert.ok(e instanceof ConnectionClosedError, String(e));
  assert.deepEqual(tmp.files(), []);
});

test("streamed bodies: an unread body stops the client (bounded memory), reading resumes it", async () => {
  const release = Promise.withResolvers<void>();
  const total = 64 << 20;
  let received = -1;
  await using srv = streamingServer(async (ev) => {
    await release.promise;
    let n = 0;
    for await (const c of ev.bodyChunks()) n += c.length;
    received = n;
    ev.reply(200, "ok");
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: srv.port });
  const client = (conn.localAddr as Deno.NetAddr).port;
  await writeAll(conn, enc.encode(`POST / HTTP/1.1\r\nHost: t\r\nContent-Length: ${total}\r\n\r\n`));
  let written = 0; // body bytes the kernel accepted, counted per write() call
  const chunk = pattern(256 * 1024);
  const writer = (async () => {
    while (written < total) {
      for (let off = 0; off < chunk.length;) {
        const n = await conn.write(chunk.subarray(off));
        off += n;
        written += n;
      }
    }
  })();
  // Wait until the writer stops making progress, then check what the server
  // took from its socket: what we wrote minus what the kernel still holds
  // (our send queue, its receive queue: /proc/net/tcp). Reading pauses once
  // JS holds more than 1 MiB unconsumed (BODY_HIGH_WATER, docs/architecture.md
  // section 13). A body's receive buffer is at most 256 KiB (rust/src/
  // manager.rs), so the read that crossed the threshold added at most that,
  // and the buffer can hold at most that much more: taken <= 1.5 MiB of a
  // 64 MiB upload (observed: 1.03-1.19 MiB).
  await untilStalled(() => written, () => written >= total);
  const taken = written - inFlight(client, srv.port);
  assert.ok(written < total, `the server read all ${total} bytes without anyone consuming them`);
  assert.ok(taken <= (1 << 20) + 2 * 256 * 1024, `the server took ${taken >> 10} KiB of a body nobody read`);
  release.resolve();
  await writer;
  const r = await readResponses(conn, { responses: 1 });
  conn.close();
  assert.equal(r.responses[0].text, "ok");
  assert.equal(received, total);
});

test("streamed bodies: over maxBodySize mid-stream fails the body and answers 413", async () => {
  const failure = Promise.withResolvers<unknown>();
  await using srv = streamingServer(async (ev) => {
    try {
      for await (const _ of ev.bodyChunks()) { /* consume */ }
      failure.resolve("completed");
    } catch (e) {
      failure.resolve(e);
    }
  }, { maxBodySize: 1 << 20 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: srv.port });
  await writeAll(conn, enc.encode("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
  const piece = pattern(100 * 1024);
  const chunk = new Uint8Array([...enc.encode(`${piece.length.toString(16)}\r\n`), ...piece, 13, 10]);
  for (let i = 0; i < 12; i++) await writeAll(conn, chunk).catch(() => {});
  const r = await readResponses(conn);
  conn.close();
  assert.equal(r.responses[0]?.status, 413);
  const e = await failure.promise;
  assert.ok(e instanceof MgnetError && /413/.test(e.message), String(e));
});

test("streamed bodies: answering before reading skips 100 Continue and closes after the answer", async () => {
  using tmp = tempDir();
  Deno.writeFileSync(`${tmp.dir}/big.bin`, pattern(4 << 20));
  await using srv = streamingServer((ev) => ev.reply(403, "not you"));
  const out = await new Deno.Command("curl", {
    args: [
      "-s",
      "-i",
      "-H",
      "expect: 100-continue",
      "--data-binary",
      `@${tmp.dir}/big.bin`,
      `http://127.0.0.1:${srv.port}/`,
    ],
    env: toolEnv,
  }).output();
  const text = dec.decode(out.stdout);
  assert.ok(!text.includes("100 Continue"), text.slice(0, 200));
  assert.match(text, /^HTTP\/1\.1 403 Forbidden\r\n/);
  assert.match(text, /connection: close\r\n/);
  assert.ok(text.endsWith("not you"));
});

test("serve(): with streamBodiesOver, req.body streams and req.text() still works", async () => {
  await using server = mgServe(
    { port: 0, hostname: "127.0.0.1", onListen: false, streamBodiesOver: 1024 },
    async (req) => {
      if (new URL(req.url).pathname === "/text") return new Response(String((await req.text()).length));
      let n = 0;
      for await (const c of req.body!) n += c.length;
      return new Response(String(n));
    },
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  assert.equal(
    await (await fetch(`${base}/`, { method: "POST", body: pattern(5 << 20) })).text(),
    String(5 << 20),
  );
  assert.equal(
    await (await fetch(`${base}/text`, { method: "POST", body: "x".repeat(5000) })).text(),
    "5000",
  );
});
