/**
 * WebSocket memory bounds: a server in a child process (its RSS alone, see
 * tests/fixtures/ws_flood_server.ts) sends 64 MiB to a raw peer that
 * upgrades and then never reads. With `drained()` the server's queue stays
 * at 1 MiB; with sends never awaited, `maxBufferedAmount` (16 MiB by
 * default) closes the socket with 1006; without that limit the same code
 * holds all 64 MiB (so the bound is the limit's doing). Afterwards the
 * server still answers another client.
 */
import assert from "node:assert/strict";
import { test, writeAll } from "./helpers.ts";

const enc = new TextEncoder();
const MiB = 1 << 20;
/** Under `deno task test:asan` the server inherits AddressSanitizer, whose quarantine holds up to 16 MB of freed blocks. */
const ASAN = /asan/.test(Deno.env.get("LD_PRELOAD") ?? "") ? 16 * MiB : 0;
/** `WS_MEMORY_VERBOSE=1` prints the measurements. */
const note = Deno.env.get("WS_MEMORY_VERBOSE") ? console.log : () => {};

function residentBytes(pid: number): number {
  const kb = Deno.readTextFileSync(`/proc/${pid}/status`).match(/^VmRSS:\s+(\d+) kB$/m);
  assert.ok(kb, "VmRSS in /proc/PID/status");
  return Number(kb[1]) * 1024;
}

/** Upgrades a raw connection to `path` and reads only the 101's head. */
async function rawUpgrade(port: number, path: string): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(
    conn,
    enc.encode(
      `GET ${path} HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n` +
        "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
    ),
  );
  // Read byte by byte up to the blank line: nothing of the flood after it.
  const one = new Uint8Array(1);
  let head = "";
  while (!head.endsWith("\r\n\r\n")) {
    const n = await conn.read(one);
    if (n === null) throw new Error(`EOF in the 101: ${JSON.stringify(head)}`);
    head += String.fromCharCode(one[0]);
  }
  assert.match(head, /^HTTP\/1\.1 101 /);
  return conn;
}

/** A Deno WebSocket gets an echo from the server (the liveness check). */
async function assertEchoes(port: number): Promise<void> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/echo`);
  const got = await new Promise<string>((resolve, reject) => {
    ws.onopen = () => ws.send("still there?");
    ws.onmessage = (e) => resolve(e.data);
    ws.onerror = () => reject(new Error("the liveness socket failed"));
  });
  assert.equal(got, "still there?");
  const closed = new Promise((r) => ws.onclose = r);
  ws.close();
  await closed;
}

/** Runs the fixture in `mode`; yields its output lines to `body`. */
async function withServer(
  mode: string,
  body: (port: number, pid: number, line: () => Promise<string>) => Promise<void>,
): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL("./fixtures/ws_flood_server.ts", import.meta.url).pathname,
      mode,
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  const line = async () => {
    while (!buf.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`the server's output ended: ${JSON.stringify(buf)}`);
      buf += value;
    }
    const i = buf.indexOf("\n");
    const l = buf.slice(0, i);
    buf = buf.slice(i + 1);
    return l;
  };
  try {
    const first = await line();
    assert.match(first, /^port \d+$/);
    await body(Number(first.slice(5)), child.pid, line);
  } finally {
    await child.stdin.close();
    await lines.cancel();
    assert.equal((await child.status).code, 0);
  }
}

test(
  "ws memory: a peer that never reads, server awaiting drained(): RSS stays bounded, keep-alive closes it",
  {
    timeoutMs: 60_000,
  },
  async () => {
    await withServer("drain", async (port, pid, line) => {
      const peer = await rawUpgrade(port, "/flood");
      const start = await line();
      assert.match(start, /^rss \d+$/);
      const rssBefore = Number(start.slice(4));
      // Until the socket closes (the peer answers no ping: 1.5 s without a
      // byte from it, then 1.5 s more; the close frame cannot pass the unread
      // output, so the connection goes 0.5 s later), sample the server's RSS.
      let maxRss = rssBefore;
      let sent = 0;
      let closed: string | undefined;
      const sampler = setInterval(() => maxRss = Math.max(maxRss, residentBytes(pid)), 5);
      try {
        while (closed === undefined) {
          const l = await line();
          if (l.startsWith("sent ")) sent = Number(l.slice(5));
          else if (l.startsWith("closed ")) closed = l;
          else throw new Error(`unexpected line ${l}`);
        }
      } finally {
        clearInterval(sampler);
      }
      const [code, total, maxBuffered] = closed.split(" ").slice(1).map(Number);
      assert.equal(code, 1001, closed);
      assert.ok(total >= sent && total - sent < MiB, `${total} after sent ${sent}`);
      // It stalled: the kernel's buffers (a few MB on loopback) and the
      // socket's 1 MiB, far from the 64 MiB it wanted to send.
      assert.ok(total < 32 * MiB, `the server sent ${total} bytes to a peer that never reads`);
      // The queue: 1 MiB before awaiting drained(), one 64 KiB message more.
      assert.ok(maxBuffered <= MiB + 64 * 1024 + 14, `bufferedAmount reached ${maxBuffered}`);
      // RSS: that queue (≤ 1.1 MiB, Mongoose's send buffer included), the
      // receive buffer, one event arena (128 KiB) and the JS heap's slack:
      // under 8 MiB over the RSS when the socket opened (after a GC);
      // measured +3.7 and +3.8 MiB.
      const grew = maxRss - rssBefore;
      note(`drain: sent ${total}, max bufferedAmount ${maxBuffered}, RSS +${(grew / MiB).toFixed(1)} MiB`);
      assert.ok(grew < 8 * MiB + ASAN, `server RSS grew by ${(grew / MiB).toFixed(1)} MiB`);
      await assertEchoes(port);
      peer.close();
    });
  },
);

for (const mode of ["unawaited", "unlimited"] as const) {
  test(`ws memory: upgradeWebSocket sends 64 MiB unawaited to a peer that never reads (${mode})`, {
    timeoutMs: 60_000,
  }, async () => {
    await withServer(mode, async (port, _pid, line) => {
      const peer = await rawUpgrade(port, "/flood");
      const start = await line();
      assert.match(start, /^rss \d+$/);
      const rssBefore = Number(start.slice(4));
      assert.equal(await line(), `sent ${64 * MiB}`);
      if (mode === "unlimited") {
        // Deno's behaviour: everything waits in memory. The peer goes away,
        // so the socket closes (1006) and the test ends.
        peer.close();
      }
      const closed = await line();
      const [code, , maxBuffered, peak] = closed.split(" ").slice(1).map(Number);
      assert.equal(code, 1006, closed);
      const grew = peak - rssBefore;
      note(`${mode}: code ${code}, max bufferedAmount ${maxBuffered}, RSS +${(grew / MiB).toFixed(1)} MiB`);
      if (mode === "unawaited") {
        // The limit: a send that finds more than 16 MiB unsent fails the
        // socket, so at most 16 MiB + one 64 KiB frame is ever queued.
        assert.ok(maxBuffered <= 16 * MiB + 64 * 1024 + 14, `bufferedAmount reached ${maxBuffered}`);
        assert.ok(maxBuffered > 15 * MiB, `bufferedAmount only reached ${maxBuffered}`);
        // RSS: those 16 MiB and one message, plus allocator and JS heap
        // slack (the overflow queue grows by mremap, without a second copy):
        // under 24 MiB; measured +16.8 to +17.1 MiB.
        assert.ok(grew < 24 * MiB + ASAN, `server RSS grew by ${(grew / MiB).toFixed(1)} MiB`);
        peer.close();
      } else {
        // Without the limit the same code holds what the peer did not take.
        assert.ok(maxBuffered > 48 * MiB, `bufferedAmount reached only ${maxBuffered}`);
        assert.ok(grew > 48 * MiB, `server RSS grew by only ${(grew / MiB).toFixed(1)} MiB`);
      }
      await assertEchoes(port);
    });
  });
}
