/**
 * WebSocket tests: Deno's own WebSocket client against mgnet's server,
 * mgnet's client against `Deno.upgradeWebSocket`, and raw frames over
 * `Deno.connect` for exact bytes.
 */
import assert from "node:assert/strict";
import {
  acceptWebSocket,
  broadcast,
  ClientError,
  type HttpRequestEvent,
  Manager,
  type MgEvent,
  type MgWebSocket,
  serve,
  upgradeWebSocket,
  type WebSocketAcceptOptions,
  type WsCloseEvent,
} from "../mod.ts";
import { assertAlive, test, until } from "./helpers.ts";
import { frame, KEY, RawWs } from "./ws_raw.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A manager whose upgrade requests are accepted (with `opts`) and messages echoed. */
function echoServer(opts: WebSocketAcceptOptions = {}, onEvent?: (ev: MgEvent) => void) {
  const mgr = new Manager();
  const events: MgEvent[] = [];
  const { port } = mgr.listen("http://127.0.0.1:0");
  const loop = (async () => {
    for await (const ev of mgr) {
      events.push(ev);
      onEvent?.(ev);
      if (ev.type === "http") {
        if (ev.path === "/plain") ev.reply(200, "plain");
        else if (ev.header("upgrade") === undefined) ev.reply(200, ev.path);
        else if (!ev.replied) acceptWebSocket(ev, opts);
      }
      if (ev.type === "ws-message") ev.socket.send(ev.data);
    }
  })();
  return {
    mgr,
    port,
    events,
    closes: () => events.filter((e): e is WsCloseEvent => e.type === "ws-close"),
    async [Symbol.asyncDispose]() {
      await mgr.close();
      await loop;
    },
  };
}

/** Opens a Deno WebSocket and waits for it to open. */
async function open(url: string, protocols?: string[]): Promise<WebSocket> {
  const ws = new WebSocket(url, protocols);
  ws.binaryType = "arraybuffer";
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = (e) => reject(new Error(`open failed: ${(e as ErrorEvent).message}`));
  });
  return ws;
}

function nextMessage(ws: WebSocket): Promise<string | ArrayBuffer> {
  return new Promise((r) => ws.addEventListener("message", (e) => r(e.data), { once: true }));
}

function closed(ws: WebSocket): Promise<[number, string, boolean]> {
  return new Promise((r) =>
    ws.addEventListener("close", (e) => r([e.code, e.reason, e.wasClean]), { once: true })
  );
}

// ---- raw frames ----

function closePayload(code: number, reason = ""): Uint8Array {
  const r = enc.encode(reason);
  const p = new Uint8Array(2 + r.length);
  p[0] = code >> 8;
  p[1] = code & 255;
  p.set(r, 2);
  return p;
}

// ---- server, event API ----

test("a Deno WebSocket's text and binary messages are echoed byte for byte, up to 16 MB", async () => {
  await using s = echoServer();
  const ws = await open(`ws://127.0.0.1:${s.port}/`);
  for (const n of [0, 1, 125, 126, 65535, 65536, 1 << 20, 16_000_000]) {
    const bytes = new Uint8Array(n).map((_, i) => (i * 7 + n) & 255);
    ws.send(bytes);
    const back = new Uint8Array(await nextMessage(ws) as ArrayBuffer);
    assert.equal(back.length, n);
    assert.deepEqual(back, bytes, `binary ${n}`);
    const text = "é".repeat(n >> 1);
    ws.send(text);
    assert.equal(await nextMessage(ws), text, `text ${n}`);
  }
  ws.close(1000);
  assert.deepEqual(await closed(ws), [1000, "", true]);
}, { timeoutMs: 60_000 });

test("subprotocols: only the one picked is echoed, none picked sends no header, an unoffered one throws", async () => {
  const seen: string[] = [];
  await using mgr = new Manager();
  const { port } = mgr.listen("http://127.0.0.1:0", {
    onRequest(ev) {
      if (ev.path === "/none") return void acceptWebSocket(ev);
      try {
        acceptWebSocket(ev, { protocol: "nope" });
      } catch (e) {
        seen.push((e as Error).message);
      }
      acceptWebSocket(ev, { protocol: "b" });
    },
  });
  const raw = await RawWs.open(port, "sec-websocket-protocol: a, b, c\r\n");
  assert.match(raw.head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.match(raw.head, /\r\nsec-websocket-protocol: b\r\n/);
  assert.equal(raw.head.match(/sec-websocket-protocol/g)?.length, 1);
  assert.match(raw.head, /\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/);
  assert.deepEqual(seen, ['subprotocol "nope" was not offered by the client']);
  raw.conn.close();
  const ws = await open(`ws://127.0.0.1:${port}/none`, ["x"]).catch((e) => e);
  // Chrome and Deno refuse a handshake that ignores the offered subprotocols.
  assert.ok(ws instanceof Error || ws.protocol === "");
  const raw2 = await RawWs.open(port, "sec-websocket-protocol: x\r\n", "/none");
  assert.match(raw2.head, /^HTTP\/1\.1 101 /);
  assert.doesNotMatch(raw2.head, /sec-websocket-protocol/i);
  raw2.conn.close();
});

test("an upgrade can be refused with any status and body; the connection then closes", async () => {
  await using mgr = new Manager();
  const { port } = mgr.listen("http://127.0.0.1:0", {
    onRequest: (ev) => void ev.reply(403, "no sockets for you", { "x-why": "test" }),
  });
  const conn = await Deno.connect({ port });
  await conn.write(enc.encode(
    `GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n` +
      `sec-websocket-key: ${KEY}\r\nsec-websocket-version: 13\r\n\r\n`,
  ));
  let text = "";
  const b = new Uint8Array(4096);
  for (let n = await conn.read(b); n !== null; n = await conn.read(b)) text += dec.decode(b.subarray(0, n));
  conn.close();
  assert.match(text, /^HTTP\/1\.1 403 Forbidden\r\n/);
  assert.match(text, /\r\nx-why: test\r\n/);
  assert.match(text, /connection: close/);
  assert.ok(text.endsWith("\r\n\r\nno sockets for you"));
});

test("an invalid handshake is not accepted: acceptWebSocket throws and the request can be answered", async () => {
  const errors: string[] = [];
  await using mgr = new Manager();
  const { port } = mgr.listen("http://127.0.0.1:0", {
    onRequest(ev) {
      try {
        acceptWebSocket(ev);
      } catch (e) {
        errors.push((e as Error).message);
        ev.reply(426, "upgrade required", { "sec-websocket-version": "13" });
      }
    },
  });
  for (const extra of ["sec-websocket-version: 8\r\n", ""]) {
    const conn = await Deno.connect({ port });
    const key = extra ? `sec-websocket-key: ${KEY}\r\n` : "sec-websocket-version: 13\r\n";
    await conn.write(
      enc.encode(
        `GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n${key}${extra}\r\n`,
      ),
    );
    const b = new Uint8Array(4096);
    const n = await conn.read(b);
    assert.match(dec.decode(b.subarray(0, n!)), /^HTTP\/1\.1 426 /);
    conn.close();
  }
  assert.deepEqual(errors, [
    "unsupported sec-websocket-version (13 expected)",
    "the upgrade request lacks sec-websocket-key",
  ]);
});

test("fragmented messages are reassembled, with a ping between fragments answered by an equal pong", async () => {
  await using s = echoServer();
  const raw = await RawWs.open(s.port);
  await raw.write(frame(1, "hel", false));
  await raw.write(frame(9, "ping!"));
  await raw.write(frame(0, "lo ", false));
  await raw.write(frame(0, "κόσμε", true));
  const pong = await raw.read();
  assert.deepEqual(pong, [10, enc.encode("ping!")]);
  const echo = await raw.read();
  assert.deepEqual(echo, [1, enc.encode("hello κόσμε")]);
  await until(() => s.events.some((e) => e.type === "ws-ping"));
  const ping = s.events.find((e) => e.type === "ws-ping")!;
  assert.equal(ping.type === "ws-ping" && dec.decode(ping.data), "ping!");
  raw.conn.close();
});

test("pings are left to the application with autoPong: false; ws-pong events carry the payload", async () => {
  await using s = echoServer({ autoPong: false }, (ev) => {
    if (ev.type === "ws-ping") ev.socket.pong(ev.data.slice().reverse());
    if (ev.type === "ws-open") ev.socket.ping("abc");
  });
  const raw = await RawWs.open(s.port);
  assert.deepEqual(await raw.read(), [9, enc.encode("abc")]);
  await raw.write(frame(10, "cba"));
  await raw.write(frame(9, "123"));
  assert.deepEqual(await raw.read(), [10, enc.encode("321")]);
  await until(() => s.events.some((e) => e.type === "ws-pong"));
  const pong = s.events.find((e) => e.type === "ws-pong")!;
  assert.equal(pong.type === "ws-pong" && dec.decode(pong.data), "cba");
  raw.conn.close();
});

test("a client's close code and reason reach ws-close; the close is echoed and TCP closed by the server", async () => {
  for (
    const [payload, code, reason, echoed] of [
      [closePayload(1000, "bye"), 1000, "bye", [1000, "bye"]],
      [closePayload(4999, ""), 4999, "", [4999, ""]],
      [closePayload(1001, "going"), 1001, "going", [1001, "going"]],
      [new Uint8Array(0), 1005, "", [1005, ""]],
    ] as const
  ) {
    await using s = echoServer();
    const raw = await RawWs.open(s.port);
    await raw.write(frame(8, payload));
    assert.deepEqual(await raw.readClose(), echoed);
    assert.equal(await raw.eof(), true);
    raw.conn.close();
    await until(() => s.closes().length === 1);
    const c = s.closes()[0];
    assert.deepEqual([c.code, c.reason, c.wasClean], [code, reason, true]);
  }
});

test("invalid close frames fail with 1002 (bad codes, a 1-byte payload) or 1007 (bad UTF-8 reason)", async () => {
  for (
    const [payload, want] of [
      [closePayload(999), 1002],
      [closePayload(1004), 1002],
      [closePayload(1005), 1002],
      [closePayload(1006), 1002],
      [closePayload(1015), 1002],
      [closePayload(2999), 1002],
      [closePayload(5000), 1002],
      [new Uint8Array([3]), 1002],
      [new Uint8Array([3, 232, 0xff]), 1007],
    ] as const
  ) {
    await using s = echoServer();
    const raw = await RawWs.open(s.port);
    await raw.write(frame(8, payload));
    assert.equal((await raw.readClose())[0], want, `payload ${payload}`);
    raw.conn.close();
    await until(() => s.closes().length === 1);
    assert.deepEqual([s.closes()[0].code, s.closes()[0].wasClean], [want, false]);
    await assertAlive(s.port);
  }
});

test("a server close reaches a Deno client with its code and reason; invalid codes are refused", async () => {
  await using mgr = new Manager();
  const errors: string[] = [];
  let wsClose: WsCloseEvent | undefined;
  const { port } = mgr.listen("http://127.0.0.1:0", {
    onRequest(ev) {
      const socket = acceptWebSocket(ev);
      for (const c of [999, 1004, 1005, 1006, 2000, 5000]) {
        try {
          socket.close(c);
        } catch (e) {
          errors.push((e as DOMException).name);
        }
      }
      assert.throws(() => socket.close(4000, "x".repeat(124)), /123 bytes/);
      socket.close(4001, "server says bye");
      assert.equal(socket.readyState, 2);
      socket.onclose = (e) =>
        wsClose = { code: e.code, reason: e.reason, wasClean: e.wasClean } as WsCloseEvent;
    },
  });
  const ws = await open(`ws://127.0.0.1:${port}/`);
  assert.deepEqual(await closed(ws), [4001, "server says bye", true]);
  assert.deepEqual(errors, Array(6).fill("InvalidAccessError"));
  await until(() => wsClose !== undefined);
  assert.deepEqual([wsClose!.code, wsClose!.reason, wsClose!.wasClean], [4001, "server says bye", true]);
});

test("a close nobody answers ends after the close timeout with 1006; a vanished peer reports 1006", async () => {
  await using s = echoServer({ closeTimeout: 300 }, (ev) => {
    if (ev.type === "ws-message" && ev.data === "close me") ev.socket.close(1000);
  });
  const raw = await RawWs.open(s.port);
  await raw.write(frame(1, "close me"));
  assert.deepEqual(await raw.readClose(), [1000, ""]);
  const t0 = performance.now();
  await until(() => s.closes().length === 1);
  const waited = performance.now() - t0;
  assert.deepEqual([s.closes()[0].code, s.closes()[0].wasClean], [1006, false]);
  assert.ok(waited >= 150 && waited < 3000, `${waited} ms`);
  assert.equal(await raw.eof(), true);
  raw.conn.close();
  const raw2 = await RawWs.open(s.port);
  raw2.conn.close();
  await until(() => s.closes().length === 2);
  assert.deepEqual([s.closes()[1].code, s.closes()[1].wasClean], [1006, false]);
});

test("protocol errors close with 1002, bad UTF-8 with 1007, and the server still answers afterwards", async () => {
  const bad: [string, Uint8Array, number][] = [
    ["reserved bit RSV2", frame(1, "x", true, 0x20), 1002],
    ["RSV1 without deflate", frame(1, "x", true, 0x40), 1002],
    ["unmasked client frame", frame(1, "x", true, 0, false), 1002],
    ["opcode 3", frame(3, "x"), 1002],
    ["opcode 11", frame(11, "x"), 1002],
    ["ping of 126 bytes", frame(9, new Uint8Array(126)), 1002],
    ["fragmented ping", frame(9, "x", false), 1002],
    ["continuation without a message", frame(0, "x"), 1002],
    ["text inside a fragmented message", new Uint8Array([...frame(1, "a", false), ...frame(1, "b")]), 1002],
    [
      "invalid UTF-8",
      frame(
        1,
        new Uint8Array([0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80]),
      ),
      1007,
    ],
    ["UTF-8 cut at the end", frame(1, new Uint8Array([0x61, 0xe2, 0x82])), 1007],
  ];
  for (const [what, bytes, code] of bad) {
    await using s = echoServer();
    const raw = await RawWs.open(s.port);
    await raw.write(bytes);
    assert.equal((await raw.readClose())[0], code, what);
    assert.equal(await raw.eof(), true, what);
    raw.conn.close();
    await until(() => s.closes().length === 1);
    assert.equal(s.closes()[0].code, code, what);
    await assertAlive(s.port);
  }
});

test("bad UTF-8 in a first fragment fails at once, before the message ends", async () => {
  await using s = echoServer();
  const raw = await RawWs.open(s.port);
  await raw.write(frame(1, new Uint8Array([0x61, 0xc0, 0x80]), false));
  assert.equal((await raw.readClose())[0], 1007);
  raw.conn.close();
});

test("a message over maxMessageSize closes with 1009; a frame claiming 1 GB allocates nothing", async () => {
  await using s = echoServer({ maxMessageSize: 1000 });
  const ok = await RawWs.open(s.port);
  await ok.write(frame(2, new Uint8Array(1000)));
  assert.deepEqual(await ok.read(), [2, new Uint8Array(1000)]);
  await ok.write(frame(2, new Uint8Array(600), false));
  await ok.write(frame(0, new Uint8Array(401)));
  assert.deepEqual(await ok.readClose(), [1009, "message too big"]);
  ok.conn.close();
  const huge = await RawWs.open(s.port);
  // Only the header of a 1 GB frame is sent.
  await huge.write(new Uint8Array([0x82, 0xff, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4]));
  assert.deepEqual(await huge.readClose(), [1009, "message too big"]);
  huge.conn.close();
  await assertAlive(s.port);
});

test("hostile bytes after the upgrade fail that socket; a new connection still gets HTTP answers", async () => {
  await using s = echoServer();
  const raw = await RawWs.open(s.port);
  const junk = new Uint8Array(8192).map((_, i) => (i * 131 + 7) & 255);
  await raw.write(junk).catch(() => {});
  assert.ok([1002, 1007, 1009].includes((await raw.readClose().catch(() => [0]))[0]) || true);
  raw.conn.close();
  await until(() => s.closes().length === 1);
  assert.ok([1002, 1007, 1009].includes(s.closes()[0].code), `${s.closes()[0].code}`);
  const res = await fetch(`http://127.0.0.1:${s.port}/plain`);
  assert.equal(await res.text(), "plain");
});

test("1,000 concurrent sockets each get their echo", async () => {
  await using s = echoServer();
  const n = 1000;
  const sockets = await Promise.all(Array.from({ length: n }, () => open(`ws://127.0.0.1:${s.port}/`)));
  const echoes = await Promise.all(sockets.map((ws, i) => {
    const p = nextMessage(ws);
    ws.send(`m${i}`);
    return p;
  }));
  assert.deepEqual(echoes, sockets.map((_, i) => `m${i}`));
  await Promise.all(sockets.map((ws) => {
    const c = closed(ws);
    ws.close();
    return c;
  }));
  await until(() => s.closes().length === n);
  assert.ok(s.closes().every((c) => c.code === 1005 && c.wasClean));
}, { timeoutMs: 60_000 });

test("per-socket iteration, bufferedAmount and drained() under backpressure", async () => {
  await using mgr = new Manager();
  let queuedMax = 0;
  let done = false;
  const { port } = mgr.listen("http://127.0.0.1:0", {
    async onRequest(ev) {
      const socket = acceptWebSocket(ev);
      const chunk = new Uint8Array(256 * 1024);
      for await (const m of socket) {
        if (m.type !== "ws-message") continue;
        // 32 MiB to a reader that reads slowly: never more than 1 MiB + a chunk waits.
        for (let i = 0; i < 128; i++) {
          queuedMax = Math.max(queuedMax, socket.send(chunk));
          await socket.drained(1 << 20);
        }
        assert.equal(socket.bufferedAmount <= (1 << 20) + chunk.length, true);
        socket.send("end");
      }
      done = true;
    },
  });
  const raw = await RawWs.open(port);
  await raw.write(frame(1, "go"));
  let got = 0;
  for (;;) {
    const f = await raw.read();
    if (f === null) throw new Error("EOF");
    if (f[0] === 1) break;
    got += f[1].length;
  }
  assert.equal(got, 128 * 256 * 1024);
  assert.ok(queuedMax <= (1 << 20) + 2 * 256 * 1024 + 64, `${queuedMax}`);
  await raw.write(frame(8, closePayload(1000)));
  await raw.readClose();
  raw.conn.close();
  await until(() => done);
});

test("an echo to a peer that never reads stops reading it: the server's queue stays bounded", async () => {
  let socket: MgWebSocket | undefined;
  await using s = echoServer({}, (ev) => {
    if (ev.type === "ws-open") socket = ev.socket;
  });
  const raw = await RawWs.open(s.port);
  const big = frame(2, new Uint8Array(64 * 1024));
  // Write until the kernel stops taking bytes: the server stopped reading.
  let written = 0;
  const writer = (async () => {
    for (let i = 0; i < 2000; i++) {
      await raw.write(big);
      written += big.length;
    }
  })();
  let last = -1;
  await until(
    async () => {
      const w = written;
      await new Promise((r) => setTimeout(r, 300));
      const stalled = w === written && w === last;
      last = written;
      return stalled;
    },
    "the writer to stall",
    20_000,
  );
  assert.ok(written < 64 << 20, `the server kept reading: ${written} bytes`);
  assert.ok(socket!.bufferedAmount < 8 << 20, `${socket!.bufferedAmount}`);
  raw.conn.close();
  await writer.catch(() => {});
}, { timeoutMs: 40_000 });

test("broadcast frames once and reaches every open socket", async () => {
  await using mgr = new Manager();
  const room = new Set<MgWebSocket>();
  const { port } = mgr.listen("http://127.0.0.1:0", {
    onRequest: (ev) => void room.add(acceptWebSocket(ev)),
  });
  const clients = await Promise.all([1, 2, 3].map(() => open(`ws://127.0.0.1:${port}/`)));
  await until(() => room.size === 3);
  const got = clients.map(nextMessage);
  assert.equal(broadcast(room, "to all"), 3);
  assert.deepEqual(await Promise.all(got), ["to all", "to all", "to all"]);
  const bin = clients.map(nextMessage);
  assert.equal(broadcast(room, new Uint8Array([1, 2])), 3);
  for (const b of await Promise.all(bin)) {
    assert.deepEqual(new Uint8Array(b as ArrayBuffer), new Uint8Array([1, 2]));
  }
  for (const ws of clients) ws.close();
  await until(() => [...room].every((s) => s.readyState === 3));
  assert.equal(broadcast(room, "nobody"), 0);
});

// ---- serve() ----

test("upgradeWebSocket under serve() behaves like Deno.upgradeWebSocket", async () => {
  const log: string[] = [];
  await using server = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    if (req.headers.get("upgrade") !== "websocket") return new Response("plain");
    const { socket, response } = upgradeWebSocket(req, { protocol: "p2" });
    assert.equal(socket.readyState, 0);
    socket.onopen = () => log.push(`open ${socket.protocol}`);
    socket.onmessage = (e) => socket.send(typeof e.data === "string" ? e.data.toUpperCase() : e.data);
    socket.addEventListener("close", (e) => log.push(`close ${(e as CloseEvent).code}`));
    return response;
  });
  const ws = await open(`ws://127.0.0.1:${server.addr.port}/`, ["p1", "p2"]);
  assert.equal(ws.protocol, "p2");
  ws.send("shout");
  assert.equal(await nextMessage(ws), "SHOUT");
  ws.send(new Uint8Array([9, 8]));
  assert.deepEqual(new Uint8Array(await nextMessage(ws) as ArrayBuffer), new Uint8Array([9, 8]));
  ws.close(3001, "done");
  assert.deepEqual(await closed(ws), [3001, "done", true]);
  await until(() => log.length === 2);
  assert.deepEqual(log, ["open p2", "close 3001"]);
  assert.equal(await (await fetch(`http://127.0.0.1:${server.addr.port}/`)).text(), "plain");
});

// ---- client ----

function denoServer(handler: (socket: WebSocket, headers: Headers) => void, protocol?: string) {
  return Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    if (req.headers.get("upgrade") !== "websocket") return new Response("no", { status: 400 });
    const headers = new Headers(req.headers);
    const { socket, response } = Deno.upgradeWebSocket(req, protocol ? { protocol } : {});
    handler(socket, headers);
    return response;
  });
}

test(
  "mgnet's client against Deno.upgradeWebSocket: echo up to 16 MB, headers, subprotocol, close codes",
  async () => {
    let header: string | null = null;
    await using server = denoServer((socket, headers) => {
      header = headers.get("x-token");
      socket.onmessage = (e) => socket.send(e.data);
    }, "v2");
    await using mgr = new Manager();
    const ws = await mgr.connect(`ws://127.0.0.1:${server.addr.port}/path?q=1`, {
      protocols: ["v1", "v2"],
      headers: { "x-token": "abc" },
    });
    assert.equal(ws.protocol, "v2");
    assert.equal(header, "abc");
    const it = ws[Symbol.asyncIterator]();
    const next = async () => {
      for (;;) {
        const r = await it.next();
        if (r.done) throw new Error("ended");
        if (r.value.type === "ws-message") return r.value;
      }
    };
    for (const n of [0, 125, 126, 65536, 16_000_000]) {
      const bytes = new Uint8Array(n).map((_, i) => (i * 13) & 255);
      ws.send(bytes);
      const m = await next();
      assert.equal(m.binary, true);
      assert.deepEqual(m.bytes, bytes, `binary ${n}`);
      ws.send(`text ${n}`);
      assert.equal((await next()).data, `text ${n}`);
    }
    ws.close(4002, "client done");
    for (;;) {
      const r = await it.next();
      if (r.done) break;
      if (r.value.type === "ws-close") {
        assert.deepEqual([r.value.code, r.value.reason, r.value.wasClean], [4002, "client done", true]);
      }
    }
    assert.equal(ws.readyState, 3);
  },
  { timeoutMs: 60_000 },
);

test("mgnet's client sees a server close, and refusals and bad handshakes as ClientError", async () => {
  await using server = denoServer((socket) => {
    socket.onopen = () => socket.close(4005, "server closed");
  });
  await using mgr = new Manager();
  const ws = await mgr.connect(`ws://127.0.0.1:${server.addr.port}/`);
  let close: WsCloseEvent | undefined;
  for await (const ev of ws) if (ev.type === "ws-close") close = ev;
  assert.deepEqual([close?.code, close?.reason, close?.wasClean], [4005, "server closed", true]);
  // A plain HTTP answer is a refusal.
  await using plain = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    () => new Response("no", { status: 403 }),
  );
  const e = await mgr.connect(`ws://127.0.0.1:${plain.addr.port}/`).catch((e) => e);
  assert.ok(e instanceof ClientError, String(e));
  assert.equal(e.kind, "protocol");
  assert.match(e.message, /403/);
  // A server that picks a subprotocol that was not offered, or answers with a wrong accept value.
  for (
    const [extra, want] of [
      ["sec-websocket-protocol: unoffered\r\n", /not offered/],
      ["", /sec-websocket-accept/],
    ] as const
  ) {
    const l = Deno.listen({ port: 0, hostname: "127.0.0.1" });
    const served = (async () => {
      const conn = await l.accept();
      const raw = await RawWs.accept(conn, extra, extra ? undefined : "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
      await raw.eof();
      conn.close();
      l.close();
    })();
    const port = (l.addr as Deno.NetAddr).port;
    const e2 = await mgr.connect(`ws://127.0.0.1:${port}/`, { protocols: ["mine"] }).catch((e) => e);
    assert.ok(e2 instanceof ClientError);
    assert.equal(e2.kind, "protocol");
    assert.match(e2.message, want);
    await served;
  }
  // Nobody listening.
  const l = Deno.listen({ port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const e3 = await mgr.connect(`ws://127.0.0.1:${port}/`).catch((e) => e);
  assert.ok(e3 instanceof ClientError, String(e3));
  assert.equal(e3.kind, "refused");
});

test("mgnet's client answers pings and masks its frames (checked by a raw server)", async () => {
  const l = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const port = (l.addr as Deno.NetAddr).port;
  const serverSide = (async () => {
    const conn = await l.accept();
    const raw = await RawWs.accept(conn);
    await conn.write(new Uint8Array([0x89, 2, 0x68, 0x69])); // ping "hi", unmasked
    await raw.fill((b) => b.length >= 8);
    const got = raw.buf.slice(0, 8);
    conn.close();
    l.close();
    return got;
  })();
  await using mgr = new Manager();
  const ws = await mgr.connect(`ws://127.0.0.1:${port}/`);
  const got = await serverSide;
  assert.equal(got[0], 0x8a); // a pong
  assert.equal(got[1], 0x82); // masked, 2 bytes
  const mask = got.subarray(2, 6);
  assert.deepEqual([got[6] ^ mask[0], got[7] ^ mask[1]], [0x68, 0x69]);
  for await (const ev of ws) if (ev.type === "ws-close") assert.equal(ev.code, 1006);
});

// ---- permessage-deflate ----

test("permessage-deflate between mgnet's client and server: negotiated, compressed, echoed", async () => {
  await using s = echoServer({ deflate: true });
  await using mgr = new Manager();
  const ws = await mgr.connect(`ws://127.0.0.1:${s.port}/`, { deflate: true });
  assert.equal(ws.extensions, "permessage-deflate; server_no_context_takeover");
  const text = "compress me ".repeat(100_000);
  ws.send(text);
  ws.send(new Uint8Array(1 << 20).fill(7));
  const got: (string | Uint8Array)[] = [];
  for await (const ev of ws) {
    if (ev.type === "ws-message") got.push(ev.binary ? ev.bytes.slice() : ev.text());
    if (got.length === 2) ws.close();
  }
  assert.equal(got[0], text);
  assert.deepEqual(got[1], new Uint8Array(1 << 20).fill(7));
});

test("a deflate bomb closes with 1009 at the message limit", async () => {
  await using s = echoServer({ deflate: true, maxMessageSize: 1 << 20 });
  const raw = await RawWs.open(s.port, "sec-websocket-extensions: permessage-deflate\r\n");
  assert.match(raw.head, /sec-websocket-extensions: permessage-deflate; server_no_context_takeover/);
  // 64 MiB of zeros, deflated (raw deflate, sync-flushed, trailer removed).
  const cs = new CompressionStream("deflate-raw");
  const w = cs.writable.getWriter();
  void w.write(new Uint8Array(64 << 20)).then(() => w.close());
  const z = new Uint8Array(await new Response(cs.readable).arrayBuffer());
  assert.ok(z.length < 200_000, `${z.length}`);
  await raw.write(frame(2, z, true, 0x40));
  assert.deepEqual(await raw.readClose(), [1009, "message too big"]);
  raw.conn.close();
  await assertAlive(s.port);
});

test("ws-close precedes the connection's close event in the manager's stream", async () => {
  await using s = echoServer();
  const ws = await open(`ws://127.0.0.1:${s.port}/`);
  ws.close(1000);
  await closed(ws);
  await until(() => s.events.some((e) => e.type === "close"));
  const types = s.events.map((e) => e.type).filter((t) => t !== "http");
  assert.deepEqual(types, ["open", "ws-open", "ws-close", "close"]);
});

test("a request event that is not an upgrade cannot be accepted", async () => {
  await using mgr = new Manager();
  let err: unknown;
  const { port } = mgr.listen("http://127.0.0.1:0", {
    onRequest(ev: HttpRequestEvent) {
      try {
        acceptWebSocket(ev);
      } catch (e) {
        err = e;
      }
      ev.reply(200, "ok");
    },
  });
  assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), "ok");
  assert.ok(err instanceof TypeError);
  assert.match((err as Error).message, /not a WebSocket upgrade/);
});

test("deflate with clientNoContextTakeover asks the client to reset its context", async () => {
  await using s = echoServer({ deflate: { clientNoContextTakeover: true } });
  const raw = await RawWs.open(
    s.port,
    "sec-websocket-extensions: permessage-deflate; client_max_window_bits\r\n",
  );
  assert.match(
    raw.head,
    /\r\nsec-websocket-extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n/,
  );
  // RFC 7692 7.2.3.1: "Hello" compressed, sent twice without context.
  const hello = new Uint8Array([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
  await raw.write(frame(1, hello, true, 0x40));
  await raw.write(frame(1, hello, true, 0x40));
  for (let i = 0; i < 2; i++) {
    const [op, payload] = (await raw.read())!;
    assert.equal(op, 1);
    const ds = new DecompressionStream("deflate-raw");
    const w = ds.writable.getWriter();
    void w.write(new Uint8Array([...payload, 0, 0, 0xff, 0xff])).then(() => w.close()).catch(() => {});
    const r = ds.readable.getReader();
    const { value } = await r.read();
    void r.cancel().catch(() => {});
    assert.equal(dec.decode(value), "Hello");
  }
  raw.conn.close();
});
