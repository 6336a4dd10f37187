/**
 * Test helpers: a served manager with a handler, raw-socket exchanges and
 * a small HTTP/1.1 response parser (independent of mgnet's own code).
 */
import assert from "node:assert/strict";
import { type HttpRequestEvent, Manager, type ManagerOptions, type MgEvent } from "../mod.ts";

/** Options of {@linkcode test}. */
export interface TestOptions {
  /** The test fails if it has not finished after this many ms (default 30 s). */
  timeoutMs?: number;
  /** Skip it (used for tests that expose a known bug: see their `// BUG:` comment). */
  ignore?: boolean;
}

/** A test body. */
export type TestFn = (t: Deno.TestContext) => void | Promise<void>;

/** Default per-test deadline. */
export const TEST_TIMEOUT_MS = 30_000;

/**
 * `Deno.test` with a deadline: the body races a timer, and a test that has
 * not finished by then fails with a message naming it (instead of hanging
 * until CI's job limit). The timer is cleared when the body settles.
 */
export function test(name: string, fn: TestFn, opts?: TestOptions): void;
export function test(name: string, opts: TestOptions, fn: TestFn): void;
export function test(name: string, a: TestFn | TestOptions, b?: TestFn | TestOptions): void {
  const fn = (typeof a === "function" ? a : b) as TestFn;
  const opts = ((typeof a === "function" ? b : a) ?? {}) as TestOptions;
  const ms = opts.timeoutMs ?? TEST_TIMEOUT_MS;
  Deno.test({
    name,
    ignore: opts.ignore,
    async fn(t) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`deadline: test "${name}" did not finish within ${ms} ms`)),
          ms,
        );
      });
      try {
        await Promise.race([(async () => await fn(t))(), deadline]);
      } finally {
        clearTimeout(timer);
      }
    },
  });
}

/**
 * Reads a text stream until `done(textSoFar)` holds. Throws (with the text
 * read so far) at EOF or after `ms`; never hangs.
 */
export async function readUntil(
  reader: ReadableStreamDefaultReader<string>,
  done: (text: string) => boolean,
  what = "the expected output",
  ms = 10_000,
  initial = "",
): Promise<string> {
  let text = initial;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${ms} ms waiting for ${what}; read: ${JSON.stringify(text)}`)),
      ms,
    );
  });
  try {
    while (!done(text)) {
      const { value, done: eof } = await Promise.race([reader.read(), timeout]);
      if (eof) throw new Error(`EOF before ${what}; read: ${JSON.stringify(text)}`);
      text += value;
    }
  } finally {
    clearTimeout(timer);
  }
  return text;
}

/** A running manager with its loop. */
export interface TestServer extends AsyncDisposable {
  mgr: Manager;
  port: number;
  /** Every event the loop saw, in order. */
  events: MgEvent[];
  /** Resolves when the loop ends; rejects if the handler threw. */
  done: Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts a manager listening on an ephemeral port, calling `onHttp` for
 * every request (synchronously inside the loop).
 */
export function serve(
  onHttp: (ev: HttpRequestEvent, srv: TestServer) => void,
  options: ManagerOptions & { host?: string } = {},
): TestServer {
  const mgr = new Manager(options);
  const listener = mgr.listen(`http://${options.host ?? "127.0.0.1"}:0`);
  const srv = { mgr, port: listener.port, events: [] as MgEvent[] } as TestServer;
  srv.done = (async () => {
    for await (const ev of mgr) {
      srv.events.push(ev);
      if (ev.type === "http") onHttp(ev, srv);
    }
  })();
  srv.close = async () => {
    await mgr.close();
    await srv.done;
  };
  srv[Symbol.asyncDispose] = srv.close;
  return srv;
}

/** A handler answering `200` with `path` as the body. */
export const echoPath = (ev: HttpRequestEvent): void => {
  ev.reply(200, ev.path);
};

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A parsed HTTP response. */
export interface RawResponse {
  status: number;
  reason: string;
  headers: Map<string, string>;
  body: Uint8Array;
  text: string;
}

/**
 * Parses as many complete responses as `buf` holds. `noBody[i]` marks the
 * i-th response as an answer to HEAD (no body whatever its length says).
 */
export function parseResponses(
  buf: Uint8Array,
  noBody: boolean[] = [],
): { responses: RawResponse[]; rest: number } {
  const out: RawResponse[] = [];
  let pos = 0;
  for (;;) {
    let end = -1;
    for (let i = pos; i + 3 < buf.length; i++) {
      if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) {
        end = i;
        break;
      }
    }
    if (end < 0) break;
    const lines = dec.decode(buf.subarray(pos, end)).split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0]);
    if (!m) throw new Error(`bad status line: ${JSON.stringify(lines[0])}`);
    const headers = new Map<string, string>();
    for (const l of lines.slice(1)) {
      const c = l.indexOf(":");
      const k = l.slice(0, c).toLowerCase();
      const v = l.slice(c + 1).trim();
      headers.set(k, headers.has(k) ? `${headers.get(k)}, ${v}` : v);
    }
    const status = Number(m[1]);
    const skip = noBody[out.length] || status === 204 || status === 304 || status < 200;
    let body: Uint8Array;
    if (!skip && /chunked/i.test(headers.get("transfer-encoding") ?? "")) {
      const chunked = decodeChunked(buf, end + 4);
      if (!chunked) break;
      body = chunked.body;
      pos = chunked.end;
    } else {
      const len = skip ? 0 : Number(headers.get("content-length") ?? 0);
      if (end + 4 + len > buf.length) break;
      body = buf.slice(end + 4, end + 4 + len);
      pos = end + 4 + len;
    }
    out.push({ status, reason: m[2], headers, body, text: dec.decode(body) });
  }
  return { responses: out, rest: pos };
}

/** Decodes a chunked body starting at `at`; undefined if incomplete. */
function decodeChunked(buf: Uint8Array, at: number): { body: Uint8Array; end: number } | undefined {
  const parts: Uint8Array[] = [];
  let pos = at;
  for (;;) {
    let nl = pos;
    while (nl + 1 < buf.length && !(buf[nl] === 13 && buf[nl + 1] === 10)) nl++;
    if (nl + 1 >= buf.length) return undefined;
    const size = parseInt(dec.decode(buf.subarray(pos, nl)).split(";")[0], 16);
    pos = nl + 2;
    if (size === 0) {
      // Trailer section: lines until an empty one.
      for (;;) {
        let e = pos;
        while (e + 1 < buf.length && !(buf[e] === 13 && buf[e + 1] === 10)) e++;
        if (e + 1 >= buf.length) return undefined;
        const empty = e === pos;
        pos = e + 2;
        if (empty) break;
      }
      const body = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
      let o = 0;
      for (const p of parts) {
        body.set(p, o);
        o += p.length;
      }
      return { body, end: pos };
    }
    if (pos + size + 2 > buf.length) return undefined;
    parts.push(buf.subarray(pos, pos + size));
    pos += size + 2;
  }
}

/** Options of {@linkcode exchange}. */
export interface ExchangeOptions {
  /** Stop once this many responses arrived (default: read until EOF). */
  responses?: number;
  /** Which responses answer HEAD requests. */
  noBody?: boolean[];
  /** Half-close our side after writing. */
  closeWrite?: boolean;
  /** Give up after this many ms (default 10 s) and return what arrived. */
  timeoutMs?: number;
  /**
   * After the wanted `responses`, send one more request (a GET with
   * `Connection: close`) on the same connection and read its answer:
   * `usable` says whether it came. This is how a test shows a connection
   * stayed open, since stopping after N responses never sees an EOF.
   */
  probe?: boolean;
}

/** Result of {@linkcode exchange}. */
export interface Exchange {
  responses: RawResponse[];
  /** Everything received. */
  raw: Uint8Array;
  /** True if the server closed the connection (EOF or reset). */
  closed: boolean;
  /** True if the timeout ended the read. */
  timedOut: boolean;
  /** With `probe`: a further request on the same connection was answered. */
  usable?: boolean;
}

/**
 * Connects, writes `data` (chunks written one by one), reads until the
 * wanted number of responses, EOF, a reset, or the timeout.
 */
export async function exchange(
  port: number,
  data: string | Uint8Array | (string | Uint8Array)[],
  opts: ExchangeOptions = {},
): Promise<Exchange> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const chunks = Array.isArray(data) ? data : [data];
    for (const c of chunks) await writeAll(conn, typeof c === "string" ? enc.encode(c) : c);
    if (opts.closeWrite) await conn.closeWrite();
    const r = await readResponses(conn, opts);
    if (!opts.probe) return r;
    if (opts.responses === undefined) throw new Error("probe needs a number of responses");
    r.usable = false;
    if (r.closed || r.timedOut || r.responses.length < opts.responses) return r;
    try {
      await writeAll(conn, enc.encode("GET /probe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
    } catch {
      return r; // the server had closed it
    }
    const more = await readResponses(conn, { responses: 1, timeoutMs: opts.timeoutMs });
    r.usable = more.responses.length === 1 && more.responses[0].status < 400;
    return r;
  } finally {
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

/** Writes all of `data`. */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** Reads responses from an open connection (see {@linkcode exchange}). */
export async function readResponses(conn: Deno.Conn, opts: ExchangeOptions = {}): Promise<Exchange> {
  // Bytes received live in raw[0..len]; responses before `parsed` are counted.
  let raw = new Uint8Array(64 * 1024);
  let len = 0;
  let parsed = 0;
  let counted = 0;
  let closed = false;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn.close();
    } catch { /* closed already */ }
  }, opts.timeoutMs ?? 10_000);
  try {
    for (;;) {
      if (opts.responses !== undefined) {
        const { responses, rest } = parseResponses(raw.subarray(parsed, len), opts.noBody?.slice(counted));
        counted += responses.length;
        parsed += rest;
        if (counted >= opts.responses) break;
      }
      if (raw.length - len < 64 * 1024) {
        const bigger = new Uint8Array(raw.length * 2);
        bigger.set(raw.subarray(0, len));
        raw = bigger;
      }
      let n: number | null;
      try {
        n = await conn.read(raw.subarray(len, len + 64 * 1024));
      } catch (e) {
        if (timedOut) break;
        if (e instanceof Deno.errors.ConnectionReset || e instanceof Deno.errors.BadResource) {
          closed = true;
          break;
        }
        throw e;
      }
      if (n === null) {
        closed = true;
        break;
      }
      len += n;
    }
  } finally {
    clearTimeout(timer);
  }
  raw = raw.slice(0, len);
  return { responses: parseResponses(raw, opts.noBody).responses, raw, closed, timedOut };
}

/** A GET over a fresh connection, answered with `Connection: close`. */
export function get(port: number, path = "/"): Promise<Exchange> {
  return exchange(port, `GET ${path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`);
}

/** Asserts-by-throwing that the server answers a normal request. */
export async function assertAlive(port: number): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/alive`);
  const text = await res.text();
  if (res.status !== 200 || text !== "/alive") {
    throw new Error(`server not answering after the hostile input: ${res.status} ${text}`);
  }
}

/** Polls `pred` every few ms until it holds; throws after `ms` (default 10 s). */
export async function until(
  pred: () => boolean | Promise<boolean>,
  what = "condition",
  ms = 10_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/**
 * Waits until `progress()` stops changing, or `done()`. "Stopped" means the
 * same value on every check for `quietMs` (default 500 ms) AND over at
 * least `minChecks` consecutive checks (default 50): a scheduler pause of
 * this process makes no checks, so it cannot pass for a stall, and a pause
 * of the other side shorter than `quietMs` does not either. Callers then
 * assert the exact bound on the quantity (this only says when to look).
 * Returns the value it settled at.
 */
export async function untilStalled(
  progress: () => number,
  done: () => boolean,
  { quietMs = 500, minChecks = 50, ms = 20_000 } = {},
): Promise<number> {
  let last = -1, since = 0, checks = 0;
  await until(
    () => {
      const now = progress();
      if (now !== last) {
        last = now;
        since = Date.now();
        checks = 0;
        return done();
      }
      checks++;
      return done() || (now > 0 && checks >= minChecks && Date.now() - since >= quietMs);
    },
    "progress to stop",
    ms,
  );
  return last;
}

/**
 * The kernel queues of the TCP socket on this machine whose local port is
 * `localPort` and remote port `remotePort`, from /proc/net/tcp{,6}: `tx`
 * bytes written but not yet acknowledged by the peer, `rx` bytes received
 * but not yet read by its process. Lets a test tell bytes a process took
 * from its socket apart from bytes still in flight, with no guess about
 * socket buffer sizes (loopback autotuning lets them grow to tcp_rmem[2] =
 * 32 MiB and tcp_wmem[2] = 4 MiB here).
 */
export function kernelQueues(localPort: number, remotePort: number): { tx: number; rx: number } {
  let tx = 0, rx = 0, found = false;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 5) continue;
      const lp = parseInt(f[1].split(":")[1], 16);
      const rp = parseInt(f[2].split(":")[1], 16);
      if (lp !== localPort || rp !== remotePort) continue;
      const [t, r] = f[4].split(":").map((x) => parseInt(x, 16));
      tx += t;
      rx += r;
      found = true;
    }
  }
  if (!found) throw new Error(`no TCP socket ${localPort} -> ${remotePort} in /proc/net/tcp`);
  return { tx, rx };
}

/**
 * Bytes in flight from the socket on `fromPort` to the one on `toPort` (both
 * ends on this machine): the sender's send queue plus the receiver's unread
 * receive queue.
 */
export function inFlight(fromPort: number, toPort: number): number {
  return kernelQueues(fromPort, toPort).tx + kernelQueues(toPort, fromPort).rx;
}

/**
 * A stream of `total` bytes in 64 KiB chunks, produced only when pulled
 * (no read-ahead); `pulled()` says how much the consumer has asked for.
 */
export function countingStream(
  total: number,
  fill = 0,
): { stream: ReadableStream<Uint8Array>; pulled: () => number } {
  const chunk = new Uint8Array(64 * 1024).fill(fill);
  let pulled = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (pulled >= total) return c.close();
      pulled += chunk.length;
      c.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
  return { stream, pulled: () => pulled };
}

/** True if a TCP connect to the port is refused. */
export async function refused(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return false;
  } catch (e) {
    if (e instanceof Deno.errors.ConnectionRefused) return true;
    if (e instanceof Deno.errors.ConnectionReset) return false; // closing right now
    throw e;
  }
}

/**
 * Environment for external tools (curl, ab): drops an AddressSanitizer
 * preload that `deno task test:asan` puts on this process, which such
 * tools do not expect (curl deadlocks under it).
 */
export const toolEnv: Record<string, string> = { LD_PRELOAD: "" };

/**
 * A self-signed P-256 certificate and key (PEM) made with openssl in `dir`
 * (files `<cn>.pem`, `<cn>.key`), for `cn` with the subjectAltName `san`
 * (e.g. `DNS:localhost,IP:127.0.0.1`).
 */
export function makeCert(dir: string, cn: string, san: string): { cert: string; key: string } {
  const out = new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      `${dir}/${cn}.key`,
      "-out",
      `${dir}/${cn}.pem`,
      "-days",
      "2",
      "-subj",
      `/CN=${cn}`,
      "-addext",
      `subjectAltName=${san}`,
      // Not a CA: webpki (mgnet's client, Deno's fetch) refuses a CA
      // certificate as the server's own.
      "-addext",
      "basicConstraints=critical,CA:FALSE",
    ],
    env: toolEnv,
    stderr: "null",
  }).outputSync();
  assert.ok(out.success, "openssl made a certificate");
  return { cert: Deno.readTextFileSync(`${dir}/${cn}.pem`), key: Deno.readTextFileSync(`${dir}/${cn}.key`) };
}
