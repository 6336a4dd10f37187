/**
 * mgnet's `serve()` against `Deno.serve`, side by side, as `deno bench`
 * prints it: in every group Deno.serve (or Deno.upgradeWebSocket) is the
 * baseline, so the summary reads
 * "mgnet is N× faster/slower than Deno.serve". `deno task bench` runs this
 * file with the other benches in bench/.
 *
 * Each server runs in its own process (bench/servers/serve_pair.ts) with
 * the same fetch-style handler; the client, in this process, is the same
 * raw `Deno.connect` code for both, on one keep-alive connection per
 * server. Each iteration is one full round trip, so the time is latency:
 * server work plus wake-ups plus the client's share (equal for both), and
 * the ratio understates the difference in server work. The servers are not
 * in this process because mgnet's loop waits synchronously for short spells
 * while busy (src/core/loop.ts), which would stall an in-process client:
 * measured at ~1.3 ms per round trip, a benchmark artifact, not a server cost.
 * `deno task bench:http` measures server CPU alone, with an external load
 * generator.
 */
const HELLO = "Hello, World!";
const BIG = 64 * 1024;
const PIPELINE = 16;

/** Starts bench/servers/serve_pair.ts in its own process and reads its port. */
async function start(server: "mgnet" | "deno"): Promise<{ port: number; child: Deno.ChildProcess }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", "--allow-env", "--allow-read", "--allow-net", "servers/serve_pair.ts"],
    cwd: new URL(".", import.meta.url),
    env: { SERVER: server, PORT: "0" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the ${server} server exited before listening`);
    text += value;
    const m = /Listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(text);
    if (m) {
      reader.releaseLock();
      child.stdout.cancel().catch(() => {});
      return { port: Number(m[1]), child };
    }
  }
}

const mg = await start("mgnet");
const dn = await start("deno");

const enc = new TextEncoder();
const GET = enc.encode("GET / HTTP/1.1\r\nHost: bench\r\n\r\n");
const GET_BURST = enc.encode("GET / HTTP/1.1\r\nHost: bench\r\n\r\n".repeat(PIPELINE));
const GET_64K = enc.encode("GET /64k HTTP/1.1\r\nHost: bench\r\n\r\n");

/**
 * A keep-alive client that reads whole responses (Content-Length framed):
 * independent of both servers' code.
 */
class Client {
  #conn: Deno.Conn;
  #buf = new Uint8Array(1 << 20);
  #len = 0;
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }
  static async open(port: number): Promise<Client> {
    return new Client(await Deno.connect({ hostname: "127.0.0.1", port }));
  }
  /** Sends `req` and reads `n` responses, checking each body's length. */
  async exchange(req: Uint8Array, n: number, bodyLen: number): Promise<void> {
    await this.#conn.write(req);
    for (let i = 0; i < n; i++) await this.#response(bodyLen);
  }
  async #response(bodyLen: number): Promise<void> {
    for (;;) {
      const end = this.#headEnd();
      if (end >= 0) {
        const head = new TextDecoder().decode(this.#buf.subarray(0, end));
        const m = /\r\ncontent-length: *(\d+)/i.exec(head);
        if (!m || Number(m[1]) !== bodyLen || !head.startsWith("HTTP/1.1 200")) {
          throw new Error(`unexpected response head: ${head}`);
        }
        const total = end + 4 + bodyLen;
        while (this.#len < total) await this.#fill();
        this.#buf.copyWithin(0, total, this.#len);
        this.#len -= total;
        return;
      }
      await this.#fill();
    }
  }
  #headEnd(): number {
    const b = this.#buf;
    for (let i = 3; i < this.#len; i++) {
      if (b[i] === 10 && b[i - 1] === 13 && b[i - 2] === 10 && b[i - 3] === 13) return i - 3;
    }
    return -1;
  }
  async #fill(): Promise<void> {
    const n = await this.#conn.read(this.#buf.subarray(this.#len));
    if (n === null) throw new Error("connection closed");
    this.#len += n;
  }
  close(): void {
    this.#conn.close();
  }
}

const mgc = await Client.open(mg.port);
const dnc = await Client.open(dn.port);

Deno.bench({
  name: "Deno.serve",
  group: "hello: one GET, 13-byte body, keep-alive round trip",
  baseline: true,
  fn: async () => await dnc.exchange(GET, 1, HELLO.length),
});
Deno.bench({
  name: "mgnet serve()",
  group: "hello: one GET, 13-byte body, keep-alive round trip",
  fn: async () => await mgc.exchange(GET, 1, HELLO.length),
});

Deno.bench({
  name: "Deno.serve",
  group: `pipelined: ${PIPELINE} GETs in one write, all responses read`,
  baseline: true,
  fn: async () => await dnc.exchange(GET_BURST, PIPELINE, HELLO.length),
});
Deno.bench({
  name: "mgnet serve()",
  group: `pipelined: ${PIPELINE} GETs in one write, all responses read`,
  fn: async () => await mgc.exchange(GET_BURST, PIPELINE, HELLO.length),
});

Deno.bench({
  name: "Deno.serve",
  group: "64 KB: one GET answered with a 64 KiB body",
  baseline: true,
  fn: async () => await dnc.exchange(GET_64K, 1, BIG),
});
Deno.bench({
  name: "mgnet serve()",
  group: "64 KB: one GET answered with a 64 KiB body",
  fn: async () => await mgc.exchange(GET_64K, 1, BIG),
});

/** One open WebSocket (Deno's own client, the same for both servers): send, await the echo. */
class Echo {
  #next: ((data: unknown) => void) | undefined;
  private constructor(readonly ws: WebSocket) {
    ws.onmessage = (e) => this.#next?.(e.data);
  }
  static async open(port: number): Promise<Echo> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    return new Echo(ws);
  }
  exchange(msg: string): Promise<unknown> {
    const { promise, resolve } = Promise.withResolvers<unknown>();
    this.#next = resolve;
    this.ws.send(msg);
    return promise;
  }
}

const WS_MSG = "x".repeat(32);
const mgws = await Echo.open(mg.port);
const dnws = await Echo.open(dn.port);

Deno.bench({
  name: "Deno.upgradeWebSocket",
  group: "websocket: one 32-byte text message echoed on an open socket",
  baseline: true,
  fn: async () => {
    if (await dnws.exchange(WS_MSG) !== WS_MSG) throw new Error("wrong echo");
  },
});
Deno.bench({
  name: "mgnet upgradeWebSocket",
  group: "websocket: one 32-byte text message echoed on an open socket",
  fn: async () => {
    if (await mgws.exchange(WS_MSG) !== WS_MSG) throw new Error("wrong echo");
  },
});

// `deno bench` has no after-all hook: the servers are stopped when this
// module's process unloads.
globalThis.addEventListener("unload", () => {
  mgc.close();
  dnc.close();
  mgws.ws.close();
  dnws.ws.close();
  for (const { child } of [mg, dn]) {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
  }
});
