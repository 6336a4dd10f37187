/**
 * A WebSocket whose events JS does not take (a client socket not iterated
 * yet while the manager's loop runs for other work, or a `for await` slower
 * than the peer) stops being read once its queue is over its bound, so TCP
 * holds the peer back; nothing is lost once the events are taken.
 */
import assert from "node:assert/strict";
import { Manager } from "../mod.ts";
import { inFlight, test, untilStalled, writeAll } from "./helpers.ts";
import { RawWs } from "./ws_raw.ts";

const MSG = 16 * 1024;
const COUNT = 2048; // 32 MiB in all

/**
 * A raw WebSocket server on `Deno.listen`: answers one handshake, then
 * writes COUNT numbered binary frames of MSG bytes, counting the bytes the
 * kernel took.
 */
function floodServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const state = { written: 0, done: false, conn: undefined as Deno.Conn | undefined };
  const served = (async () => {
    const conn = await listener.accept();
    state.conn = conn;
    await RawWs.accept(conn);
    const frame = new Uint8Array(4 + MSG);
    frame.set([0x82, 126, MSG >> 8, MSG & 255]);
    const dv = new DataView(frame.buffer);
    for (let i = 0; i < COUNT; i++) {
      dv.setUint32(4, i);
      dv.setUint32(4 + MSG - 4, i);
      await writeAll(conn, frame);
      state.written += frame.length;
    }
    state.done = true;
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    state,
    served,
    close() {
      listener.close();
      try {
        state.conn?.close();
      } catch { /* closed already */ }
    },
  };
}

test("ws: a client socket not iterated yet stops being read over its bound; every message arrives once iterated", async () => {
  const server = floodServer();
  await using mgr = new Manager();
  const ws = await mgr.connect(`ws://127.0.0.1:${server.port}/`);
  // The manager's own iterator keeps the loop polling (the socket's events
  // go to the socket's queue, not here), as a server on the same manager would.
  const driving = (async () => {
    for await (const _ of mgr) { /* nothing else happens here */ }
  })();
  try {
    const settled = await untilStalled(() => server.state.written, () => server.state.done);
    assert.equal(
      server.state.done,
      false,
      `the server wrote all ${settled} bytes: the socket was read unbounded`,
    );
    const conn = server.state.conn!;
    const local = (conn.localAddr as Deno.NetAddr).port, remote = (conn.remoteAddr as Deno.NetAddr).port;
    // What mgnet took from its socket: written minus what the kernel holds.
    const taken = settled - inFlight(local, remote);
    assert.ok(taken <= 4 << 20, `mgnet took ${taken} bytes while nothing consumed them (bound 4 MiB)`);
    assert.ok(taken >= 1 << 20, `mgnet took only ${taken} bytes: the hold came before its bound`);
    // Taking the events restarts reading: all of them, in order, intact.
    let n = 0;
    for await (const ev of ws) {
      if (ev.type !== "ws-message") continue;
      const b = ev.bytes;
      assert.equal(b.length, MSG);
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      assert.equal(dv.getUint32(0), n);
      assert.equal(dv.getUint32(MSG - 4), n);
      if (++n === COUNT) break;
    }
    assert.equal(n, COUNT);
    await server.served;
  } finally {
    server.close();
    await mgr.close();
    await driving;
  }
});
