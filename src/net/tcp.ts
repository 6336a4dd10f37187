/**
 * Raw TCP connections: {@linkcode TcpConnection} (send with backpressure,
 * half-close, pause/resume, its own event iterator), the `data` and `end`
 * events, the framing options, and the work behind `Manager.connect` for
 * `tcp://` URLs.
 *
 * Where a connection's events go: a connection accepted by a `tcp://`
 * listener delivers its `data` and `end` events to the manager (its `for
 * await` loop or the listener's handlers) until code iterates the
 * connection itself; from then on they go to that iterator. A connection
 * made by `Manager.connect()` delivers them to its own iterator only
 * (buffered until it is iterated). `open`, `error` and `close` of accepted
 * connections always go to the manager.
 *
 * @module
 */

import { Connection, connInternals } from "../core/connection.ts";
import { ConnectionClosedError, MgnetError } from "../core/errors.ts";
import { Status } from "../core/abi.ts";
import { utf8Decoder, utf8Encoder } from "../core/bytes.ts";
import type { ConnCloseEvent, ConnErrorEvent, OpenEvent } from "../core/events.ts";
import type { ClientSink } from "../core/connection.ts";
import type { Loop } from "../core/loop.ts";
import {
  encodeClientTls,
  encodeListenTls,
  systemCaBundle,
  type TlsClientOptions,
  type TlsListenOptions,
} from "../core/tls.ts";
import { FramingCode, MaxFrame } from "./abi.ts";

/** Bytes a connection's own iterator may hold unconsumed before reading pauses... */
const OWN_HIGH = 1 << 20;
/** ...and resumes. */
const OWN_LOW = 256 * 1024;
/** The empty buffer of an FFI argument that is not used. */
const NO_BYTES = new Uint8Array(0);

/**
 * How a TCP connection's input is cut into `data` events, in native code
 * (a line protocol never sees a partial line):
 * - `"raw"` (default): the bytes of each read, as they came;
 * - `"line"`: one event per line, without its `\n` (and without a `\r`
 *   before it); a last line the peer ends without `\n` still arrives;
 * - `{ lengthPrefix: 1 | 2 | 4 }`: one event per frame after a big-endian
 *   length prefix of that many bytes (the prefix is not part of the frame).
 */
export type TcpFraming = "raw" | "line" | { lengthPrefix: 1 | 2 | 4 };

/** Framing options of a `tcp://` listener or connection. */
export interface TcpFramingOptions {
  /** How input is cut into `data` events (default `"raw"`). */
  framing?: TcpFraming;
  /**
   * Largest frame (for lines: without the terminator) in bytes, default
   * 65 536, at most 4 194 296. A longer one is an `error` event naming the
   * limit, and the connection closes; a length prefix over it is refused
   * before anything is buffered for it.
   */
  maxFrame?: number;
}

/** Callbacks for a `tcp://` listener's connections, instead of a `for await` loop. */
export interface TcpHandlers {
  /** A connection was accepted (`ev.conn` is a {@linkcode TcpConnection}). */
  onOpen?(ev: OpenEvent & { conn: TcpConnection }): void;
  /** Bytes (or one frame) arrived. */
  onData?(ev: TcpDataEvent): void;
  /** The peer ended its side; the connection may still send. */
  onEnd?(ev: TcpEndEvent): void;
  /** A connection failed (a close follows). */
  onError?(ev: ConnErrorEvent): void;
  /** A connection closed. */
  onClose?(ev: ConnCloseEvent): void;
}

/** Options of `Manager.listen("tcp://…")`: framing and, optionally, handlers. */
export interface TcpListenOptions extends TcpFramingOptions, TcpHandlers {}

/** Options of `Manager.connect("tcp://…")`. */
export interface TcpConnectOptions extends TcpFramingOptions, TlsClientOptions {
  /** Most ms to connect (for `tls://` the handshake included); default 10 000. */
  connectTimeout?: number;
}

/**
 * Bytes arrived on a TCP connection: one read's worth, or one frame with a
 * framing. `bytes` is a view into the batch the event came in, valid for as
 * long as it is held (no copy was made).
 *
 * @example An echo server
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const { port } = mgr.listen("tcp://127.0.0.1:0");
 * const served = (async () => {
 *   for await (const ev of mgr) if (ev.type === "data") ev.conn.send(ev.bytes);
 * })();
 * using client = await Deno.connect({ port });
 * await client.write(new TextEncoder().encode("ping"));
 * const buf = new Uint8Array(4);
 * let got = 0;
 * while (got < 4) got += (await client.read(buf.subarray(got))) ?? 4;
 * assert.equal(new TextDecoder().decode(buf), "ping");
 * await mgr.close();
 * await served;
 * ```
 */
export class TcpDataEvent {
  /** Discriminant. */
  readonly type = "data";
  /** The connection. */
  readonly conn: TcpConnection;
  /** The bytes (or the frame, without prefix or line end). */
  readonly bytes: Uint8Array;

  /**
   * Made by mgnet when bytes arrive; not constructed by users.
   *
   * @param conn The connection.
   * @param bytes The bytes.
   */
  constructor(conn: TcpConnection, bytes: Uint8Array) {
    this.conn = conn;
    this.bytes = bytes;
  }

  /**
   * The bytes as UTF-8 text.
   *
   * @returns The text.
   */
  text(): string {
    return utf8Decoder.decode(this.bytes);
  }
}

/**
 * The peer ended its side of a TCP connection (it will send nothing more).
 * The connection stays open: it may still send, then `end()` its side too
 * (both ends done, it closes) or `close()`.
 *
 * @example Answering after the peer's end
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const { port } = mgr.listen("tcp://127.0.0.1:0");
 * const client = await Deno.connect({ port });
 * await client.write(new TextEncoder().encode("question"));
 * await client.closeWrite();
 * let asked = "";
 * for await (const ev of mgr) {
 *   if (ev.type === "data") asked += ev.text();
 *   if (ev.type === "end") {
 *     ev.conn.send(`answer to ${asked}`);
 *     ev.conn.end();
 *   }
 *   if (ev.type === "close") break;
 * }
 * assert.equal(await new Response(client.readable).text(), "answer to question");
 * ```
 */
export interface TcpEndEvent {
  /** Discriminant. */
  readonly type: "end";
  /** The connection. */
  readonly conn: TcpConnection;
}

/** The events a connection's own iterator yields. */
export type TcpConnEvent = TcpDataEvent | TcpEndEvent | ConnErrorEvent;

/**
 * Options of {@linkcode TcpConnection.startTls}: as the TLS client, the
 * server's name (sent with SNI, and the name its certificate must carry)
 * with the options `connect("tls://…")` takes; as the TLS server
 * (`isServer: true`), the options a `tls://` listener takes.
 */
export type StartTlsOptions =
  | (TlsClientOptions & { isServer?: false; serverName: string })
  | (TlsListenOptions & { isServer: true });

const DONE: IteratorReturnResult<undefined> = { value: undefined, done: true };

/** The settings buffer of a TLS client (`tls://` connect, startTls): the system's CAs unless given or insecure. */
function clientSpec(o: TlsClientOptions): Uint8Array {
  return encodeClientTls({
    ca: o.ca ?? (o.insecure ? undefined : systemCaBundle()),
    cert: o.cert,
    key: o.key,
    insecure: o.insecure,
  });
}

/** Private parts of a TCP connection, for `src/net/` (not re-exported by `mod.ts`). */
export interface TcpInternals {
  /** Gives an event to the connection's own consumer; false if it has none. */
  offer(c: TcpConnection, ev: TcpConnEvent): boolean;
  /** The connection is gone: its own iterator ends. */
  closed(c: TcpConnection): void;
  /** An outbound connection: its events go to its own queue from the start. */
  outbound(c: TcpConnection): void;
  /**
   * Resolves once at most `mark` bytes remain queued, like `drain(mark)`
   * but without pausing reading meanwhile (what `node:net` semantics need:
   * a socket keeps reading while its writes are buffered).
   */
  watchDrain(c: TcpConnection, mark: number): Promise<void>;
  /**
   * Closes at once, dropping queued output and without the lingering close
   * of `close()` (which waits up to 2 s for the peer's FIN): `node:net`'s
   * `destroy()`.
   */
  abort(c: TcpConnection): void;
}

/** Accessors of private TCP connection state. */
export let tcpInternals: TcpInternals;

/**
 * A TCP connection: accepted by a `tcp://` listener or made by
 * `Manager.connect("tcp://…")`.
 *
 * - `send()` queues bytes (or a string as UTF-8) and returns the bytes
 *   queued and not yet sent; it never blocks and never drops. Await
 *   {@linkcode drain} when that figure is high: while a drain is awaited
 *   the connection is not read, so a peer that sends faster than it reads
 *   is held back by TCP.
 * - `end()` half-closes: our FIN follows the queued bytes, reading goes on.
 *   The peer's FIN is an `end` event. Once both sides have ended, the
 *   connection closes.
 * - `pause()`/`resume()` stop and restart reading the socket.
 * - `data` holds whatever the application wants to keep with it.
 * - `for await (const ev of conn)` yields its own `data` and `end` events
 *   (and, for a connection from `connect()`, `error`) and ends when it
 *   closes; breaking out of that loop closes the connection.
 *
 * @example A client with its own event loop
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 *
 * const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * (async () => {
 *   for await (const c of server) c.readable.pipeTo(c.writable); // echo
 * })();
 * await using mgr = new Manager();
 * const conn = await mgr.connect(`tcp://127.0.0.1:${server.addr.port}`, { framing: "line" });
 * conn.send("one\ntwo\n");
 * const lines = [];
 * for await (const ev of conn) {
 *   if (ev.type === "data") lines.push(ev.text());
 *   if (lines.length === 2) break; // closes the connection
 * }
 * assert.deepEqual(lines, ["one", "two"]);
 * server.close();
 * ```
 */
export class TcpConnection extends Connection implements AsyncIterable<TcpConnEvent> {
  #closing = false;
  #ending = false;
  #userPaused = false;
  #drains = 0;
  #ownFull = false;
  #nativePaused = false;
  /** Events for the own iterator (undefined while the manager gets them). */
  #own: TcpConnEvent[] | undefined;
  #ownHead = 0;
  #ownBytes = 0;
  #waiter: PromiseWithResolvers<void> | undefined;
  #iterating = false;
  #finished = false;

  static {
    tcpInternals = {
      offer: (c, ev) => {
        const own = c.#own;
        if (own === undefined) return false;
        own.push(ev);
        if (ev.type === "data") {
          c.#ownBytes += ev.bytes.length;
          if (!c.#ownFull && c.#ownBytes > OWN_HIGH) {
            c.#ownFull = true;
            c.#applyPause();
          }
        }
        c.#wakeIterator();
        return true;
      },
      closed: (c) => {
        c.#finished = true;
        c.#wakeIterator();
      },
      outbound: (c) => void (c.#own = []),
      watchDrain: (c, mark) => {
        if (c.closed || c.#closing) {
          return Promise.reject(new ConnectionClosedError(`connection ${c.id} is closed`));
        }
        const host = connInternals.host(c);
        const rc = host.sym.mgnet_tcp_want_drain(host.handle, connInternals.slot(c), c.id, mark);
        if (rc < 0) host.check(rc);
        return rc === 0 ? Promise.resolve() : host.drained(c);
      },
      abort: (c) => {
        if (c.#closing || c.closed) return;
        c.#closing = true;
        const host = connInternals.host(c);
        const rc = host.sym.mgnet_close(host.handle, connInternals.slot(c), c.id, 0);
        if (rc < 0 && rc !== Status.Closed) host.check(rc);
        host.queued();
      },
    };
  }

  #wakeIterator(): void {
    const w = this.#waiter;
    if (w) {
      this.#waiter = undefined;
      w.resolve();
    }
  }

  /** Throws ConnectionClosedError once the connection is closed or closing. */
  #assertOpen(): void {
    if (this.#closing) throw new ConnectionClosedError(`connection ${this.id} is closed`);
    connInternals.assertOpen(this);
  }

  /**
   * Queues bytes to send (a string is sent as UTF-8). The bytes are copied:
   * the array may be reused at once (`ev.bytes` of a `data` event too).
   *
   * @param data The bytes or text.
   * @returns The bytes queued and not yet taken by the socket, this send
   *   included (compare with a high-water mark, then await `drain()`).
   * @throws {ConnectionClosedError} once the connection is closed (or
   *   `close()` was called); {MgnetError} (`State`) after `end()`.
   */
  send(data: Uint8Array | string): number {
    this.#assertOpen();
    if (this.#ending) throw new MgnetError("end() was called: the connection sends no more", "State");
    const bytes = typeof data === "string" ? utf8Encoder.encode(data) : data;
    const host = connInternals.host(this);
    const rc = host.sym.mgnet_tcp_send(
      host.handle,
      connInternals.slot(this),
      this.id,
      bytes,
      0,
      bytes.length,
    );
    if (rc < 0) host.check(rc);
    host.queued();
    return rc;
  }

  /** Bytes queued and not yet taken by the socket (0 once closed). */
  get queued(): number {
    if (this.closed || this.#closing) return 0;
    const host = connInternals.host(this);
    const rc = host.sym.mgnet_tcp_queued(host.handle, connInternals.slot(this), this.id);
    return rc < 0 ? 0 : rc;
  }

  /**
   * Waits until at most `mark` bytes remain queued. Meanwhile the
   * connection is not read (an echo or a proxy awaiting this holds a fast
   * sender back through TCP instead of buffering what it sends).
   *
   * @param mark The level to wait for, in bytes (default 0: all sent).
   * @returns A promise that resolves then (at once if already so).
   * @throws {ConnectionClosedError} (rejects) if the connection closes first.
   */
  drain(mark = 0): Promise<void> {
    try {
      if (!Number.isInteger(mark) || mark < 0 || mark > 0xffff_ffff) {
        throw new RangeError("drain(mark): mark must be an integer from 0 to 2^32 - 1");
      }
      if (this.closed) throw new ConnectionClosedError(`connection ${this.id} is closed`);
      const host = connInternals.host(this);
      const rc = host.sym.mgnet_tcp_want_drain(host.handle, connInternals.slot(this), this.id, mark);
      if (rc < 0) host.check(rc);
      if (rc === 0) return Promise.resolve();
      this.#drains++;
      this.#applyPause();
      return host.drained(this).finally(() => {
        this.#drains--;
        this.#applyPause();
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Half-closes the connection: our FIN follows the bytes already queued,
   * and the peer reads to its end of stream. We go on receiving until the
   * peer ends too (then the connection closes). Calling it again does
   * nothing.
   *
   * @throws {ConnectionClosedError} once the connection is closed.
   */
  end(): void {
    if (this.#ending) return;
    this.#assertOpen();
    const host = connInternals.host(this);
    host.check(host.sym.mgnet_tcp_end(host.handle, connInternals.slot(this), this.id));
    this.#ending = true;
    host.queued();
  }

  /**
   * Upgrades the connection to TLS in-band (STARTTLS, PostgreSQL's
   * SSLRequest...): after the plaintext exchange that agreed on it, the
   * TLS handshake runs on this connection, as the client or (with
   * `isServer`) as the server, with mgnet's TLS; data and `send()` are
   * encrypted from then on. What was sent before leaves first, in
   * plaintext (call it in the same turn as the reply that agrees on TLS;
   * if `send()` reported more queued than the socket takes at once, await
   * `drain()` first: reading pauses meanwhile). Input that came after the
   * point of the upgrade and was not yet taken is dropped, so a peer cannot
   * slip plaintext in there.
   *
   * @param options As the client: `serverName` (required), `ca` (default:
   *   the system's CAs), `cert`/`key` for mutual TLS, `insecure`. As the
   *   server: `isServer: true`, `cert`, `key`, `sni`, `ca` with
   *   `requestCert`.
   * @returns A promise that resolves once the handshake is done
   *   ({@linkcode Connection.tlsInfo} tells its outcome).
   * @throws {MgnetError} (rejects) `State` if bytes are still queued, the
   *   connection already has TLS or was ended; `Invalid` for bad
   *   certificates or keys; `Io` with the reason if the handshake fails (the
   *   connection then closes). {ConnectionClosedError} if it closes first.
   *
   * @example A line protocol that switches to TLS (both ends mgnet)
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager, selfSignedCert, type TcpConnection } from "../../mod.ts";
   *
   * const { cert, key } = selfSignedCert(["localhost"]);
   * await using mgr = new Manager();
   * const listener = mgr.listen("tcp://127.0.0.1:0", {
   *   framing: "line",
   *   onData: async (ev) => {
   *     const text = ev.text();
   *     if (text === "STARTTLS") {
   *       ev.conn.send("GO\n"); // sent by startTls(), before TLS starts
   *       await ev.conn.startTls({ isServer: true, cert, key });
   *     } else ev.conn.send(`secret: ${text}\n`);
   *   },
   * });
   * await using client = new Manager();
   * const conn: TcpConnection = await client.connect(`tcp://127.0.0.1:${listener.port}`, { framing: "line" });
   * conn.send("STARTTLS\n");
   * const lines = conn[Symbol.asyncIterator]();
   * assert.equal(((await lines.next()).value as { text(): string }).text(), "GO");
   * await conn.startTls({ serverName: "localhost", ca: cert });
   * assert.equal(conn.tlsInfo()?.protocol, "TLSv1.3");
   * conn.send("hello\n");
   * assert.equal(((await lines.next()).value as { text(): string }).text(), "secret: hello");
   * ```
   */
  async startTls(options: StartTlsOptions): Promise<void> {
    this.#assertOpen();
    if (this.#ending) throw new MgnetError("end() was called: the connection sends no more", "State");
    const server = options?.isServer === true;
    if (!server && (typeof options?.serverName !== "string" || options.serverName === "")) {
      throw new TypeError("startTls(): serverName is required (SNI and the name the certificate must carry)");
    }
    const name = server ? NO_BYTES : utf8Encoder.encode(options.serverName);
    const spec = server ? encodeListenTls(options) : clientSpec(options);
    const host = connInternals.host(this);
    const rc = host.sym.mgnet_tcp_start_tls(
      host.handle,
      connInternals.slot(this),
      this.id,
      server ? 1 : 0,
      name,
      name.length,
      spec,
      spec.length,
    );
    if (rc < 0) host.check(rc);
    const done = connInternals.upgrading(this);
    this.#dropPlaintext();
    host.wake();
    await done;
  }

  /** Drops the data events this connection's own iterator has not taken yet (plaintext before an upgrade). */
  #dropPlaintext(): void {
    const own = this.#own;
    if (own === undefined || this.#ownHead >= own.length) return;
    const kept = own.slice(this.#ownHead).filter((ev) => ev.type !== "data");
    this.#own = kept;
    this.#ownHead = 0;
    this.#ownBytes = 0;
    if (this.#ownFull) {
      this.#ownFull = false;
      this.#applyPause();
    }
  }

  /** Stops reading the socket: the peer's sends stall once the kernel's buffers are full. */
  pause(): void {
    this.#userPaused = true;
    this.#applyPause();
  }

  /** Reads the socket again after {@linkcode pause}. */
  resume(): void {
    this.#userPaused = false;
    this.#applyPause();
  }

  /** True between {@linkcode pause} and {@linkcode resume}. */
  get paused(): boolean {
    return this.#userPaused;
  }

  #applyPause(): void {
    const want = this.#userPaused || this.#drains > 0 || this.#ownFull;
    if (want === this.#nativePaused || this.closed || this.#closing) return;
    this.#nativePaused = want;
    const host = connInternals.host(this);
    const rc = host.sym.mgnet_tcp_pause(host.handle, connInternals.slot(this), this.id, want ? 1 : 0);
    if (rc === 1) host.wake();
    else if (rc < 0 && rc !== Status.Closed) host.check(rc);
  }

  /**
   * Closes the connection after sending what is queued (unread input is
   * dropped). Further sends throw `ConnectionClosedError`. Idempotent.
   */
  override close(): void {
    if (this.#closing) return;
    this.#closing = true;
    super.close();
  }

  /**
   * Iterates this connection's own events (see the class docs); only one
   * loop at a time. Ends when the connection closes; leaving the loop early
   * closes the connection.
   *
   * @returns The event iterator.
   * @throws {MgnetError} (`State`) if the connection is already iterated.
   */
  [Symbol.asyncIterator](): AsyncIterator<TcpConnEvent> {
    if (this.#iterating) throw new MgnetError("this connection is already being iterated", "State");
    this.#iterating = true;
    this.#own ??= [];
    return {
      next: async (): Promise<IteratorResult<TcpConnEvent>> => {
        for (;;) {
          const own = this.#own!;
          if (this.#ownHead < own.length) return { value: this.#take(own), done: false };
          if (this.#finished || this.closed) return DONE;
          this.#waiter = Promise.withResolvers<void>();
          const release = connInternals.host(this).hold();
          try {
            await this.#waiter.promise;
          } finally {
            release();
          }
        }
      },
      return: (): Promise<IteratorResult<TcpConnEvent>> => {
        this.#iterating = false;
        this.close();
        return Promise.resolve(DONE);
      },
    };
  }

  #take(own: TcpConnEvent[]): TcpConnEvent {
    const ev = own[this.#ownHead++];
    if (this.#ownHead === own.length) {
      this.#own = [];
      this.#ownHead = 0;
    }
    if (ev.type === "data") {
      this.#ownBytes -= ev.bytes.length;
      if (this.#ownFull && this.#ownBytes <= OWN_LOW) {
        this.#ownFull = false;
        this.#applyPause();
      }
    }
    return ev;
  }
}

/**
 * The native framing arguments (kind, prefix width, max frame) of a
 * listener's or connection's options.
 *
 * @param o The options.
 * @returns `[kind, prefix, maxFrame]` (`maxFrame` 0: the default).
 * @throws {TypeError} for an unknown framing; {RangeError} for a bad `maxFrame`.
 */
export function framingArgs(o: TcpFramingOptions): [number, number, number] {
  const max = o.maxFrame ?? 0;
  if (o.maxFrame !== undefined && (!Number.isInteger(max) || max < 1 || max > MaxFrame.Max)) {
    throw new RangeError(`maxFrame must be an integer from 1 to ${MaxFrame.Max}`);
  }
  const f = o.framing ?? "raw";
  if (f === "raw") return [FramingCode.Raw, 0, max];
  if (f === "line") return [FramingCode.Line, 0, max];
  if (typeof f === "object" && f !== null && [1, 2, 4].includes(f.lengthPrefix)) {
    return [FramingCode.Prefix, f.lengthPrefix, max];
  }
  throw new TypeError(`unknown framing ${JSON.stringify(f)}: "raw", "line" or { lengthPrefix: 1 | 2 | 4 }`);
}

/**
 * Applies a listener's framing options to it (`mgnet_tcp_framing`).
 *
 * @param loop The manager's loop.
 * @param slot The listener's slot.
 * @param id The listener's id.
 * @param o The options.
 */
export function setListenerFraming(loop: Loop, slot: number, id: number, o: TcpFramingOptions): void {
  const [kind, prefix, max] = framingArgs(o);
  if (kind === FramingCode.Raw && max === 0) return;
  loop.check(loop.sym.mgnet_tcp_framing(loop.handle, slot, id, kind, prefix, max));
}

/** `tcp://host:port` → bare host (IPv6 without brackets) and port. */
function parseTcpUrl(url: string): { host: string; port: number } {
  const m = /^(?:tcp|tls):\/\/(\[[0-9A-Fa-f:.]+\]|[^\s/:?#[\]]+):(\d{1,5})\/?$/i.exec(url);
  if (!m) {
    throw new TypeError(
      `invalid TCP address ${JSON.stringify(url)}: expected tcp://host:port or tls://host:port`,
    );
  }
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new TypeError(`invalid port in ${JSON.stringify(url)}`);
  const host = m[1].startsWith("[") ? m[1].slice(1, -1) : m[1];
  return { host, port };
}

/**
 * Opens a TCP connection: the work behind `Manager.connect("tcp://…")`.
 *
 * @param loop The manager's loop.
 * @param url `tcp://host:port` (`tcp://[::1]:7000` for IPv6).
 * @param options Framing and connect timeout.
 * @param resolve Resolves a host name to `tcp://IP:port`.
 * @param fail Builds the error of a failed connect from its message.
 * @returns The connection, once connected.
 */
export async function openTcpConnection(
  loop: Loop,
  url: string,
  options: TcpConnectOptions,
  resolve: (host: string, port: number) => Promise<string>,
  fail: (message: string | undefined, timedOut: boolean) => Error,
): Promise<TcpConnection> {
  const { host, port } = parseTcpUrl(url);
  const [kind, prefix, max] = framingArgs(options);
  const addr = await resolve(host, port);
  const opened = Promise.withResolvers<void>();
  let lastError: string | undefined;
  // Set once openClient returns; the sink runs only after that (in a poll).
  const made: { conn?: TcpConnection } = {};
  const sink: ClientSink = {
    onOpen: (remote, local) => {
      connInternals.setAddrs(made.conn!, remote, local);
      opened.resolve();
    },
    onData: () => {}, // TCP bytes arrive as TCP records, decoded by the protocol
    onError: (message) => {
      lastError = message;
      const conn = made.conn;
      if (conn) tcpInternals.offer(conn, { type: "error", conn, message });
    },
    onClose: () => {
      if (made.conn) tcpInternals.closed(made.conn);
      opened.reject(fail(lastError, false));
    },
  };
  const tls = /^tls:/i.test(url);
  const name = utf8Encoder.encode(host);
  const spec = tls ? clientSpec(options) : undefined;
  const conn = made.conn = loop.openClient(addr, undefined, sink, {
    connect: (a, out) =>
      spec
        ? loop.sym.mgnet_tls_tcp_connect(
          loop.handle,
          a,
          a.length,
          kind,
          prefix,
          max,
          name,
          name.length,
          spec,
          spec.length,
          out,
        )
        : loop.sym.mgnet_tcp_connect(loop.handle, a, a.length, kind, prefix, max, out),
    make: (id) => {
      const c = new TcpConnection(id);
      tcpInternals.outbound(c);
      return c;
    },
  }) as TcpConnection;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      opened.promise,
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(fail(undefined, true)), options.connectTimeout ?? 10_000)
      ),
    ]);
  } catch (e) {
    conn.close();
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return conn;
}
