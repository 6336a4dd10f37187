import assert from "node:assert/strict";
import { test } from "./helpers.ts";
import {
  ConnectionClosedError,
  type DatagramEvent,
  DatagramTooLargeError,
  Manager,
  type MgEvent,
  MgnetError,
  type OversizedDatagramEvent,
  UdpSocket,
} from "../mod.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A Deno UDP socket on `hostname`, port 0; returns it and its port. */
function peerOn(hostname = "127.0.0.1"): { peer: Deno.DatagramConn; port: number } {
  const peer = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
  return { peer, port: (peer.addr as Deno.NetAddr).port };
}

/** The next event of `type` from the manager's iterator (others are dropped). */
async function next<T extends MgEvent["type"]>(
  it: AsyncIterator<MgEvent>,
  type: T,
): Promise<Extract<MgEvent, { type: T }>> {
  for (;;) {
    const r = await it.next();
    if (r.done) throw new Error(`the manager closed before a ${type} event`);
    if (r.value.type === type) return r.value as Extract<MgEvent, { type: T }>;
  }
}

/** Receives one datagram on a Deno socket, failing after `ms`. */
async function receive(peer: Deno.DatagramConn, ms = 5000): Promise<[Uint8Array, Deno.NetAddr]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      peer.receive() as Promise<[Uint8Array, Deno.NetAddr]>,
      new Promise<never>((_, rej) => timer = setTimeout(() => rej(new Error("no datagram")), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

test("UDP: a Deno socket's datagram arrives with exact bytes and sender; the reply reaches it", async () => {
  await using mgr = new Manager();
  const sock = mgr.listen("udp://127.0.0.1:0");
  assert.ok(sock instanceof UdpSocket);
  assert.ok(sock.port > 0);
  assert.deepEqual(sock.localAddr, { transport: "udp", hostname: "127.0.0.1", port: sock.port });
  const { peer, port } = peerOn();
  try {
    const payload = new Uint8Array([0, 1, 2, 255, 0, 10, 13]);
    await peer.send(payload, { transport: "udp", hostname: "127.0.0.1", port: sock.port });
    const it = mgr[Symbol.asyncIterator]();
    const ev = await next(it, "datagram");
    assert.equal(ev.socket, sock);
    assert.equal(ev.conn, sock);
    assert.deepEqual([...ev.bytes], [...payload]);
    assert.deepEqual(ev.from, { transport: "udp", hostname: "127.0.0.1", port });
    assert.equal(ev.socket.send(enc.encode("pong"), ev.from), true);
    assert.equal(ev.reply("again"), true);
    const [a, fromA] = await receive(peer);
    const [b] = await receive(peer);
    assert.equal(dec.decode(a), "pong");
    assert.equal(dec.decode(b), "again");
    assert.equal(fromA.port, sock.port);
    assert.equal(fromA.hostname, "127.0.0.1");
  } finally {
    peer.close();
  }
});

test("UDP: send() starts an exchange with a Deno socket, which answers", async () => {
  await using mgr = new Manager();
  const sock = mgr.listen("udp://127.0.0.1:0");
  const { peer, port } = peerOn();
  try {
    assert.equal(sock.send("hello", { hostname: "127.0.0.1", port }), true);
    const [got, from] = await receive(peer);
    assert.equal(dec.decode(got), "hello");
    assert.deepEqual([from.hostname, from.port], ["127.0.0.1", sock.port]);
    await peer.send(enc.encode("hi back"), from);
    const ev = await next(mgr[Symbol.asyncIterator](), "datagram");
    assert.equal(dec.decode(ev.bytes), "hi back");
    assert.equal(ev.from.port, port);
  } finally {
    peer.close();
  }
});

test("UDP: 10,000 datagrams in a burst all arrive, in order, when the receive buffer holds them", async () => {
  // Each 64-byte datagram costs ~832 bytes of receive buffer on loopback
  // (the kernel's skb truesize, measured on this kernel: 2,520 fit in 2 MiB).
  // 16 MiB is asked for; Linux caps it at net.core.rmem_max unless the
  // process may force it (root). If the grant is smaller the burst is sent
  // in windows of what the buffer provably holds, each read before the next.
  const TOTAL = 10_000;
  const PER_DATAGRAM = 1024; // > 832, a margin for other kernels
  await using mgr = new Manager();
  const sock = mgr.listen("udp://127.0.0.1:0", { maxDatagram: 64, recvBuffer: 16 << 20 });
  const window = Math.min(TOTAL, Math.floor(sock.recvBuffer / PER_DATAGRAM));
  assert.ok(window >= 100, `receive buffer of ${sock.recvBuffer} bytes`);
  const { peer } = peerOn();
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: sock.port };
  const it = mgr[Symbol.asyncIterator]();
  const seen: number[] = [];
  try {
    const dgram = new Uint8Array(64);
    const dv = new DataView(dgram.buffer);
    for (let sent = 0; sent < TOTAL;) {
      const end = Math.min(TOTAL, sent + window);
      // The whole window is in the kernel before mgnet reads any of it.
      for (; sent < end; sent++) {
        dv.setUint32(0, sent, true);
        dgram[63] = sent & 0xff;
        await peer.send(dgram, to);
      }
      while (seen.length < end) {
        const ev = await next(it, "datagram");
        assert.equal(ev.bytes.length, 64);
        const i = new DataView(ev.bytes.buffer, ev.bytes.byteOffset).getUint32(0, true);
        assert.equal(ev.bytes[63], i & 0xff);
        seen.push(i);
      }
    }
    assert.equal(seen.length, TOTAL);
    assert.deepEqual(seen, Array.from({ length: TOTAL }, (_, i) => i));
  } finally {
    peer.close();
  }
});

test("UDP: a datagram over maxDatagram is reported with its size, never cut; the socket still serves", async () => {
  await using mgr = new Manager();
  const sock = mgr.listen("udp://127.0.0.1:0", { maxDatagram: 1000 });
  const { peer, port } = peerOn();
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: sock.port };
  const it = mgr[Symbol.asyncIterator]();
  try {
    await peer.send(new Uint8Array(1001).fill(7), to);
    await peer.send(new Uint8Array(1000).fill(8), to);
    const first = (await it.next()).value as OversizedDatagramEvent;
    assert.equal(first.type, "datagram-oversized");
    assert.deepEqual([first.size, first.limit, first.from.port], [1001, 1000, port]);
    assert.equal(first.socket, sock);
    const second = (await it.next()).value as DatagramEvent;
    assert.equal(second.type, "datagram");
    assert.equal(second.bytes.length, 1000);
    assert.ok(second.bytes.every((b) => b === 8));
    // Liveness: it still answers.
    second.reply("alive");
    assert.equal(dec.decode((await receive(peer))[0]), "alive");
  } finally {
    peer.close();
  }
});

test("UDP: the largest IPv4 datagram (65,507 bytes) arrives whole with the default limit", async () => {
  await using mgr = new Manager();
  const sock = mgr.listen("udp://127.0.0.1:0");
  assert.equal(sock.maxDatagram, 65_507);
  const { peer } = peerOn();
  try {
    const big = new Uint8Array(65_507);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    await peer.send(big, { transport: "udp", hostname: "127.0.0.1", port: sock.port });
    const ev = await next(mgr[Symbol.asyncIterator](), "datagram");
    assert.equal(ev.bytes.length, big.length);
    assert.deepEqual(ev.bytes, big);
  } finally {
    peer.close();
  }
});

test("UDP: sending is checked: over maxDatagram, a name, an IPv6 target from IPv4, a bad port", async () => {
  await using mgr = new Manager();
  const sock = mgr.listen("udp://127.0.0.1:0", { maxDatagram: 16 });
  const to = { hostname: "127.0.0.1", port: 9 };
  assert.throws(() => sock.send(new Uint8Array(17), to), (e) => {
    return e instanceof DatagramTooLargeError && e.size === 17 && e.limit === 16 && e.code === "Invalid";
  });
  assert.throws(() => sock.send("x", { hostname: "example.test", port: 9 }), TypeError);
  assert.throws(() => sock.send("x", { hostname: "127.0.0.1", port: 70000 }), TypeError);
  assert.throws(
    () => sock.send("x", { hostname: "::1", port: 9 }),
    (e) => e instanceof MgnetError && e.code === "Invalid" && /IPv4 socket/.test(e.message),
  );
  assert.equal(sock.send(new Uint8Array(16), to), true);
  assert.throws(() => mgr.listen("udp://127.0.0.1:0", { maxDatagram: 70_000 }), RangeError);
  assert.throws(
    () => mgr.listen("udp://example.test:0"),
    (e) => e instanceof MgnetError && e.code === "Invalid",
  );
});

test("UDP: broadcast needs the option; with it a loopback broadcast arrives", async () => {
  await using mgr = new Manager();
  const plain = mgr.listen("udp://0.0.0.0:0");
  assert.throws(
    () => plain.send("x", { hostname: "255.255.255.255", port: 9 }),
    (e) => e instanceof MgnetError && e.code === "Io" && /broadcast/.test(e.message),
  );
  const bcast = mgr.listen("udp://0.0.0.0:0", { broadcast: true });
  const { peer, port } = peerOn("0.0.0.0");
  try {
    assert.equal(bcast.send("to all", { hostname: "127.255.255.255", port }), true);
    const [got, from] = await receive(peer);
    assert.equal(dec.decode(got), "to all");
    assert.equal(from.port, bcast.port);
  } finally {
    peer.close();
  }
});

test("UDP: IPv6 round trip on [::1] with the sender's IPv6 address", async () => {
  await using mgr = new Manager();
  const sock = mgr.listen("udp://[::1]:0");
  assert.equal(sock.ipv6, true);
  assert.deepEqual(sock.localAddr, { transport: "udp", hostname: "::1", port: sock.port });
  const { peer, port } = peerOn("::1");
  try {
    await peer.send(enc.encode("v6"), { transport: "udp", hostname: "::1", port: sock.port });
    const ev = await next(mgr[Symbol.asyncIterator](), "datagram");
    assert.deepEqual(ev.from, { transport: "udp", hostname: "::1", port });
    assert.equal(dec.decode(ev.bytes), "v6");
    ev.socket.send("v6 back", ev.from);
    const [got, from] = await receive(peer);
    assert.equal(dec.decode(got), "v6 back");
    assert.deepEqual([from.hostname, from.port], ["::1", sock.port]);
  } finally {
    peer.close();
  }
});

test("UDP: a socket bound to [::] serves IPv4 peers too (mapped addresses shown as IPv4)", async () => {
  await using mgr = new Manager();
  const sock = mgr.listen("udp://[::]:0");
  const { peer, port } = peerOn();
  try {
    await peer.send(enc.encode("4to6"), { transport: "udp", hostname: "127.0.0.1", port: sock.port });
    const ev = await next(mgr[Symbol.asyncIterator](), "datagram");
    assert.deepEqual(ev.from, { transport: "udp", hostname: "127.0.0.1", port });
    ev.reply("6to4");
    assert.equal(dec.decode((await receive(peer))[0]), "6to4");
  } finally {
    peer.close();
  }
});

test("UDP: a closed socket closes with a close event and refuses send with ConnectionClosedError", async () => {
  await using mgr = new Manager();
  const sock = mgr.listen("udp://127.0.0.1:0");
  const other = mgr.listen("udp://127.0.0.1:0");
  const it = mgr[Symbol.asyncIterator]();
  sock.close();
  const ev = await next(it, "close");
  assert.equal(ev.conn, sock);
  assert.equal(sock.closed, true);
  assert.throws(() => sock.send("late", { hostname: "127.0.0.1", port: other.port }), ConnectionClosedError);
  sock.close(); // idempotent
  // The other socket still works.
  assert.equal(other.send("x", { hostname: "127.0.0.1", port: other.port }), true);
  const d = await next(it, "datagram");
  assert.equal(d.socket, other);
  // And once the manager is closed, every socket is.
  await mgr.close();
  assert.throws(() => other.send("x", { hostname: "127.0.0.1", port: 9 }), ConnectionClosedError);
});

test("UDP: handlers mode echoes with onDatagram and reports oversized datagrams", async () => {
  await using mgr = new Manager();
  const oversized: number[] = [];
  const sock = mgr.listen("udp://127.0.0.1:0", {
    maxDatagram: 512,
    onDatagram: (ev) => void ev.reply(ev.bytes),
    onOversized: (ev) => void oversized.push(ev.size),
  });
  const { peer } = peerOn();
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: sock.port };
  try {
    await peer.send(new Uint8Array(513), to);
    await peer.send(enc.encode("echo me"), to);
    assert.equal(dec.decode((await receive(peer))[0]), "echo me");
    assert.deepEqual(oversized, [513]);
    assert.throws(() => mgr.listen("udp://127.0.0.1:0"), /handlers/);
  } finally {
    peer.close();
  }
});
