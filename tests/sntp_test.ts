import assert from "node:assert/strict";
import { test } from "./helpers.ts";
import { Manager, SntpError } from "../mod.ts";

// A loopback SNTP responder written here: it answers each request with
// timestamps derived from the request's own transmit timestamp (T1), so
// the expected offset and delay are known exactly.

const SECOND = 1n << 32n;

interface Reply {
  /** T2 − T1 and T3 − T1, in NTP units (2^-32 s). */
  t2: bigint;
  t3: bigint;
  /** Byte 0 (LI, version, mode) and stratum. */
  mode?: number;
  stratum?: number;
  /** Originate timestamp override (default: the request's T1). */
  originate?: bigint;
  refid?: string;
}

function packet(req: Uint8Array, r: Reply): Uint8Array {
  const t1 = new DataView(req.buffer, req.byteOffset, req.byteLength).getBigUint64(40);
  const out = new Uint8Array(48);
  const dv = new DataView(out.buffer);
  out[0] = r.mode ?? 0x24; // LI 0, version 4, mode 4 (server)
  out[1] = r.stratum ?? 2;
  out.set(new TextEncoder().encode((r.refid ?? "GPS\0").slice(0, 4)), 12);
  dv.setBigUint64(24, r.originate ?? t1);
  dv.setBigUint64(32, t1 + r.t2);
  dv.setBigUint64(40, t1 + r.t3);
  return out;
}

function responder(replies: (req: Uint8Array) => Uint8Array[], hostname = "127.0.0.1") {
  const sock = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
  const requests: Uint8Array[] = [];
  const done = (async () => {
    try {
      for (;;) {
        const [req, from] = await sock.receive();
        requests.push(req);
        for (const r of replies(req)) await sock.send(r, from);
      }
    } catch { /* closed */ }
  })();
  const port = (sock.addr as Deno.NetAddr).port;
  return {
    port,
    requests,
    async close() {
      sock.close();
      await done;
    },
  };
}

test("SNTP: offset and delay follow from the four timestamps of a loopback responder", async () => {
  // T2 = T1 + 5 s, T3 = T1 + 5.25 s: offset + delay/2 = 5000 ms exactly,
  // and delay + 250 ms is the real round trip.
  const r = responder((req) => [packet(req, { t2: 5n * SECOND, t3: 5n * SECOND + SECOND / 4n })]);
  await using mgr = new Manager();
  try {
    const t0 = performance.now();
    const before = Date.now();
    const res = await mgr.sntp(`udp://127.0.0.1:${r.port}`, { timeout: 2000 });
    const elapsed = performance.now() - t0;
    assert.ok(Math.abs(res.offset + res.delay / 2 - 5000) < 1e-3, `offset ${res.offset}, delay ${res.delay}`);
    const rtt = res.delay + 250;
    assert.ok(rtt >= 0 && rtt <= elapsed + 1, `round trip ${rtt} ms, call took ${elapsed} ms`);
    // time is the server's clock when the reply was read: our clock + offset.
    assert.ok(Math.abs(res.time - (before + res.offset)) <= elapsed + 5, `time ${res.time} vs ${before}`);
    assert.equal(res.stratum, 2);
    assert.deepEqual(res.server, { transport: "udp", hostname: "127.0.0.1", port: r.port });
    // The request: version 4, client mode, 48 bytes, a transmit timestamp near now.
    const req = r.requests[0];
    assert.equal(req.length, 48);
    assert.equal(req[0], 0x23);
    const t1 = new DataView(req.buffer, req.byteOffset).getBigUint64(40);
    const unixMs = Number((t1 >> 32n) - 2_208_988_800n) * 1000;
    assert.ok(Math.abs(unixMs - before) < 2000);
  } finally {
    await r.close();
  }
});

test("SNTP: stray replies (another request's, client mode, no transmit time) are ignored", async () => {
  const r = responder((req) => [
    packet(req, { t2: 99n * SECOND, t3: 99n * SECOND, originate: 12345n }),
    packet(req, { t2: 98n * SECOND, t3: 98n * SECOND, mode: 0x23 }),
    packet(req, { t2: 97n * SECOND, t3: -new DataView(req.buffer, req.byteOffset).getBigUint64(40) }),
    packet(req, { t2: -SECOND, t3: -SECOND }),
  ]);
  await using mgr = new Manager();
  try {
    const res = await mgr.sntp(`127.0.0.1:${r.port}`, { timeout: 2000 });
    assert.ok(Math.abs(res.offset + res.delay / 2 + 1000) < 1e-3, `offset ${res.offset}`);
  } finally {
    await r.close();
  }
});

test("SNTP: a kiss-of-death and an unsynchronised server are errors with their kind", async () => {
  const r = responder((req) => [
    packet(req, { t2: 0n, t3: 0n, stratum: 0, refid: "RATE" }),
  ]);
  const u = responder((req) => [packet(req, { t2: 0n, t3: 0n, mode: 0xe4 })]);
  await using mgr = new Manager();
  try {
    await assert.rejects(
      mgr.sntp(`udp://127.0.0.1:${r.port}`),
      (e) => e instanceof SntpError && e.kind === "kod" && e.kissCode === "RATE",
    );
    await assert.rejects(
      mgr.sntp(`udp://127.0.0.1:${u.port}`),
      (e) => e instanceof SntpError && e.kind === "unsynchronized",
    );
  } finally {
    await r.close();
    await u.close();
  }
});

test("SNTP: a silent server ends in a timeout within the given timeout", async () => {
  const r = responder(() => []);
  await using mgr = new Manager();
  try {
    const t0 = performance.now();
    await assert.rejects(
      mgr.sntp(`udp://127.0.0.1:${r.port}`, { timeout: 250 }),
      (e) => e instanceof SntpError && e.kind === "timeout",
    );
    const took = performance.now() - t0;
    assert.ok(took >= 245 && took < 1000, `took ${took} ms`);
    assert.equal(r.requests.length, 1);
  } finally {
    await r.close();
  }
});

test("SNTP: over IPv6, and a server given by name (localhost)", async () => {
  const r6 = responder((req) => [packet(req, { t2: SECOND, t3: SECOND })], "::1");
  const r4 = responder((req) => [packet(req, { t2: 2n * SECOND, t3: 2n * SECOND })]);
  await using mgr = new Manager();
  try {
    const a = await mgr.sntp(`udp://[::1]:${r6.port}`);
    assert.ok(Math.abs(a.offset + a.delay / 2 - 1000) < 1e-3);
    assert.equal(a.server.hostname, "::1");
    const b = await mgr.sntp(`localhost:${r4.port}`);
    assert.ok(Math.abs(b.offset + b.delay / 2 - 2000) < 1e-3);
  } finally {
    await r6.close();
    await r4.close();
  }
});
