/**
 * WebSocket keep-alive (`pingInterval`/`pongTimeout`, `upgradeWebSocket`'s
 * `idleTimeout` in seconds) and the send buffer limit (`maxBufferedAmount`),
 * with Deno's own WebSocket and `Deno.upgradeWebSocket` as peers and raw
 * frames over `Deno.connect`/`Deno.listen` for exact bytes. Intervals are
 * 0.2 s; every wait polls with a deadline.
 */
import assert from "node:assert/strict";
import {
  acceptWebSocket,
  Manager,
  type MgEvent,
  type MgWebSocket,
  serve,
  upgradeWebSocket,
  type WebSocketAcceptOptions,
  type WsCloseEvent,
} from "../mod.ts";
import { test, until, writeAll } from "./helpers.ts";
import { closeOf, frame, KEY, RawWs } from "./ws_raw.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const REASON = "No response from ping frame.";

/** A manager accepting every upgrade with `opts`, echoing messages; its events are kept. */
function server(opts: WebSocketAcceptOptions) {
  const mgr = new Manager();
  const events: MgEvent[] = [];
  const { port } = mgr.listen("http://127.0.0.1:0");
  const loop = (async () => {
    for await (const ev of mgr) {
      events.push(ev);
      if (ev.type === "http") acceptWebSocket(ev, opts);
      if (ev.type === "ws-message") ev.socket.send(ev.data);
    }
  })();
  return {
    port,
    events,
    count: (type: MgEvent["type"]) => events.filter((e) => e.type === type).length,
    closes: () => events.filter((e): e is WsCloseEvent => e.type === "ws-close"),
    async [Symbol.asyncDispose]() {
      await mgr.close();
      await loop;
    },
  };
}

/** Upgrades a raw client connection (the answer must be a 101). */
async function rawClient(port: number, path = "/"): Promise<RawWs> {
  const f = await RawWs.open(port, "", path);
  assert.match(f.head, /^HTTP\/1\.1 101 /);
  return f;
}

test("pingInterval: a raw peer that answers no ping gets one ping, then close 1001, then EOF", async () => {
  await using s = server({ pingInterval: 200 });
  const t0 = performance.now();
  const f = await rawClient(s.port);
  const frames = await f.readToEof();
  const took = performance.now() - t0;
  assert.deepEqual(frames.map(([op]) => op), [9, 8], "a ping, then a close frame");
  assert.equal(frames[0][1].length, 0, "an empty ping");
  assert.deepEqual(closeOf(frames[1][1]), [1001, REASON]);
  // 200 ms to the ping, 200 ms more to the close.
  assert.ok(took >= 380 && took < 5000, `closed after ${took.toFixed(0)} ms`);
  f.conn.close();
  await until(() => s.closes().length === 1, "ws-close");
  const c = s.closes()[0];
  assert.deepEqual([c.code, c.reason, c.wasClean], [1001, REASON, false]);
  await until(() => s.count("close") === 1, "the connection's close");
});

test("pingInterval: a raw peer that answers each ping with a pong stays open across five intervals", async () => {
  await using s = server({ pingInterval: 200, pongTimeout: 200 });
  const f = await rawClient(s.port);
  for (let pings = 0; pings < 5;) {
    const fr = await f.read();
    assert.ok(fr !== null, "EOF: the server closed a socket that answers its pings");
    assert.equal(fr[0], 9, `a ping, not opcode ${fr[0]}`);
    await writeAll(f.conn, frame(10, fr[1]));
    pings++;
  }
  await until(() => s.count("ws-pong") === 5, "five ws-pong events");
  assert.equal(s.closes().length, 0);
  await writeAll(f.conn, frame(8, new Uint8Array([0x03, 0xe8])));
  const frames = await f.readToEof();
  assert.deepEqual(closeOf(frames.at(-1)![1]), [1000, ""]);
  await until(() => s.closes().length === 1, "ws-close");
  assert.deepEqual([s.closes()[0].code, s.closes()[0].wasClean], [1000, true]);
  f.conn.close();
});

test("pingInterval: any frame counts as traffic; a peer chatting faster than the interval gets no ping", async () => {
  // 0.5 s here: a pause of this process longer than that would look like silence.
  await using s = server({ pingInterval: 500 });
  const f = await rawClient(s.port);
  const t0 = performance.now();
  let echoes = 0;
  while (performance.now() - t0 < 1500) {
    await writeAll(f.conn, frame(1, "hi"));
    const fr = await f.read();
    assert.ok(fr !== null);
    assert.deepEqual([fr[0], dec.decode(fr[1])], [1, "hi"], "an echo, not a ping");
    echoes++;
  }
  assert.ok(echoes > 4);
  // Then silence: a ping comes, and a text message (not a pong) answers it.
  const ping = await f.read();
  assert.equal(ping?.[0], 9);
  await writeAll(f.conn, frame(1, "I'm here"));
  assert.deepEqual((await f.read())?.map((x) => typeof x === "number" ? x : dec.decode(x)), [1, "I'm here"]);
  assert.equal((await f.read())?.[0], 9, "the next ping, a full interval later");
  assert.equal(s.closes().length, 0);
  f.conn.close();
  await until(() => s.closes().length === 1, "ws-close");
  assert.equal(s.closes()[0].code, 1006);
});

test("pingInterval: Deno's WebSocket answers the pings and stays open across five intervals", async () => {
  await using s = server({ pingInterval: 200 });
  const ws = new WebSocket(`ws://127.0.0.1:${s.port}/`);
  await new Promise((r) => ws.onopen = r);
  await until(() => s.count("ws-pong") >= 5, "five pongs", 10_000);
  assert.equal(s.closes().length, 0);
  assert.equal(ws.readyState, WebSocket.OPEN);
  const echoed = new Promise((r) => ws.onmessage = (e) => r(e.data));
  ws.send("alive");
  assert.equal(await echoed, "alive");
  const closed = new Promise<CloseEvent>((r) => ws.onclose = r);
  ws.close(1000);
  assert.equal((await closed).code, 1000);
});

test(
  "pingInterval: a slow reader that answers pings stays open while the server, over 1 MiB queued, does not read it",
  {
    timeoutMs: 60_000,
  },
  async () => {
    const total = 12 << 20;
    const chunk = new Uint8Array(64 * 1024);
    await using s = server({ pingInterval: 200, maxBufferedAmount: Infinity });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
    await writeAll(
      conn,
      enc.encode(
        `GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n` +
          `sec-websocket-key: ${KEY}\r\nsec-websocket-version: 13\r\n\r\n`,
      ),
    );
    await until(() => s.count("ws-open") === 1, "ws-open");
    const socket = s.events.find((e) => e.type === "ws-open")!.socket;
    for (let sent = 0; sent < total; sent += chunk.length) socket.send(chunk);
    // Read 64 KiB every 10 ms for the first 6 MiB (about 1 s, five ping intervals), then
    // at full speed, answering each ping, and on until a second ping came. The first
    // ping waits behind the data; the server restarts its wait while the peer's kernel
    // keeps acknowledging more of it. (Reading slowly to the end would leave up to a
    // receive buffer of data, all acknowledged, ahead of the last ping: nothing shows
    // the server that it is being read, and a 0.2 s pongTimeout can pass.)
    let buf = new Uint8Array(0);
    let payload = 0, pings = 0, headDone = false;
    const b = new Uint8Array(64 * 1024);
    while (payload < total || pings < 2) {
      const n = await conn.read(b);
      assert.ok(n !== null, `EOF after ${payload} bytes: the server closed a live slow reader`);
      const nb = new Uint8Array(buf.length + n);
      nb.set(buf);
      nb.set(b.subarray(0, n), buf.length);
      buf = nb;
      if (!headDone) {
        const end = dec.decode(buf.subarray(0, Math.min(buf.length, 512))).indexOf("\r\n\r\n");
        if (end < 0) continue;
        buf = buf.subarray(end + 4);
        headDone = true;
      }
      for (;;) { // whole frames
        if (buf.length < 2) break;
        const l = buf[1] & 127;
        const hl = l === 126 ? 4 : l === 127 ? 10 : 2;
        if (buf.length < hl) break;
        const len = l === 126
          ? (buf[2] << 8) | buf[3]
          : l === 127
          ? Number(new DataView(buf.buffer, buf.byteOffset).getBigUint64(2))
          : l;
        if (buf.length < hl + len) break;
        const op = buf[0] & 15;
        assert.notEqual(op, 8, `a close frame after ${payload} bytes`);
        if (op === 9) {
          pings++;
          await writeAll(conn, frame(10));
        } else payload += len;
        buf = buf.subarray(hl + len);
      }
      if (payload < 6 << 20) await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(payload, total);
    await until(() => s.count("ws-pong") >= 2, "the pongs");
    assert.equal(s.closes().length, 0);
    conn.close();
    await until(() => s.closes().length === 1, "ws-close");
  },
);

test("upgradeWebSocket idleTimeout (s): a silent raw peer sees ping then close 1001; onerror, then onclose 1001", async () => {
  const order: string[] = [];
  let close: CloseEvent | undefined;
  await using srv = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    const { socket, response } = upgradeWebSocket(req, { idleTimeout: 0.4 });
    socket.onerror = () => order.push("error");
    socket.onclose = (e) => {
      order.push("close");
      close = e;
    };
    return response;
  });
  const t0 = performance.now();
  const f = await rawClient(srv.addr.port);
  const frames = await f.readToEof();
  const took = performance.now() - t0;
  assert.deepEqual(frames.map(([op]) => op), [9, 8]);
  assert.deepEqual(closeOf(frames[1][1]), [1001, REASON]);
  // idleTimeout 0.4 s: the ping after 0.2 s, the close 0.2 s later (Deno's halves).
  assert.ok(took >= 380 && took < 5000, `closed after ${took.toFixed(0)} ms`);
  await until(() => close !== undefined, "onclose");
  assert.deepEqual(order, ["error", "close"]);
  assert.deepEqual([close!.code, close!.reason, close!.wasClean], [1001, REASON, false]);
  f.conn.close();
});

test("upgradeWebSocket idleTimeout: Deno's WebSocket stays open across several intervals; 0 turns it off", async () => {
  const sockets: MgWebSocket[] = [];
  await using srv = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    const off = new URL(req.url).pathname === "/off";
    const { socket, response } = upgradeWebSocket(req, { idleTimeout: off ? 0 : 0.4 });
    socket.onmessage = (e) => socket.send(e.data);
    sockets.push(socket);
    return response;
  });
  const ws = new WebSocket(`ws://127.0.0.1:${srv.addr.port}/`);
  await new Promise((r) => ws.onopen = r);
  // A raw peer on /off is never pinged: it sees nothing at all in 1 s.
  const f = await rawClient(srv.addr.port, "/off");
  const conn = f.conn as Deno.TcpConn;
  const t0 = performance.now();
  const quiet = f.read();
  let raced: unknown = "nothing";
  void quiet.then((v) => raced = v);
  // Five ping intervals of 0.2 s.
  await until(() => performance.now() - t0 > 1000, "1 s", 5000);
  assert.equal(raced, "nothing", "the raw peer on /off got a frame");
  assert.equal(ws.readyState, WebSocket.OPEN);
  assert.ok(sockets.every((s) => s.readyState === s.OPEN));
  const echoed = new Promise((r) => ws.onmessage = (e) => r(e.data));
  ws.send("still here");
  assert.equal(await echoed, "still here");
  const closed = new Promise<CloseEvent>((r) => ws.onclose = r);
  ws.close();
  await closed;
  conn.close();
  await quiet.catch(() => {});
});

test("mgnet's client pingInterval: Deno.upgradeWebSocket answers and it stays open; a server that never answers is closed with 1001", async () => {
  // Deno's own server answers pings.
  const ac = new AbortController();
  const deno = Deno.serve({ port: 0, hostname: "127.0.0.1", signal: ac.signal, onListen() {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onmessage = (e) => socket.send(e.data);
    return response;
  });
  // A raw server that completes the handshake and then ignores everything.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const rawConns: RawWs[] = [];
  const rawServer = (async () => {
    for await (const conn of listener) rawConns.push(await RawWs.accept(conn));
  })();
  try {
    await using mgr = new Manager();
    const alive = await mgr.connect(`ws://127.0.0.1:${deno.addr.port}/`, { pingInterval: 200 });
    const silent = await mgr.connect(`ws://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/`, {
      pingInterval: 200,
      pongTimeout: 200,
      closeTimeout: 300,
    });
    let pongs = 0;
    let silentClose: CloseEvent | undefined;
    silent.onclose = (e) => silentClose = e;
    for await (const ev of alive) {
      if (ev.type === "ws-pong" && ++pongs === 5) break;
      assert.notEqual(ev.type, "ws-close");
    }
    assert.equal(alive.readyState, alive.OPEN);
    await until(() => silentClose !== undefined, "the silent server's socket to close");
    assert.deepEqual([silentClose!.code, silentClose!.reason, silentClose!.wasClean], [1001, REASON, false]);
    // The raw server got our masked ping, then close 1001.
    const f = rawConns[0];
    const frames = await f.readToEof();
    assert.deepEqual(frames.map(([op]) => op), [9, 8]);
    assert.deepEqual(closeOf(frames[1][1]), [1001, REASON]);
    alive.close();
  } finally {
    listener.close();
    for (const c of rawConns) c.conn.close();
    await rawServer.catch(() => {});
    ac.abort();
    await deno.finished;
  }
});

test("maxBufferedAmount: sends never awaited to a peer that never reads close the socket with 1006 at the limit", async () => {
  let maxBuffered = 0;
  let sent = 0;
  let close: CloseEvent | undefined;
  const limit = 1 << 20;
  const chunk = new Uint8Array(64 * 1024);
  await using srv = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    const { socket, response } = upgradeWebSocket(req, { maxBufferedAmount: limit });
    socket.onopen = () => {
      for (let i = 0; i < 256; i++) { // 16 MiB in one synchronous loop
        socket.send(chunk);
        sent++;
        maxBuffered = Math.max(maxBuffered, socket.bufferedAmount);
      }
    };
    socket.onclose = (e) => close = e;
    return response;
  });
  const f = await rawClient(srv.addr.port);
  await until(() => close !== undefined, "onclose");
  assert.equal(sent, 256);
  // A send is refused once more than the limit is unsent: at most the limit plus one frame.
  assert.ok(maxBuffered > limit - chunk.length, `${maxBuffered}`);
  assert.ok(maxBuffered <= limit + chunk.length + 4, `${maxBuffered}`);
  assert.deepEqual([close!.code, close!.reason, close!.wasClean], [
    1006,
    "more than maxBufferedAmount bytes unsent",
    false,
  ]);
  // The peer sees the connection end without a close frame.
  let bytes = f.buf.length;
  for (;;) {
    const b = new Uint8Array(65536);
    const n = await f.conn.read(b).catch(() => null);
    if (n === null) break;
    bytes += n;
  }
  assert.ok(bytes < limit + 2 * chunk.length, `${bytes} bytes reached the peer`);
  f.conn.close();
});

test("keep-alive and limit options are checked", async () => {
  await using mgr = new Manager();
  const { port } = mgr.listen("http://127.0.0.1:0");
  const results: string[] = [];
  const bad: WebSocketAcceptOptions[] = [
    { idleTimeout: 1, pingInterval: 100 },
    { idleTimeout: -1 },
    { pingInterval: 1.5 },
    { pingInterval: -1 },
    { pongTimeout: 0 },
    { maxBufferedAmount: 0 },
    { maxBufferedAmount: 1.5 },
  ];
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  for await (const ev of mgr) {
    if (ev.type !== "http") continue;
    for (const o of bad) {
      try {
        acceptWebSocket(ev, o);
        results.push("accepted");
      } catch (e) {
        results.push((e as Error).name);
      }
    }
    acceptWebSocket(ev, { pingInterval: 0, maxBufferedAmount: Infinity });
    break;
  }
  assert.deepEqual(results, [
    "TypeError",
    "RangeError",
    "RangeError",
    "RangeError",
    "RangeError",
    "RangeError",
    "RangeError",
  ]);
  await new Promise((r) => ws.onopen = r);
  ws.close();
  await using mgr2 = new Manager();
  await assert.rejects(
    () => mgr2.connect(`ws://127.0.0.1:${port}/`, { pingInterval: -5 }),
    RangeError,
  );
});
