import assert from "node:assert/strict";
import { test } from "./helpers.ts";
import { DnsError, Manager } from "../mod.ts";

// A DNS stub written here, independent of mgnet's parser: it reads each
// query (id, name, type) and answers with what the test's table says.

interface Query {
  id: number;
  name: string;
  type: number;
  raw: Uint8Array;
}

interface Rr {
  name: string;
  type: number;
  data: Uint8Array;
  ttl?: number;
}

const A = 1, CNAME = 5, AAAA = 28;

function encodeName(name: string): number[] {
  const out: number[] = [];
  for (const label of name.split(".")) {
    out.push(label.length, ...new TextEncoder().encode(label));
  }
  out.push(0);
  return out;
}

function parseQuery(q: Uint8Array): Query {
  const dv = new DataView(q.buffer, q.byteOffset, q.byteLength);
  const labels: string[] = [];
  let off = 12;
  while (q[off] !== 0) {
    labels.push(new TextDecoder().decode(q.subarray(off + 1, off + 1 + q[off])));
    off += 1 + q[off];
  }
  return { id: dv.getUint16(0), name: labels.join("."), type: dv.getUint16(off + 1), raw: q };
}

/** A reply to `q`: its header and question, RCODE, answer records. */
function reply(q: Query, opts: { rcode?: number; answers?: Rr[]; id?: number } = {}): Uint8Array {
  const qlen = 12 + encodeName(q.name).length + 4;
  const out = [...q.raw.subarray(0, qlen)];
  const id = opts.id ?? q.id;
  out[0] = id >> 8;
  out[1] = id & 0xff;
  out[2] = 0x81; // QR, RD
  out[3] = 0x80 | (opts.rcode ?? 0); // RA
  const answers = opts.answers ?? [];
  out[6] = 0;
  out[7] = answers.length;
  for (const rr of answers) {
    const ttl = rr.ttl ?? 60;
    out.push(
      ...encodeName(rr.name),
      rr.type >> 8,
      rr.type & 0xff,
      0,
      1,
      (ttl >>> 24) & 0xff,
      (ttl >>> 16) & 0xff,
      (ttl >>> 8) & 0xff,
      ttl & 0xff,
      rr.data.length >> 8,
      rr.data.length & 0xff,
      ...rr.data,
    );
  }
  return new Uint8Array(out);
}

const v4 = (...b: number[]) => new Uint8Array(b);
function v6(text: string): Uint8Array {
  // Enough for the test's addresses: "2001:db8::N".
  const [head, tail] = text.split("::");
  const words = [...head.split(":"), ...new Array(8 - head.split(":").length - 1).fill("0"), tail];
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    const n = parseInt(w, 16);
    out[2 * i] = n >> 8;
    out[2 * i + 1] = n & 0xff;
  });
  return out;
}

/** Starts a stub on loopback answering with `answer(query)` (datagrams to send back, in order). */
function stub(answer: (q: Query, from: Deno.NetAddr) => Uint8Array[]) {
  const sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const queries: Query[] = [];
  const done = (async () => {
    try {
      for (;;) {
        const [raw, from] = await sock.receive();
        const q = parseQuery(raw);
        queries.push(q);
        for (const r of answer(q, from as Deno.NetAddr)) await sock.send(r, from);
      }
    } catch { /* closed */ }
  })();
  return {
    server: `udp://127.0.0.1:${(sock.addr as Deno.NetAddr).port}`,
    queries,
    sock,
    async close() {
      sock.close();
      await done;
    },
  };
}

/** A stub with a zone: name → records; unknown names are NXDOMAIN. */
function zoneStub(zone: Record<string, Rr[]>) {
  return stub((q) => {
    // Names are case-insensitive: the zone's are lower-case.
    const rrs = zone[q.name.toLowerCase()];
    if (!rrs) return [reply(q, { rcode: 3 })];
    // Follow CNAMEs like a recursive server: the chain then the addresses.
    const answers: Rr[] = [];
    let name = q.name.toLowerCase();
    for (let i = 0; i < 8; i++) {
      const c = (zone[name] ?? []).find((r) => r.type === CNAME);
      if (!c) break;
      answers.push(c);
      name = (c as Rr & { target: string }).target;
    }
    answers.push(...(zone[name] ?? []).filter((r) => r.type === q.type));
    return [reply(q, { answers })];
  });
}

const cname = (name: string, target: string): Rr & { target: string } => ({
  name,
  type: CNAME,
  data: new Uint8Array(encodeName(target)),
  target,
});

test("DNS: A and AAAA answers from a loopback stub, each family and both", async () => {
  const s = zoneStub({
    "host.test": [
      { name: "host.test", type: A, data: v4(10, 0, 0, 1) },
      { name: "host.test", type: A, data: v4(10, 0, 0, 2) },
      { name: "host.test", type: AAAA, data: v6("2001:db8::1") },
    ],
  });
  await using mgr = new Manager();
  try {
    assert.deepEqual(await mgr.resolve("host.test", { server: s.server, family: 4 }), [
      "10.0.0.1",
      "10.0.0.2",
    ]);
    assert.deepEqual(await mgr.resolve("host.test", { server: s.server, family: 6 }), ["2001:db8::1"]);
    assert.deepEqual(await mgr.resolve("Host.Test.", { server: s.server }), [
      "10.0.0.1",
      "10.0.0.2",
      "2001:db8::1",
    ]);
    // Every query asked for what was wanted, with distinct ids.
    assert.deepEqual(s.queries.map((q) => q.type), [A, AAAA, A, AAAA]);
    assert.equal(new Set(s.queries.map((q) => q.id)).size, 4);
  } finally {
    await s.close();
  }
});

test("DNS: a CNAME chain is followed to the addresses", async () => {
  const s = zoneStub({
    "www.test": [cname("www.test", "lb.test")],
    "lb.test": [cname("lb.test", "edge.cdn.test")],
    "edge.cdn.test": [{ name: "edge.cdn.test", type: A, data: v4(192, 0, 2, 7) }],
  });
  await using mgr = new Manager();
  try {
    assert.deepEqual(await mgr.resolve("www.test", { server: s.server, family: 4 }), ["192.0.2.7"]);
  } finally {
    await s.close();
  }
});

test("DNS: NXDOMAIN, SERVFAIL, REFUSED and an empty answer map to their kinds", async () => {
  const s = stub((q) => {
    const rcode = { "nx.test": 3, "fail.test": 2, "no.test": 5, "empty.test": 0 }[q.name] ?? 3;
    return [reply(q, { rcode })];
  });
  await using mgr = new Manager();
  try {
    const kind = (name: string) =>
      mgr.resolve(name, { server: s.server }).then(
        () => "resolved",
        (e) => (e instanceof DnsError ? `${e.kind} ${e.hostname}` : String(e)),
      );
    assert.equal(await kind("nx.test"), "nxdomain nx.test");
    assert.equal(await kind("fail.test"), "servfail fail.test");
    assert.equal(await kind("no.test"), "refused no.test");
    assert.equal(await kind("empty.test"), "nodata empty.test");
  } finally {
    await s.close();
  }
});

test("DNS: a silent server ends in a timeout error within the given timeout", async () => {
  const s = stub(() => []);
  await using mgr = new Manager();
  try {
    const t0 = performance.now();
    await assert.rejects(
      mgr.resolve("quiet.test", { server: s.server, timeout: 300 }),
      (e) => e instanceof DnsError && e.kind === "timeout" && /300 ms/.test(e.message),
    );
    const took = performance.now() - t0;
    assert.ok(took >= 295 && took < 1000, `took ${took} ms`);
    assert.equal(s.queries.length, 2); // A and AAAA were asked
  } finally {
    await s.close();
  }
});

test("DNS: replies with a wrong id or to another question are ignored; the right one counts", async () => {
  const s = stub((q) => {
    const good = reply(q, { answers: [{ name: q.name, type: A, data: v4(10, 9, 9, 9) }] });
    const wrongId = reply(q, {
      id: q.id ^ 0x5555,
      answers: [{ name: q.name, type: A, data: v4(6, 6, 6, 6) }],
    });
    const evil = { ...q, name: "evil.test" };
    evil.raw = new Uint8Array([...q.raw.subarray(0, 12), ...encodeName("evil.test"), 0, 1, 0, 1]);
    const otherQuestion = reply(evil, {
      id: q.id,
      answers: [{ name: "evil.test", type: A, data: v4(6, 6, 6, 7) }],
    });
    return [wrongId, otherQuestion, good];
  });
  await using mgr = new Manager();
  try {
    assert.deepEqual(await mgr.resolve("ok.test", { server: s.server, family: 4, timeout: 3000 }), [
      "10.9.9.9",
    ]);
  } finally {
    await s.close();
  }
});

test("DNS: a perfect answer from another port than the server's is ignored (timeout)", async () => {
  const spoofer = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  // The server stays silent; a third party answers the query correctly.
  const s = stub((q, from) => {
    void spoofer.send(reply(q, { answers: [{ name: q.name, type: A, data: v4(6, 6, 6, 6) }] }), from);
    return [];
  });
  const good = stub((q) => [reply(q, { answers: [{ name: q.name, type: A, data: v4(10, 1, 2, 3) }] })]);
  await using mgr = new Manager();
  try {
    await assert.rejects(
      mgr.resolve("spoof.test", { server: s.server, family: 4, timeout: 400 }),
      (e) => e instanceof DnsError && e.kind === "timeout",
    );
    assert.equal(s.queries.length, 1);
    // Liveness: a good server still resolves.
    assert.deepEqual(await mgr.resolve("x.test", { server: good.server, family: 4 }), ["10.1.2.3"]);
  } finally {
    spoofer.close();
    await s.close();
    await good.close();
  }
});

test("DNS: a malformed reply to our query is a format error; the manager still resolves afterwards", async () => {
  const s = stub((q) => {
    if (q.name === "bad.test") {
      const r = reply(q, { answers: [{ name: q.name, type: A, data: v4(1, 2, 3, 4) }] });
      return [r.subarray(0, r.length - 3)]; // the A record's data cut short
    }
    if (q.name === "short.test") return [new Uint8Array([q.id >> 8, q.id & 0xff, 0x81])]; // 3 bytes: ignored
    return [reply(q, { answers: [{ name: q.name, type: A, data: v4(10, 0, 0, 9) }] })];
  });
  await using mgr = new Manager();
  try {
    await assert.rejects(
      mgr.resolve("bad.test", { server: s.server, family: 4 }),
      (e) => e instanceof DnsError && e.kind === "format",
    );
    await assert.rejects(
      mgr.resolve("short.test", { server: s.server, family: 4, timeout: 200 }),
      (e) => e instanceof DnsError && e.kind === "timeout",
    );
    assert.deepEqual(await mgr.resolve("good.test", { server: s.server, family: 4 }), ["10.0.0.9"]);
  } finally {
    await s.close();
  }
});

test("DNS: literals and localhost need no query; bad names and servers are refused", async () => {
  await using mgr = new Manager();
  assert.deepEqual(await mgr.resolve("192.0.2.1"), ["192.0.2.1"]);
  assert.deepEqual(await mgr.resolve("[2001:db8::1]"), ["2001:db8::1"]);
  assert.deepEqual(await mgr.resolve("localhost"), ["127.0.0.1", "::1"]);
  await assert.rejects(mgr.resolve("bad name.test", { server: "127.0.0.1" }), /not a host name/);
  await assert.rejects(mgr.resolve("a.test", { server: "dns.example" }), TypeError);
  await assert.rejects(mgr.resolve("a.test", { server: "127.0.0.1", timeout: -1 }), RangeError);
  await mgr.close();
  await assert.rejects(mgr.resolve("a.test", { server: "127.0.0.1" }), /closed/);
});

test("DNS: an abort signal stops a resolution; closing the manager fails one in flight", async () => {
  const s = stub(() => []);
  const mgr = new Manager();
  try {
    const ac = new AbortController();
    const p = mgr.resolve("slow.test", { server: s.server, signal: ac.signal });
    ac.abort(new Error("stop"));
    await assert.rejects(p, /stop/);
    const q = mgr.resolve("slow.test", { server: s.server });
    await mgr.close();
    await assert.rejects(q, (e) => e instanceof Error && e.name === "ManagerClosedError");
  } finally {
    await mgr.close();
    await s.close();
  }
});
