/**
 * The node:net-compatible socket (src/node/net.ts) against Deno.listen
 * peers: events, half-close both ways, backpressure, errors, destroy.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import tls from "node:tls";
import { makeCert, test } from "./helpers.ts";
import { createConnection, type Socket } from "../src/node/net.ts";
import { Manager } from "../mod.ts";

function once<T = unknown>(s: Socket, ev: string): Promise<T> {
  return new Promise((resolve) => s.once(ev, (...a: unknown[]) => resolve(a[0] as T)));
}

/** Collects a socket's events in order, with `data` as text. */
function record(s: Socket): { log: string[]; text: () => string } {
  const log: string[] = [];
  let text = "";
  for (const ev of ["connect", "end", "finish", "drain", "timeout"]) s.on(ev, () => log.push(ev));
  s.on("data", (b: Buffer) => {
    text += b.toString();
    if (log.at(-1) !== "data") log.push("data");
  });
  s.on("error", (e: Error & { code?: string }) => log.push(`error:${e.code}`));
  s.on("close", (hadError: boolean) => log.push(`close:${hadError}`));
  return { log, text: () => text };
}

/** Reads to EOF (without closing the connection, unlike its `readable`). */
async function readAll(c: Deno.Conn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (;;) {
    const buf = new Uint8Array(65536);
    const n = await c.read(buf);
    if (n === null) break;
    parts.push(buf.subarray(0, n));
  }
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) out.set(p, off), off += p.length;
  return out;
}

test("node-net: writes before connect are sent, data arrives as Buffer, events in order", async () => {
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = server.accept();
  const s = createConnection({ port: server.addr.port, host: "127.0.0.1" });
  const r = record(s);
  assert.equal(s.readyState, "opening");
  assert.equal(s.write("early "), true);
  s.write(new TextEncoder().encode("bytes"));
  const peer = await accepted;
  const buf = new Uint8Array(11);
  let got = 0;
  while (got < 11) got += (await peer.read(buf.subarray(got)))!;
  assert.equal(new TextDecoder().decode(buf), "early bytes");
  assert.equal(s.readyState, "open");
  assert.equal(s.remotePort, server.addr.port);
  assert.equal(s.remoteAddress, "127.0.0.1");
  const data = once<Buffer>(s, "data");
  await peer.write(new TextEncoder().encode("reply"));
  const b = await data;
  assert.ok(Buffer.isBuffer(b));
  assert.equal(b.toString(), "reply");
  peer.close();
  await once(s, "close");
  assert.deepEqual(r.log, ["connect", "data", "end", "finish", "close:false"]);
  assert.equal(s.readyState, "closed");
  server.close();
});

test("node-net: our end() half-closes; the peer answers after our FIN and we read it all", async () => {
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = server.accept();
  const s = createConnection({ port: server.addr.port, host: "127.0.0.1" });
  const r = record(s);
  s.end("question");
  assert.equal(
    s.write("more", (e) => assert.equal((e as { code?: string }).code, "ERR_STREAM_WRITE_AFTER_END")),
    false,
  );
  const peer = await accepted;
  const asked = new TextDecoder().decode(await readAll(peer)); // to our FIN
  assert.equal(asked, "question");
  const answer = "x".repeat(200_000);
  await peer.write(new TextEncoder().encode(answer)); // we still read after our end
  peer.close();
  await once(s, "close");
  assert.equal(r.text(), answer);
  assert.deepEqual(r.log.filter((e) => e !== "data"), [
    "error:ERR_STREAM_WRITE_AFTER_END", // in a microtask after the write, as Node does on the next tick
    "connect",
    "finish",
    "end",
    "close:false",
  ]);
  server.close();
});

test("node-net: the peer's FIN is 'end'; with allowHalfOpen we still write, then end", async () => {
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = server.accept();
  const s = createConnection({ port: server.addr.port, host: "127.0.0.1", allowHalfOpen: true });
  const r = record(s);
  const peer = await accepted;
  await peer.write(new TextEncoder().encode("bye"));
  await peer.closeWrite();
  await once(s, "end");
  assert.equal(s.readyState, "writeOnly");
  assert.equal(r.text(), "bye");
  const closed = once(s, "close");
  s.write("after your end");
  s.end();
  assert.equal(new TextDecoder().decode(await readAll(peer)), "after your end");
  await closed;
  assert.deepEqual(r.log, ["connect", "data", "end", "finish", "close:false"]);
  peer.close();
  server.close();
});

test("node-net: without allowHalfOpen the peer's FIN ends our side too", async () => {
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = server.accept();
  const s = createConnection({ port: server.addr.port, host: "127.0.0.1" });
  const peer = await accepted;
  const closed = once(s, "close");
  await peer.closeWrite();
  assert.equal((await readAll(peer)).length, 0); // our FIN followed
  await closed;
  peer.close();
  server.close();
});

test("node-net: backpressure: write() returns false over the mark, drain fires once the peer reads", async () => {
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = server.accept();
  const s = createConnection({ port: server.addr.port, host: "127.0.0.1", writableHighWaterMark: 64 * 1024 });
  await once(s, "connect");
  const peer = await accepted;
  const chunk = new Uint8Array(256 * 1024).fill(7);
  let sent = 0;
  let callbacks = 0;
  // The peer reads nothing yet: the kernel buffers fill and the queue grows.
  assert.equal(s.write(chunk, () => callbacks++), false);
  sent += chunk.length;
  assert.equal(s.writableNeedDrain, true);
  assert.ok(s.writableLength >= 64 * 1024, `queued ${s.writableLength}`);
  assert.equal(s.write(chunk, () => callbacks++), false);
  sent += chunk.length;
  const drained = once(s, "drain");
  let read = 0;
  const buf = new Uint8Array(65536);
  const reading = (async () => {
    while (read < sent) {
      const n = await peer.read(buf);
      if (n === null) break;
      for (let i = 0; i < n; i++) assert.equal(buf[i], 7);
      read += n;
    }
  })();
  await drained;
  assert.equal(s.writableNeedDrain, false);
  await reading;
  assert.equal(read, sent);
  assert.equal(callbacks, 2);
  assert.equal(s.bytesWritten, sent);
  s.destroy();
  await once(s, "close");
  peer.close();
  server.close();
});

test("node-net: a refused connect is 'error' with code ECONNREFUSED, then close(true)", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  const s = createConnection(port, "127.0.0.1");
  const r = record(s);
  let writeErr: unknown;
  s.write("lost", (e) => writeErr = e);
  await once(s, "close");
  assert.deepEqual(r.log, ["error:ECONNREFUSED", "close:true"]);
  assert.equal((writeErr as { code?: string }).code, "ECONNREFUSED");
  assert.equal(s.readyState, "closed");
  assert.equal(s.destroyed, true);
});

test("node-net: destroy() mid-stream closes without error; the peer sees the connection end", async () => {
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = server.accept();
  const s = createConnection({ port: server.addr.port, host: "127.0.0.1" });
  const r = record(s);
  const peer = await accepted;
  const chunk = new Uint8Array(64 * 1024);
  let stop = false;
  const writing = (async () => {
    try {
      while (!stop) await peer.write(chunk);
    } catch {
      // the socket was closed under the writer: expected
    }
  })();
  await once(s, "data");
  const t0 = performance.now();
  s.destroy();
  await once(s, "close");
  // At once: not the 2 s lingering close of TcpConnection.close().
  const ms = performance.now() - t0;
  assert.ok(ms < 1000, `close took ${ms} ms`);
  assert.deepEqual(r.log.filter((e) => e !== "data"), ["connect", "close:false"]);
  assert.equal(s.write("x"), false); // after destroy: no throw, a callback error
  // The peer: its reads end (EOF or reset) within the deadline.
  const buf = new Uint8Array(1024);
  try {
    while ((await peer.read(buf)) !== null) { /* drain */ }
  } catch { /* reset */ }
  stop = true;
  peer.close();
  await writing;
  server.close();
});

test("node-net: destroy(err) emits that error then close(true); destroy before connect closes quietly", async () => {
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = server.accept();
  const s = createConnection({ port: server.addr.port, host: "127.0.0.1" });
  const errors: Error[] = [];
  s.on("error", (e) => errors.push(e));
  await once(s, "connect");
  const peer = await accepted;
  const boom = new Error("boom");
  s.destroy(boom);
  assert.equal(await once(s, "close"), true);
  assert.deepEqual(errors, [boom]);
  assert.equal((await readAll(peer)).length, 0);
  peer.close();

  const early = createConnection({ port: server.addr.port, host: "127.0.0.1" });
  early.destroy();
  assert.equal(await once(early, "close"), false);
  const peer2 = await server.accept(); // it did connect, then closed at once
  assert.equal((await readAll(peer2)).length, 0);
  peer2.close();
  server.close();
});

test("node-net: pause() holds data, resume() delivers it in order; setTimeout emits timeout", async () => {
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = server.accept();
  const s = createConnection({ port: server.addr.port, host: "127.0.0.1" });
  const r = record(s);
  await once(s, "connect");
  const peer = await accepted;
  s.pause();
  assert.equal(s.isPaused(), true);
  await peer.write(new TextEncoder().encode("held"));
  await peer.closeWrite();
  // Give the loop a chance to deliver (it must not while paused): wait for a timeout event.
  s.setTimeout(50);
  await once(s, "timeout");
  assert.equal(r.text(), "");
  s.setTimeout(0);
  s.resume();
  await once(s, "close");
  assert.equal(r.text(), "held");
  assert.deepEqual(r.log, ["connect", "timeout", "data", "end", "finish", "close:false"]);
  peer.close();
  server.close();
});

test("node-net: input held by pause() when the peer closes is delivered on resume(), then close", async () => {
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = server.accept();
  const s = createConnection({ port: server.addr.port, host: "127.0.0.1" });
  const r = record(s);
  await once(s, "connect");
  const peer = await accepted;
  s.pause();
  await peer.write(new TextEncoder().encode("last words"));
  peer.close();
  s.setTimeout(100);
  await once(s, "timeout"); // time for the close to arrive: it must wait for resume()
  assert.equal(r.text(), "");
  assert.ok(!r.log.includes("close:false"));
  s.setTimeout(0);
  const closed = once(s, "close");
  s.resume();
  await closed;
  assert.equal(r.text(), "last words");
  assert.deepEqual(r.log.filter((e) => e !== "finish"), ["connect", "timeout", "data", "end", "close:false"]);
  server.close();
});

test("node-net: runs on a given manager; setNoDelay/setKeepAlive are accepted", async () => {
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = server.accept();
  await using mgr = new Manager();
  const s = createConnection({ port: server.addr.port, host: "127.0.0.1", manager: mgr });
  assert.equal(s.manager, mgr);
  await once(s, "connect");
  assert.ok(s.localPort! > 0);
  assert.equal(s.setNoDelay(true), s);
  assert.equal(s.setKeepAlive(true, 1000), s);
  const peer = await accepted;
  const closed = once(s, "close");
  s.end();
  assert.equal((await readAll(peer)).length, 0);
  peer.close();
  assert.equal(await closed, false);
  server.close();
});

test("node-net: TLS in-band: node:tls over the socket talks to Deno.listenTls, half-closes, verifies", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mgnet-net-tls-" });
  const server = makeCert(dir, "localhost", "DNS:localhost,IP:127.0.0.1");
  const stranger = makeCert(dir, "stranger", "DNS:localhost,IP:127.0.0.1");
  const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: server.cert, key: server.key });
  try {
    // The peer reads to the end of our writing, then answers with what it got, reversed, and ends.
    const answered = (async () => {
      const c = await listener.accept();
      const got = new TextDecoder().decode(await readAll(c));
      await c.write(new TextEncoder().encode([...got].reverse().join("")));
      await c.closeWrite();
      c.close();
      return got;
    })();
    const raw = createConnection({ port: listener.addr.port, host: "127.0.0.1" });
    await once(raw, "connect");
    const secure = raw.startTls({ servername: "localhost", ca: server.cert });
    await new Promise<void>((resolve, reject) => {
      secure.once("secureConnect", resolve);
      secure.once("error", reject);
    });
    assert.equal(secure.authorized, true);
    const text = (async () => {
      let t = "";
      for await (const b of secure) t += (b as Buffer).toString();
      return t;
    })();
    secure.end("sent over TLS on mgnet's loop");
    assert.equal(await answered, "sent over TLS on mgnet's loop");
    assert.equal(await text, [..."sent over TLS on mgnet's loop"].reverse().join(""));

    // A certificate from an unknown CA: an error on the TLS socket, none left uncaught on the raw one.
    const failing = (async () => {
      const c = await listener.accept();
      await c.handshake().catch(() => {});
      c.close();
    })();
    const raw2 = createConnection({ port: listener.addr.port, host: "127.0.0.1" });
    await once(raw2, "connect");
    const rawClosed = once(raw2, "close");
    const bad = tls.connect({ socket: raw2 as never, servername: "localhost", ca: stranger.cert });
    const err = await new Promise<Error>((resolve) => bad.once("error", resolve));
    assert.match(err.message, /certificate|UnknownIssuer/i);
    bad.destroy();
    await rawClosed;
    await failing;
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});
