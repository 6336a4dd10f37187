/**
 * Raw TCP (`tcp://`): listen and connect, echo, half-close both ways,
 * framing, pause/resume, backpressure and memory, with Deno.connect,
 * Deno.listen and nc as the independent peers.
 */
import assert from "node:assert/strict";
import {
  ClientError,
  ConnectionClosedError,
  Manager,
  type MgEvent,
  MgnetError,
  TcpConnection,
  type TcpDataEvent,
  type TcpListenOptions,
} from "../mod.ts";
import { inFlight, test, until, untilStalled, writeAll } from "./helpers.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Reads until EOF (or `max` bytes), with a deadline. */
async function readToEnd(conn: Deno.Conn, ms = 10_000): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  const timer = setTimeout(() => conn.close(), ms);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
  } finally {
    clearTimeout(timer);
  }
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let at = 0;
  for (const c of chunks) (out.set(c, at), at += c.length);
  return out;
}

/** Reads exactly `n` bytes (throws at EOF). */
async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await conn.read(out.subarray(got));
    if (r === null) throw new Error(`EOF after ${got} of ${n} bytes`);
    got += r;
  }
  return out;
}

/** A manager listening on `url`, its events recorded, `onEvent` called for each. */
function tcpServer(
  url: `tcp://${string}`,
  options: TcpListenOptions | undefined = undefined,
  onEvent: (ev: MgEvent) => void | Promise<void> = () => {},
) {
  const mgr = new Manager();
  const listener = mgr.listen(url, options);
  const events: MgEvent[] = [];
  const done = (async () => {
    for await (const ev of mgr) {
      events.push(ev);
      await onEvent(ev);
    }
  })();
  return {
    mgr,
    port: listener.port,
    events,
    types: (id?: number) => events.filter((e) => id === undefined || e.conn?.id === id).map((e) => e.type),
    data: () => events.filter((e): e is TcpDataEvent => e.type === "data"),
    async [Symbol.asyncDispose]() {
      await mgr.close();
      await done;
    },
  };
}

const echo = (ev: MgEvent) => {
  if (ev.type === "data") ev.conn.send(ev.bytes);
  if (ev.type === "end") ev.conn.end();
};

test("tcp: an echo server answers a Deno.connect client with the exact bytes", async () => {
  await using srv = tcpServer("tcp://127.0.0.1:0", undefined, echo);
  const client = await Deno.connect({ port: srv.port });
  const msg = Uint8Array.from({ length: 100_000 }, (_, i) => (i * 7) & 255);
  await writeAll(client, msg);
  await client.closeWrite();
  assert.deepEqual(await readToEnd(client), msg);
  client.close();
  await until(() => srv.types().includes("close"), "the close event");
  assert.deepEqual(srv.types().filter((t) => t !== "data"), ["open", "end", "close"]);
  assert.ok(srv.events[0].conn instanceof TcpConnection);
});

test("tcp half-close: the peer ends first; we still send, the peer reads it all, then we end and both close", async () => {
  const tail = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 13) & 255);
  let received = "";
  let endSeen = false;
  await using srv = tcpServer("tcp://127.0.0.1:0", undefined, (ev) => {
    if (ev.type === "data") received += ev.text();
    if (ev.type === "end") {
      endSeen = true;
      // After the peer's end: still writable.
      ev.conn.send("got: " + received + "\n");
      ev.conn.send(tail);
      ev.conn.end();
    }
  });
  const client = await Deno.connect({ port: srv.port });
  await writeAll(client, enc.encode("abc"));
  await client.closeWrite();
  const got = await readToEnd(client);
  assert.equal(received, "abc");
  assert.ok(endSeen);
  assert.equal(dec.decode(got.subarray(0, 9)), "got: abc\n");
  assert.deepEqual(got.subarray(9), tail);
  client.close();
  await until(() => srv.types().includes("close"), "the close event");
  assert.deepEqual(srv.types(), ["open", "data", "end", "close"]);
});

test("tcp half-close: we end first; the peer sees EOF, still sends, and we receive it all", async () => {
  const late = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 3) & 255);
  const chunks: Uint8Array[] = [];
  await using srv = tcpServer("tcp://127.0.0.1:0", undefined, (ev) => {
    if (ev.type === "open") {
      (ev.conn as TcpConnection).send("hello");
      (ev.conn as TcpConnection).end();
      // Sending after end() is refused.
      assert.throws(
        () => (ev.conn as TcpConnection).send("x"),
        (e) => e instanceof MgnetError && e.code === "State",
      );
    }
    if (ev.type === "data") chunks.push(ev.bytes);
  });
  const client = await Deno.connect({ port: srv.port });
  assert.equal(dec.decode(await readToEnd(client)), "hello"); // our FIN arrived
  await writeAll(client, late); // the peer still sends
  await client.closeWrite();
  await until(() => srv.types().includes("close"), "the close event");
  const all = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let at = 0;
  for (const c of chunks) (all.set(c, at), at += c.length);
  assert.deepEqual(all, late);
  const types = srv.types().filter((t) => t !== "data");
  assert.deepEqual(types, ["open", "end", "close"]);
  client.close();
});

test("tcp half-close: a connection whose peer ended stays idle (no busy loop) until we end it", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./fixtures/tcp_echo_server.ts", import.meta.url).pathname, "hold"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    const first = (await reader.read()).value ?? "";
    assert.match(first, /^port \d+\n$/);
    const client = await Deno.connect({ port: Number(first.slice(5)) });
    await writeAll(client, enc.encode("ping"));
    assert.equal(dec.decode(await readExactly(client, 4)), "ping");
    await client.closeWrite(); // the server holds the half-open connection
    await new Promise((r) => setTimeout(r, 200));
    const before = cpuTicks(child.pid);
    await new Promise((r) => setTimeout(r, 2000));
    const ticks = cpuTicks(child.pid) - before;
    // A spinning loop burns ~200 ticks in 2 s; an idle one 0–2 (timers).
    assert.ok(ticks <= 10, `the server used ${ticks} ticks of CPU in 2 s with a half-open connection`);
    client.close();
  } finally {
    await child.stdin.close();
    await reader.cancel();
    assert.equal((await child.status).code, 0);
  }
});

function cpuTicks(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(f[11]) + Number(f[12]);
}

test(
  "tcp: 1,000 concurrent Deno.connect clients each get their own echo",
  { timeoutMs: 60_000 },
  async () => {
    await using srv = tcpServer("tcp://127.0.0.1:0", undefined, echo);
    const n = 1000;
    const conns = await Promise.all(Array.from({ length: n }, () => Deno.connect({ port: srv.port })));
    try {
      const answers = await Promise.all(conns.map(async (c, i) => {
        const msg = enc.encode(`client ${i} says hello`);
        await writeAll(c, msg);
        return dec.decode(await readExactly(c, msg.length));
      }));
      answers.forEach((a, i) => assert.equal(a, `client ${i} says hello`));
      await until(() => srv.types().filter((t) => t === "open").length === n, "1000 open events");
    } finally {
      for (const c of conns) c.close();
    }
    await until(() => srv.types().filter((t) => t === "close").length === n, "1000 close events", 20_000);
  },
);

test("tcp: IPv6 listen and connect ([::1])", async () => {
  await using srv = tcpServer("tcp://[::1]:0", undefined, echo);
  const client = await Deno.connect({ hostname: "::1", port: srv.port });
  await writeAll(client, enc.encode("v6"));
  await client.closeWrite();
  assert.equal(dec.decode(await readToEnd(client)), "v6");
  client.close();
  assert.equal(srv.events[0].conn?.remoteAddr?.hostname, "::1");

  const peer = Deno.listen({ hostname: "::1", port: 0 });
  const accepted = (async () => {
    const c = await peer.accept();
    await writeAll(c, enc.encode("from deno"));
    c.close();
  })();
  await using mgr = new Manager();
  const conn = await mgr.connect(`tcp://[::1]:${peer.addr.port}`);
  assert.equal(conn.remoteAddr?.hostname, "::1");
  assert.equal(conn.remoteAddr?.port, peer.addr.port);
  let text = "";
  for await (const ev of conn) {
    if (ev.type === "data") text += ev.text();
    if (ev.type === "end") conn.end();
  }
  assert.equal(text, "from deno");
  assert.equal(conn.closed, true);
  await accepted;
  peer.close();
});

test("tcp: nc as the peer, line framing, answers after nc's end", async () => {
  await using srv = tcpServer("tcp://127.0.0.1:0", { framing: "line" }, (ev) => {
    if (ev.type === "data") ev.conn.send(`${ev.text().toUpperCase()}\n`);
    if (ev.type === "end") (ev.conn.send("bye\n"), ev.conn.end());
  });
  const nc = new Deno.Command("nc", {
    args: ["-N", "127.0.0.1", String(srv.port)],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = nc.stdin.getWriter();
  await w.write(enc.encode("first line\nsecond"));
  await w.write(enc.encode(" half\r\nlast without newline"));
  await w.close();
  const out = await nc.output();
  assert.equal(out.code, 0, dec.decode(out.stderr));
  assert.equal(dec.decode(out.stdout), "FIRST LINE\nSECOND HALF\nLAST WITHOUT NEWLINE\nbye\n");
});

test("tcp line framing: lines split across writes, many in one write, CRLF, empty lines", async () => {
  await using srv = tcpServer("tcp://127.0.0.1:0", { framing: "line" });
  const client = await Deno.connect({ port: srv.port });
  for (const part of ["al", "pha\nbe", "ta\r", "\n\ngamma\r\ndelta\nep", "silon\n"]) {
    await writeAll(client, enc.encode(part));
    await new Promise((r) => setTimeout(r, 5));
  }
  const many = Array.from({ length: 500 }, (_, i) => `line ${i}`);
  await writeAll(client, enc.encode(many.join("\n") + "\n"));
  await until(() => srv.data().length === 6 + 500, "506 lines");
  assert.deepEqual(srv.data().map((e) => e.text()), [
    "alpha",
    "beta",
    "",
    "gamma",
    "delta",
    "epsilon",
    ...many,
  ]);
  client.close();
});

test("tcp line framing: a line over maxFrame is an error naming the limit, the connection closes, others are served", async () => {
  await using srv = tcpServer("tcp://127.0.0.1:0", { framing: "line", maxFrame: 16 }, echoLines);
  const client = await Deno.connect({ port: srv.port });
  await writeAll(client, enc.encode("exactly 16 bytes\nok\n" + "x".repeat(100)));
  const got = await readToEnd(client);
  assert.equal(dec.decode(got), "exactly 16 bytes\nok\n");
  client.close(); // our FIN ends the server's lingering close
  await until(() => srv.types().includes("close"), "the close event");
  const err = srv.events.find((e) => e.type === "error");
  assert.equal(err?.type === "error" && err.message, "a line over maxFrame (16 bytes)");
  await assertEchoes(srv.port, "still here\n");
});

function echoLines(ev: MgEvent) {
  if (ev.type === "data") ev.conn.send(ev.text() + "\n");
  if (ev.type === "end") ev.conn.end();
}

async function assertEchoes(port: number, text: string) {
  const c = await Deno.connect({ port });
  await writeAll(c, enc.encode(text));
  await c.closeWrite();
  assert.equal(dec.decode(await readToEnd(c)), text);
  c.close();
}

function framed(width: 1 | 2 | 4, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(width + payload.length);
  let n = payload.length;
  for (let i = width - 1; i >= 0; i--, n = Math.floor(n / 256)) out[i] = n & 255;
  out.set(payload, width);
  return out;
}

for (const width of [1, 2, 4] as const) {
  test(`tcp length-prefix framing (${width} bytes): frames split across writes and many in one write`, async () => {
    await using srv = tcpServer("tcp://127.0.0.1:0", { framing: { lengthPrefix: width } });
    const client = await Deno.connect({ port: srv.port });
    const sizes = width === 1 ? [0, 1, 200, 255] : [0, 1, 255, 256, 3000, 65535];
    const payloads = sizes.map((n, k) => Uint8Array.from({ length: n }, (_, i) => (i + k) & 255));
    const stream = new Uint8Array(payloads.reduce((a, p) => a + width + p.length, 0));
    let at = 0;
    for (const p of payloads) (stream.set(framed(width, p), at), at += width + p.length);
    // Byte by byte for the first frames, then the rest at once.
    for (let i = 0; i < 8; i++) await writeAll(client, stream.subarray(i, i + 1));
    await writeAll(client, stream.subarray(8));
    await until(() => srv.data().length === payloads.length, `${payloads.length} frames`);
    assert.deepEqual(srv.data().map((e) => e.bytes), payloads);
    client.close();
  });
}

test("tcp length-prefix framing: a prefix claiming 4 GB is refused at once, the server serves the next client", async () => {
  await using srv = tcpServer("tcp://127.0.0.1:0", { framing: { lengthPrefix: 4 } }, (ev) => {
    if (ev.type === "data") ev.conn.send(framed(4, ev.bytes));
    if (ev.type === "end") ev.conn.end();
  });
  const hostile = await Deno.connect({ port: srv.port });
  await writeAll(hostile, Uint8Array.of(0xff, 0xff, 0xff, 0xff, 1, 2, 3));
  assert.equal((await readToEnd(hostile)).length, 0);
  hostile.close();
  await until(() => srv.types().includes("close"), "the close event");
  const err = srv.events.find((e) => e.type === "error");
  assert.equal(
    err?.type === "error" && err.message,
    "a frame of 4294967295 bytes is over maxFrame (65536 bytes)",
  );
  // Liveness: another client is served.
  const c = await Deno.connect({ port: srv.port });
  const msg = framed(4, enc.encode("after the hostile one"));
  await writeAll(c, msg);
  assert.deepEqual(await readExactly(c, msg.length), msg);
  c.close();
});

test("tcp pause(): the peer's writes stall once kernel buffers fill; resume() delivers every byte", async () => {
  let paused: TcpConnection | undefined;
  let received = 0;
  await using srv = tcpServer("tcp://127.0.0.1:0", undefined, (ev) => {
    if (ev.type === "open") (paused = ev.conn as TcpConnection).pause();
    if (ev.type === "data") received += ev.bytes.length;
  });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: srv.port });
  await until(() => paused !== undefined, "the open event");
  assert.equal(paused!.paused, true);
  const chunk = new Uint8Array(64 * 1024).fill(7);
  let written = 0;
  let stop = false;
  const writer = (async () => {
    while (!stop) written += await client.write(chunk);
  })();
  const local = (client.localAddr as Deno.NetAddr).port;
  const stalled = await untilStalled(() => written, () => false);
  // Nothing reached the server's JS, and everything written still sits in
  // the kernel's queues between the two sockets: the server read nothing.
  assert.equal(received, 0);
  assert.equal(inFlight(local, srv.port), stalled);
  stop = true;
  paused!.resume();
  await writer; // the pending write completes once the server reads again
  await until(() => received === written, `all ${written} bytes`);
  client.close();
});

test("tcp send() after close() or after the close event throws ConnectionClosedError", async () => {
  let conn: TcpConnection | undefined;
  await using srv = tcpServer("tcp://127.0.0.1:0", undefined, (ev) => {
    if (ev.type === "open") {
      conn = ev.conn as TcpConnection;
      conn.send("bye");
      conn.close();
      assert.throws(() => conn!.send("more"), ConnectionClosedError);
      assert.equal(conn.queued, 0);
    }
  });
  const client = await Deno.connect({ port: srv.port });
  assert.equal(dec.decode(await readToEnd(client)), "bye");
  client.close();
  await until(() => srv.types().includes("close"), "the close event");
  assert.equal(conn!.closed, true);
  assert.throws(() => conn!.send("late"), ConnectionClosedError);
  assert.throws(() => conn!.end(), ConnectionClosedError);
  await assert.rejects(conn!.drain(), ConnectionClosedError);
});

test("tcp Manager.connect(): to a Deno.listen server both ways, and a refused connect is a typed error", async () => {
  const peer = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const c = await peer.accept();
    const question = dec.decode(await readToEnd(c)); // until our end()
    await writeAll(c, enc.encode(`you said ${question}`));
    c.close();
  })();
  await using mgr = new Manager();
  const conn = await mgr.connect(`tcp://localhost:${peer.addr.port}`);
  assert.ok(conn instanceof TcpConnection);
  assert.equal(conn.localAddr?.hostname, "127.0.0.1");
  conn.data = { asked: true };
  assert.ok(conn.send("hi there") >= 0);
  conn.end();
  let text = "";
  const types = [];
  for await (const ev of conn) {
    types.push(ev.type);
    if (ev.type === "data") text += ev.text();
  }
  assert.equal(text, "you said hi there");
  assert.equal(types.at(-1), "end");
  assert.deepEqual(conn.data, { asked: true });
  await served;
  const port = peer.addr.port;
  peer.close();
  await assert.rejects(
    mgr.connect(`tcp://127.0.0.1:${port}`),
    (e) => e instanceof ClientError && e.kind === "refused" && /refused/.test(e.message),
  );
  await assert.rejects(mgr.connect("tcp://127.0.0.1"), TypeError);
  await assert.rejects(
    mgr.connect("tcp://127.0.0.1:1", { framing: "words" as "line" }),
    TypeError,
  );
});

test("tcp handlers: onOpen/onData/onEnd/onClose run for a listener's connections; user data is kept", async () => {
  await using mgr = new Manager();
  const seen: string[] = [];
  const { port } = mgr.listen("tcp://127.0.0.1:0", {
    framing: "line",
    onOpen: (ev) => void (ev.conn.data = { lines: 0 }, seen.push("open")),
    onData: (ev) => {
      (ev.conn.data as { lines: number }).lines++;
      ev.conn.send(`${(ev.conn.data as { lines: number }).lines}: ${ev.text()}\n`);
    },
    onEnd: (ev) => (seen.push("end"), ev.conn.end()),
    onClose: () => void seen.push("close"),
  });
  const c = await Deno.connect({ port });
  await writeAll(c, enc.encode("a\nb\n"));
  await c.closeWrite();
  assert.equal(dec.decode(await readToEnd(c)), "1: a\n2: b\n");
  c.close();
  await until(() => seen.includes("close"), "onClose");
  assert.deepEqual(seen, ["open", "end", "close"]);
  assert.throws(() => mgr.listen("tcp://127.0.0.1:0", { onData: 5 as never }), TypeError);
  assert.throws(() => mgr.listen("tcp://127.0.0.1:0", { maxFrame: 0 }), RangeError);
});

test("tcp: a connection iterated on its own gets its data and end there, not in the manager's loop", async () => {
  await using mgr = new Manager();
  const { port } = mgr.listen("tcp://127.0.0.1:0", { framing: "line" });
  const client = await Deno.connect({ port });
  const managerSaw: string[] = [];
  const own: string[] = [];
  for await (const ev of mgr) {
    managerSaw.push(ev.type);
    if (ev.type === "open") {
      const conn = ev.conn as TcpConnection;
      await writeAll(client, enc.encode("x\ny\n"));
      await client.closeWrite();
      // The manager's loop body awaits this connection's own loop.
      for await (const e of conn) {
        own.push(e.type === "data" ? e.text() : e.type);
        if (e.type === "end") conn.end();
      }
      break;
    }
  }
  assert.deepEqual(own, ["x", "y", "end"]);
  assert.deepEqual(managerSaw, ["open"]);
  client.close();
});

for (const mode of ["drain", "unawaited"] as const) {
  test(`tcp memory: echoing 64 MB to a slow reader (${mode})`, { timeoutMs: 90_000 }, async () => {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--v8-flags=--expose-gc",
        new URL("./fixtures/tcp_echo_server.ts", import.meta.url).pathname,
        mode,
      ],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    try {
      const first = (await reader.read()).value ?? "";
      assert.match(first, /^port \d+\n$/);
      const rssBefore = residentBytes(child.pid);
      let maxRss = rssBefore;
      const total = 64 << 20;
      const { received, mismatch } = await slowEcho(Number(first.slice(5)), total, () => {
        maxRss = Math.max(maxRss, residentBytes(child.pid));
      });
      assert.equal(mismatch, -1, `echoed byte ${mismatch} differs`);
      assert.equal(received, total);
      const grew = maxRss - rssBefore;
      // The bound: 1 MiB the server lets queue before awaiting drain() (its
      // send buffer), one 64 KiB read, the live event arenas and the JS
      // heap's slack; the fixture collects garbage every MiB so dead arenas
      // do not count. The unawaited variant holds what the reader has not
      // taken yet: tens of MB.
      // Under `deno task test:asan` the server inherits AddressSanitizer,
      // whose quarantine holds up to 16 MB of freed blocks (scripts/test.ts).
      const bound = (32 << 20) + (/asan/.test(Deno.env.get("LD_PRELOAD") ?? "") ? 16 << 20 : 0);
      if (mode === "drain") assert.ok(grew < bound, `server RSS grew by ${grew >> 20} MB`);
      else assert.ok(grew > bound, `server RSS grew by only ${grew >> 20} MB without drain()`);
    } finally {
      await child.stdin.close();
      await reader.cancel();
      assert.equal((await child.status).code, 0);
    }
  });
}

/** The byte at position `i` of the test stream. */
const patternAt = (i: number) => (i * 31 + (i >>> 12)) & 255;

/**
 * Writes `total` pattern bytes and reads the echo like a slow reader (16 KiB
 * reads, 1 ms pause every 4), concurrently; checks every byte.
 */
async function slowEcho(port: number, total: number, onPause: () => void) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const writer = (async () => {
    const chunk = new Uint8Array(256 * 1024);
    for (let off = 0; off < total; off += chunk.length) {
      for (let i = 0; i < chunk.length; i++) chunk[i] = patternAt(off + i);
      await writeAll(conn, chunk);
    }
    await conn.closeWrite();
  })();
  const buf = new Uint8Array(16 * 1024);
  let received = 0;
  let mismatch = -1;
  for (let reads = 1;; reads++) {
    const n = await conn.read(buf);
    if (n === null) break;
    for (let i = 0; i < n && mismatch < 0; i++) {
      if (buf[i] !== patternAt(received + i)) mismatch = received + i;
    }
    received += n;
    if (reads % 4 === 0) {
      await new Promise((r) => setTimeout(r, 1));
      onPause();
    }
  }
  await writer;
  conn.close();
  return { received, mismatch };
}

function residentBytes(pid: number): number {
  const kb = Deno.readTextFileSync(`/proc/${pid}/status`).match(/^VmRSS:\s+(\d+) kB$/m);
  assert.ok(kb, "VmRSS in /proc/PID/status");
  return Number(kb[1]) * 1024;
}
