/**
 * A `node:net`-compatible TCP socket over mgnet's TCP, so npm drivers that
 * take a socket (`npm:postgres` through its `socket` option) run their I/O
 * on mgnet's loop instead of Deno's reactor.
 *
 * {@linkcode Socket} is a `node:events` EventEmitter with the events and
 * methods drivers use: `connect`/`ready`, `data` (a `Buffer`), `end`,
 * `drain`, `timeout`, `error` and `close(hadError)`; `write(buf, cb)`
 * (false over `writableHighWaterMark`, then `drain`), `end()`,
 * `destroy(err?)`, `pause()`/`resume()`, `setNoDelay`, `setKeepAlive`,
 * `setTimeout`, `ref`/`unref`, `remoteAddress`/`remotePort`, `readyState`.
 *
 * Which loop: a socket runs on `options.manager` if given (pass
 * `server.manager` of a {@linkcode serve} server so a handler's database
 * traffic shares the server's loop), else on a shared manager of this
 * thread, made on first use. That manager does not keep the process alive
 * while idle; its open connections do.
 *
 * TLS in-band works as in Node: `tls.connect({ socket })` from `node:tls`
 * runs TLS over this socket (what npm:postgres does with `ssl`, after its
 * plaintext SSLRequest); {@linkcode Socket.startTls} is the same call. The
 * TLS records travel on mgnet's loop; the TLS itself is Deno's `node:tls`.
 * `setNoDelay(false)` and
 * `setKeepAlive(false)` are ignored: Mongoose sets `TCP_NODELAY` and
 * `SO_KEEPALIVE` on every connection. `ref()`/`unref()` are accepted and do
 * nothing: an open socket keeps the process alive.
 *
 * @example npm:postgres over mgnet
 * ```ts ignore
 * import postgres from "npm:postgres";
 * import { createConnection } from "@mgnet/mgnet/node-net";
 *
 * const sql = postgres({ socket: ({ host: [host], port: [port] }) => createConnection({ host, port }) });
 * console.log(await sql`select 1 as one`);
 * ```
 *
 * @module
 */

import { EventEmitter } from "node:events";
import { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import { Manager } from "../manager.ts";
import type { TcpConnection } from "../net/tcp.ts";
import { tcpInternals } from "../net/tcp.ts";

/** Default `writableHighWaterMark`, as in Node.js. */
const HIGH_WATER = 16 * 1024;

let shared: Manager | undefined;

/** This thread's shared manager, made on first use (and again if it was closed). */
function sharedManager(): Manager {
  if (!shared || shared.closed) shared = new Manager();
  return shared;
}

/** Options of {@linkcode createConnection} and {@linkcode Socket.connect}. */
export interface SocketConnectOptions {
  /** The port. */
  port: number;
  /** Host name or IP address (default `"localhost"`). */
  host?: string;
  /** The manager to run on (default: the shared manager of this thread). */
  manager?: Manager;
  /** Most ms to connect (default 10 000). */
  timeout?: number;
}

/** Options of the {@linkcode Socket} constructor. */
export interface SocketOptions {
  /** Keep our side open after the peer's `end` (default false: end ours too, as Node does). */
  allowHalfOpen?: boolean;
  /** Bytes queued above which `write()` returns false (default 16 KiB). */
  writableHighWaterMark?: number;
  /** The manager to run on (default: the shared manager of this thread). */
  manager?: Manager;
}

/** A socket error with Node's `code` (`ECONNREFUSED`, `ETIMEDOUT`, `ECONNRESET`, `EPIPE`...). */
export interface SocketError extends Error {
  /** Node-style error code. */
  code: string;
  /** The system call, for connect errors (`"connect"`). */
  syscall?: string;
  /** The address connected to. */
  address?: string;
  /** The port connected to. */
  port?: number;
}

function socketError(message: string, code: string, extra: Partial<SocketError> = {}): SocketError {
  return Object.assign(new Error(message), { code }, extra) as SocketError;
}

/** A write or end callback: called with an error if the socket closed first. */
export type SocketCallback = (err?: Error | null) => void;

/**
 * A `node:net`-style TCP client socket on an mgnet manager. See the module
 * docs for what is supported.
 *
 * @example Against a Deno.listen echo peer
 * ```ts
 * import assert from "node:assert/strict";
 * import { createConnection } from "./net.ts";
 *
 * const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * (async () => {
 *   for await (const c of server) c.readable.pipeTo(c.writable); // echo
 * })();
 * const sock = createConnection({ port: server.addr.port, host: "127.0.0.1" });
 * sock.write("hello"); // buffered until connected
 * const got = await new Promise((resolve) => sock.once("data", (b) => resolve(b.toString())));
 * assert.equal(got, "hello");
 * sock.end();
 * await new Promise((resolve) => sock.once("close", resolve));
 * assert.equal(sock.readyState, "closed");
 * server.close();
 * ```
 */
export class Socket extends EventEmitter {
  #mgr: Manager | undefined;
  #conn: TcpConnection | undefined;
  #allowHalfOpen: boolean;
  #hwm: number;
  /** Writes made before the connection opened. */
  #pending: Uint8Array[] = [];
  #pendingCbs: SocketCallback[] = [];
  #pendingBytes = 0;
  /** Callbacks of writes waiting for the queue to fall under the mark. */
  #drainCbs: SocketCallback[] = [];
  #needDrain = false;
  #watching = false;
  #connecting = false;
  #writableEnded = false;
  #readableEnded = false;
  #destroyed = false;
  #closeEmitted = false;
  #error: Error | undefined;
  #paused = false;
  /** Input held while paused. */
  #held: (Buffer | null)[] = [];
  /** The connection closed while input was held: `close` waits for resume(). */
  #finishHeld = false;
  #timeoutMs = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #host = "";
  #port = 0;
  /** Bytes received. */
  bytesRead = 0;
  /** Bytes written (accepted by `write`). */
  bytesWritten = 0;

  /**
   * Makes an unconnected socket; call {@linkcode connect}.
   *
   * @param options Half-open policy, high-water mark, manager.
   */
  constructor(options: SocketOptions = {}) {
    super();
    this.#allowHalfOpen = options.allowHalfOpen ?? false;
    this.#hwm = options.writableHighWaterMark ?? HIGH_WATER;
    this.#mgr = options.manager;
  }

  /**
   * Connects; `connect` (and `ready`) follow, or `error` then `close`.
   * Writes made before that are buffered.
   *
   * @param port The port, or the options.
   * @param host The host (default `"localhost"`), or the connect listener.
   * @param listener Called once connected.
   * @returns this.
   */
  connect(port: number | SocketConnectOptions, host?: string | (() => void), listener?: () => void): this {
    const o: SocketConnectOptions = typeof port === "object" ? { ...port } : { port };
    if (typeof host === "function") listener = host;
    else if (typeof host === "string") o.host = host;
    if (listener) this.once("connect", listener);
    if (this.#connecting || this.#conn) {
      throw socketError("the socket is already connected", "ERR_SOCKET_CONNECTED");
    }
    if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) {
      throw new RangeError(`invalid port ${o.port}`);
    }
    const mgr = o.manager ?? this.#mgr ?? sharedManager();
    this.#mgr = mgr;
    this.#host = o.host ?? "localhost";
    this.#port = o.port;
    this.#connecting = true;
    const h = this.#host.includes(":") ? `[${this.#host}]` : this.#host;
    mgr.connect(`tcp://${h}:${o.port}`, { connectTimeout: o.timeout }).then(
      (conn) => this.#opened(conn),
      (e) => {
        this.#connecting = false;
        const kind = (e as { kind?: string }).kind;
        const code = kind === "refused" ? "ECONNREFUSED" : kind === "timeout" ? "ETIMEDOUT" : "ECONNRESET";
        const err = socketError(`connect ${code} ${this.#host}:${o.port}`, code, {
          syscall: "connect",
          address: this.#host,
          port: o.port,
          cause: e,
        });
        this.#fail(err);
      },
    );
    return this;
  }

  #opened(conn: TcpConnection): void {
    this.#connecting = false;
    if (this.#destroyed) {
      tcpInternals.abort(conn);
      return;
    }
    this.#conn = conn;
    const pending = this.#pending, cbs = this.#pendingCbs;
    this.#pending = [];
    this.#pendingCbs = [];
    this.#pendingBytes = 0;
    for (const b of pending) this.#send(b);
    if (cbs.length) this.#afterSend(cbs);
    if (this.#writableEnded) this.#endNative();
    this.#touch();
    this.emit("connect");
    this.emit("ready");
    this.#read(conn);
  }

  async #read(conn: TcpConnection): Promise<void> {
    try {
      for await (const ev of conn) {
        if (ev.type === "data") {
          this.bytesRead += ev.bytes.length;
          this.#touch();
          // The event's bytes stay valid while held (no copy).
          this.#deliver(Buffer.from(ev.bytes.buffer, ev.bytes.byteOffset, ev.bytes.length));
        } else if (ev.type === "end") {
          this.#deliver(null);
        } else if (ev.type === "error" && !this.#destroyed) {
          // After destroy() the socket is closed by its user: what the peer
          // does then (a reset) is no error of theirs, as in Node.
          this.#error ??= socketError(ev.message, /reset/i.test(ev.message) ? "ECONNRESET" : "EIO");
        }
      }
    } catch (e) {
      if (!this.#destroyed) this.#error ??= e as Error;
    }
    // Input held by pause() is delivered before close: on resume().
    if (this.#held.length > 0 && !this.#destroyed) this.#finishHeld = true;
    else this.#finish();
  }

  #deliver(b: Buffer | null): void {
    if (this.#paused || this.#held.length > 0) {
      this.#held.push(b);
      return;
    }
    this.#emitInput(b);
  }

  #emitInput(b: Buffer | null): void {
    if (b) {
      this.emit("data", b);
      return;
    }
    if (this.#readableEnded) return;
    this.#readableEnded = true;
    this.emit("end");
    if (!this.#allowHalfOpen) this.end();
  }

  /** The connection is gone: `error` (if any), then `close`. */
  #finish(): void {
    this.#finishHeld = false;
    this.#held = [];
    this.#clearTimer();
    const cbs = [...this.#pendingCbs, ...this.#drainCbs];
    this.#pendingCbs = [];
    this.#drainCbs = [];
    const err = this.#error;
    for (const cb of cbs) cb(err ?? null);
    this.#destroyed = true;
    this.#emitClose(err);
  }

  #fail(err: Error): void {
    this.#error = err;
    this.#destroyed = true;
    this.#clearTimer();
    const cbs = [...this.#pendingCbs, ...this.#drainCbs];
    this.#pendingCbs = [];
    this.#drainCbs = [];
    for (const cb of cbs) cb(err);
    this.#emitClose(err);
  }

  #emitClose(err: Error | undefined): void {
    if (this.#closeEmitted) return;
    this.#closeEmitted = true;
    if (err) this.emit("error", err);
    this.emit("close", err !== undefined);
  }

  /** Queues bytes natively; returns the bytes queued and not yet sent. */
  #send(b: Uint8Array): number {
    try {
      return this.#conn!.send(b);
    } catch (e) {
      this.#error ??= socketError(`write after close: ${(e as Error).message}`, "EPIPE");
      return 0;
    }
  }

  /** Calls `cbs` once the native queue is under the mark; emits `drain` if a write returned false. */
  #afterSend(cbs: SocketCallback[]): void {
    this.#drainCbs.push(...cbs);
    if (this.#watching || !this.#conn) return;
    this.#watching = true;
    const conn = this.#conn;
    let wait: Promise<void>;
    try {
      wait = tcpInternals.watchDrain(conn, this.#needDrain ? 0 : this.#hwm);
    } catch (e) {
      wait = Promise.reject(e);
    }
    wait.then(
      () => {
        this.#watching = false;
        const done = this.#drainCbs;
        this.#drainCbs = [];
        for (const cb of done) cb(null);
        if (this.#needDrain && !this.#destroyed) {
          this.#needDrain = false;
          this.emit("drain");
        }
        if (this.#drainCbs.length || this.#needDrain) this.#afterSend([]);
      },
      () => {
        this.#watching = false; // closed: #finish calls the callbacks with its error
      },
    );
  }

  /**
   * Writes bytes (a string in `encoding`, default UTF-8).
   *
   * @param data The bytes or text.
   * @param encoding The text's encoding, or the callback.
   * @param cb Called once the bytes left the queue's high part (with an error if the socket closed first).
   * @returns false once `writableHighWaterMark` bytes or more are queued: wait for `drain`.
   */
  write(data: Uint8Array | string, encoding?: string | SocketCallback, cb?: SocketCallback): boolean {
    if (typeof encoding === "function") {
      cb = encoding;
      encoding = undefined;
    }
    if (this.#writableEnded || this.#destroyed) {
      const err = socketError(
        this.#destroyed ? "the socket is destroyed" : "write after end",
        this.#destroyed ? "ERR_STREAM_DESTROYED" : "ERR_STREAM_WRITE_AFTER_END",
      );
      queueMicrotask(() => {
        cb?.(err);
        if (!this.#destroyed) this.emit("error", err);
      });
      return false;
    }
    const bytes = typeof data === "string" ? Buffer.from(data, encoding as BufferEncoding | undefined) : data;
    this.bytesWritten += bytes.length;
    this.#touch();
    if (!this.#conn) {
      // Copied: the caller may reuse its buffer at once.
      this.#pending.push(bytes.slice());
      this.#pendingBytes += bytes.length;
      if (cb) this.#pendingCbs.push(cb);
      if (this.#pendingBytes >= this.#hwm) this.#needDrain = true;
      return this.#pendingBytes < this.#hwm;
    }
    const queued = this.#send(bytes);
    if (queued >= this.#hwm) this.#needDrain = true;
    if (cb || this.#needDrain) this.#afterSend(cb ? [cb] : []);
    return !this.#needDrain;
  }

  /**
   * Ends our side (FIN after the queued bytes); reading goes on until the
   * peer ends too.
   *
   * @param data Last bytes to write, or the callback.
   * @param encoding Their encoding, or the callback.
   * @param cb Called once our side is done.
   * @returns this.
   */
  end(
    data?: Uint8Array | string | SocketCallback,
    encoding?: string | SocketCallback,
    cb?: SocketCallback,
  ): this {
    if (typeof data === "function") {
      cb = data;
      data = undefined;
    } else if (typeof encoding === "function") {
      cb = encoding;
      encoding = undefined;
    }
    if (data !== undefined && !this.#writableEnded) this.write(data, encoding as string | undefined);
    if (cb) this.once("finish", () => cb!());
    if (this.#writableEnded || this.#destroyed) return this;
    this.#writableEnded = true;
    if (this.#conn) this.#endNative();
    return this;
  }

  #endNative(): void {
    const conn = this.#conn!;
    try {
      conn.end();
    } catch {
      return; // closed already: close follows
    }
    tcpInternals.watchDrain(conn, 0).then(() => this.emit("finish"), () => {});
  }

  /**
   * Closes the connection at once (queued output is dropped, as in Node);
   * `error` (if `err` is given) and `close` follow.
   *
   * @param err The error to report.
   * @returns this.
   */
  destroy(err?: Error): this {
    if (this.#destroyed) return this;
    this.#destroyed = true;
    if (err) this.#error ??= err;
    this.#clearTimer();
    if (this.#finishHeld) {
      queueMicrotask(() => this.#finish()); // closed already; held input is dropped
      return this;
    }
    if (this.#conn) tcpInternals.abort(this.#conn); // the read loop ends: close follows
    else queueMicrotask(() => this.#emitClose(this.#error)); // a connect under way is closed when it opens
    return this;
  }

  /** Same as `destroy()` (Node's name for a reset-like close). */
  resetAndDestroy(): this {
    return this.destroy();
  }

  /**
   * Stops `data` events (and reading the socket) until {@linkcode resume}.
   *
   * @returns this.
   */
  pause(): this {
    this.#paused = true;
    if (this.#conn && !this.#conn.closed) this.#conn.pause();
    return this;
  }

  /**
   * Delivers held input and reads again.
   *
   * @returns this.
   */
  resume(): this {
    this.#paused = false;
    while (this.#held.length > 0 && !this.#paused) this.#emitInput(this.#held.shift()!);
    if (this.#paused) return this;
    if (this.#finishHeld) this.#finish();
    else if (this.#conn && !this.#conn.closed) this.#conn.resume();
    return this;
  }

  /** True between {@linkcode pause} and {@linkcode resume}. */
  isPaused(): boolean {
    return this.#paused;
  }

  /**
   * Accepted for compatibility: Mongoose always sets `TCP_NODELAY`.
   *
   * @param _noDelay Ignored.
   * @returns this.
   */
  setNoDelay(_noDelay = true): this {
    return this;
  }

  /**
   * Accepted for compatibility: Mongoose always sets `SO_KEEPALIVE` (with
   * the system's timings).
   *
   * @param _enable Ignored.
   * @param _initialDelay Ignored.
   * @returns this.
   */
  setKeepAlive(_enable = false, _initialDelay = 0): this {
    return this;
  }

  /**
   * Emits `timeout` after `ms` without input or writes (0 turns it off);
   * the socket stays open (as in Node).
   *
   * @param ms Idle time in ms.
   * @param cb Added as a `timeout` listener.
   * @returns this.
   */
  setTimeout(ms: number, cb?: () => void): this {
    this.#timeoutMs = ms;
    if (cb) {
      if (ms === 0) this.off("timeout", cb);
      else this.once("timeout", cb);
    }
    this.#touch();
    return this;
  }

  #touch(): void {
    this.#clearTimer();
    if (this.#timeoutMs > 0 && !this.#destroyed) {
      this.#timer = setTimeout(() => this.emit("timeout"), this.#timeoutMs);
      Deno.unrefTimer(this.#timer);
    }
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Accepted for compatibility; an open socket always keeps the process alive.
   *
   * @returns this.
   */
  ref(): this {
    return this;
  }

  /**
   * Accepted for compatibility; an open socket always keeps the process alive.
   *
   * @returns this.
   */
  unref(): this {
    return this;
  }

  /**
   * Starts TLS over this socket (in-band, e.g. after a plaintext
   * negotiation): `tls.connect({ ...options, socket: this })` from
   * `node:tls`, which drivers also call themselves. From then on, read and
   * write through the returned socket only.
   *
   * @param options `node:tls` connection options (`ca`, `servername`,
   *   `rejectUnauthorized`, `cert`/`key` for mutual TLS...).
   * @returns The TLS socket; it emits `secureConnect` once the handshake is done.
   *
   * @example TLS over mgnet's socket to a Deno.listenTls server
   * ```ts
   * import assert from "node:assert/strict";
   * import { selfSignedCert } from "../../mod.ts";
   * import { createConnection } from "./net.ts";
   *
   * const { cert, key } = selfSignedCert(["localhost"]);
   * const server = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key });
   * server.accept().then(async (c) => {
   *   await c.write(new TextEncoder().encode("secret"));
   *   c.close();
   * });
   * const sock = createConnection({ host: "127.0.0.1", port: server.addr.port });
   * await new Promise((resolve) => sock.once("connect", resolve));
   * const secure = sock.startTls({ servername: "localhost", ca: cert });
   * let got = "";
   * for await (const chunk of secure) got += chunk;
   * assert.equal(got, "secret");
   * assert.equal(secure.authorized, true);
   * server.close();
   * ```
   */
  startTls(options: tls.ConnectionOptions = {}): tls.TLSSocket {
    return tls.connect({ ...options, socket: this as unknown as Duplex });
  }

  /** `"opening"`, `"open"`, `"readOnly"` (we ended), `"writeOnly"` (the peer ended) or `"closed"`. */
  get readyState(): "opening" | "open" | "readOnly" | "writeOnly" | "closed" {
    if (this.#connecting) return "opening";
    if (!this.#conn || this.#destroyed || this.#conn.closed) return "closed";
    if (this.#writableEnded && this.#readableEnded) return "closed";
    if (this.#writableEnded) return "readOnly";
    if (this.#readableEnded) return "writeOnly";
    return "open";
  }

  /** True while connecting. */
  get connecting(): boolean {
    return this.#connecting;
  }

  /** True once destroyed or closed. */
  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** True while connecting (Node's name). */
  get pending(): boolean {
    return this.#connecting || !this.#conn;
  }

  /** Bytes queued and not yet sent. */
  get writableLength(): number {
    return this.#conn ? this.#conn.queued : this.#pendingBytes;
  }

  /** True if a write returned false and `drain` has not fired yet. */
  get writableNeedDrain(): boolean {
    return this.#needDrain;
  }

  /** The high-water mark of `write()`. */
  get writableHighWaterMark(): number {
    return this.#hwm;
  }

  /** The peer's IP address, once connected. */
  get remoteAddress(): string | undefined {
    return this.#conn?.remoteAddr?.hostname;
  }

  /** The peer's port, once connected. */
  get remotePort(): number | undefined {
    return this.#conn?.remoteAddr?.port;
  }

  /** `"IPv4"` or `"IPv6"`, once connected. */
  get remoteFamily(): string | undefined {
    const a = this.remoteAddress;
    return a === undefined ? undefined : a.includes(":") ? "IPv6" : "IPv4";
  }

  /** Our IP address, once connected. */
  get localAddress(): string | undefined {
    return this.#conn?.localAddr?.hostname;
  }

  /** Our port, once connected. */
  get localPort(): number | undefined {
    return this.#conn?.localAddr?.port;
  }

  /**
   * Our address, like `net.Socket.address()`.
   *
   * @returns The address, family and port (empty before connecting).
   */
  address(): { address: string; family: string; port: number } | Record<string, never> {
    const a = this.#conn?.localAddr;
    if (!a) return {};
    return { address: a.hostname, family: a.hostname.includes(":") ? "IPv6" : "IPv4", port: a.port };
  }

  /** The manager this socket runs on (once connecting). */
  get manager(): Manager | undefined {
    return this.#mgr;
  }
}

/**
 * Makes a socket and connects it, like `net.createConnection`.
 *
 * @param port The port, or the options (`port`, `host`, `manager`, `timeout`).
 * @param host The host (default `"localhost"`), or the connect listener.
 * @param listener Called once connected.
 * @returns The socket (connecting).
 * @example Connection refused
 * ```ts
 * import assert from "node:assert/strict";
 * import { createConnection } from "./net.ts";
 *
 * const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const port = l.addr.port;
 * l.close(); // nothing listens there now
 * const sock = createConnection(port, "127.0.0.1");
 * const err = await new Promise<any>((resolve) => sock.on("error", resolve));
 * assert.equal(err.code, "ECONNREFUSED");
 * ```
 */
export function createConnection(
  port: number | (SocketConnectOptions & SocketOptions),
  host?: string | (() => void),
  listener?: () => void,
): Socket {
  const o = typeof port === "object" ? port : {};
  return new Socket(o).connect(port, host, listener);
}

/**
 * Same as {@linkcode createConnection} (`net.connect`).
 *
 * @param port The port, or the options.
 * @param host The host, or the connect listener.
 * @param listener Called once connected.
 * @returns The socket (connecting).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { connect, Socket } from "./net.ts";
 *
 * const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted = server.accept();
 * const sock = connect(server.addr.port, "127.0.0.1");
 * assert.ok(sock instanceof Socket);
 * await new Promise((resolve) => sock.once("connect", resolve));
 * assert.equal(sock.remotePort, server.addr.port);
 * (await accepted).close();
 * await new Promise((resolve) => sock.once("close", resolve));
 * server.close();
 * ```
 */
export function connect(
  port: number | (SocketConnectOptions & SocketOptions),
  host?: string | (() => void),
  listener?: () => void,
): Socket {
  return createConnection(port, host, listener);
}
