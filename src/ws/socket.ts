/**
 * WebSockets: the socket object ({@linkcode MgWebSocket}) shared by the
 * event API, `upgradeWebSocket()` under `serve()` and the client, and the
 * `ws-*` events. Frames are checked, reassembled, masked and framed in
 * Rust (`rust/src/ws/`); JS sees whole messages.
 *
 * Where a socket's events go: to the socket itself while it has a consumer
 * (an `on*` handler or listener, or a running `for await` over it);
 * otherwise to the manager's event stream.
 *
 * @module
 */

import type { Connection } from "../core/connection.ts";
import { connInternals } from "../core/connection.ts";
import type { Loop } from "../core/loop.ts";
import { MgnetError } from "../core/errors.ts";
import { Status } from "../core/abi.ts";
import { utf8Decoder, utf8Encoder } from "../core/bytes.ts";
import { encodedLen, encodeString } from "../http/headers.ts";
import { Opcode } from "./abi.ts";

/** A WebSocket is open: the server queued its 101, or the client checked the server's. */
export interface WsOpenEvent {
  /** Discriminant. */
  readonly type: "ws-open";
  /** The socket. */
  readonly socket: MgWebSocket;
  /** Its connection. */
  readonly conn: Connection;
}

/** A ping or a pong arrived (pings are answered by mgnet unless `autoPong: false`). */
export interface WsControlEvent {
  /** Discriminant. */
  readonly type: "ws-ping" | "ws-pong";
  /** The socket. */
  readonly socket: MgWebSocket;
  /** Its connection. */
  readonly conn: Connection;
  /** The payload (at most 125 bytes; a view that stays valid). */
  readonly data: Uint8Array;
}

/** A ping arrived. */
export interface WsPingEvent extends WsControlEvent {
  /** Discriminant. */
  readonly type: "ws-ping";
}

/** A pong arrived. */
export interface WsPongEvent extends WsControlEvent {
  /** Discriminant. */
  readonly type: "ws-pong";
}

/**
 * The WebSocket closed. `wasClean`: the close handshake completed (both
 * sides sent a close frame). A connection that ended without one reports
 * 1006; a close frame without a code, 1005.
 */
export interface WsCloseEvent {
  /** Discriminant. */
  readonly type: "ws-close";
  /** The socket. */
  readonly socket: MgWebSocket;
  /** Its connection. */
  readonly conn: Connection;
  /** The close code (the peer's, or the one mgnet failed the connection with). */
  readonly code: number;
  /** The close reason. */
  readonly reason: string;
  /** Whether the close handshake completed. */
  readonly wasClean: boolean;
}

/**
 * A complete message. `data` is a string for a text message and a
 * `Uint8Array` for a binary one (a view of the event batch, no copy; it
 * stays valid for as long as it is held).
 *
 * @example Echo server with the event API
 * ```ts
 * import assert from "node:assert/strict";
 * import { acceptWebSocket, Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const { port } = mgr.listen("http://127.0.0.1:0");
 * const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
 * ws.onopen = () => ws.send("hello");
 * const echoed = new Promise((r) => ws.onmessage = (e) => r(e.data));
 * for await (const ev of mgr) {
 *   if (ev.type === "http") acceptWebSocket(ev);
 *   if (ev.type === "ws-message") {
 *     assert.equal(ev.binary, false);
 *     ev.socket.send(ev.data);
 *     break;
 *   }
 * }
 * assert.equal(await echoed, "hello");
 * ws.close();
 * ```
 */
export class WsMessageEvent {
  /** Discriminant. */
  readonly type = "ws-message" as const;
  /** The socket. */
  readonly socket: MgWebSocket;
  /** Its connection. */
  readonly conn: Connection;
  /** True for a binary message. */
  readonly binary: boolean;
  #u8: Uint8Array;
  #start: number;
  #end: number;
  #text: string | undefined;

  /**
   * Made by the decoder.
   *
   * @param socket The socket.
   * @param binary Binary or text.
   * @param u8 The batch.
   * @param start First byte of the message.
   * @param end End of the message.
   */
  constructor(socket: MgWebSocket, binary: boolean, u8: Uint8Array, start: number, end: number) {
    this.socket = socket;
    this.conn = socket.conn;
    this.binary = binary;
    this.#u8 = u8;
    this.#start = start;
    this.#end = end;
  }

  /** The message: a string (text) or bytes (binary). */
  get data(): string | Uint8Array {
    return this.binary ? this.bytes : this.text();
  }

  /** The message's bytes (for text: its UTF-8), a view without a copy. */
  get bytes(): Uint8Array {
    return this.#u8.subarray(this.#start, this.#end);
  }

  /**
   * The message decoded as UTF-8 (text messages are valid UTF-8: mgnet
   * closes a connection that sends anything else with 1007).
   *
   * @returns The text.
   */
  text(): string {
    return this.#text ??= utf8Decoder.decode(this.bytes);
  }
}

/** The events of a WebSocket. */
export type WsEvent = WsOpenEvent | WsMessageEvent | WsPingEvent | WsPongEvent | WsCloseEvent;

/** Settings of a socket, for accepting or connecting. */
export interface WebSocketOptions {
  /**
   * Largest message accepted, in bytes, after reassembly and inflation
   * (default 16 MiB); a larger one closes the connection with 1009.
   */
  maxMessageSize?: number;
  /** How long a close we started waits for the peer's close frame (ms, default 5000). */
  closeTimeout?: number;
  /** Answer pings automatically (default true). `ws-ping` events come either way. */
  autoPong?: boolean;
  /**
   * permessage-deflate: a server accepts it when the client offers it, a
   * client offers it (default false for both). A server never keeps a
   * compression context (one compressor serves every socket); a client
   * that keeps its own costs the server an inflater per socket (~47 KiB
   * measured) unless `{ clientNoContextTakeover: true }` asks clients to
   * reset theirs per message.
   */
  deflate?: boolean | { clientNoContextTakeover?: boolean };
  /**
   * Keep-alive, in ms (default: none, except `upgradeWebSocket`'s
   * `idleTimeout`): after this long without a byte from the peer, mgnet
   * sends a ping; if nothing arrives in the `pongTimeout` after it, the
   * socket is closed: the peer gets a close frame 1001 "No response from
   * ping frame.", and `ws-close`/`onclose` report code 1001 with that
   * reason and `wasClean: false` (with `onerror` first). Any frame counts
   * as an answer, not only the pong. Timed natively (no JS timer per
   * socket). A peer that does not read never sees the ping behind the
   * output it does not read, so it is closed too; but a ping queued behind
   * output the peer's kernel has not yet acknowledged waits again as long
   * as the peer keeps acknowledging more of it (a slow reader, or a server
   * socket not read because over 1 MiB of its output waits, is not closed
   * for a pong it could not send or mgnet could not read yet).
   */
  pingInterval?: number;
  /** How long a keep-alive ping waits for anything from the peer (ms, default `pingInterval`). */
  pongTimeout?: number;
  /**
   * The most bytes of unsent output a send may find queued (default
   * 16 MiB; `Infinity`: no limit). A send, broadcast, ping or automatic
   * pong that finds more fails the socket: what was queued is dropped (a
   * close frame could not get past it), the connection is closed, and
   * `ws-close`/`onclose` report 1006 (`wasClean: false`). So a socket's
   * output holds at most this plus one message, also when `send` is not
   * awaited (`Deno.upgradeWebSocket` buffers without limit). Await
   * {@linkcode MgWebSocket.drained} to stay under it.
   */
  maxBufferedAmount?: number;
}

/** The default of `maxBufferedAmount` (`rust/src/ws/socket.rs`, `DEFAULT_MAX_BUFFERED`). */
const DEFAULT_MAX_BUFFERED = 16 << 20;
/**
 * Received events a socket's own queue (its `for await`, or a client socket
 * not iterated yet) may hold before the socket stops being read, and their
 * message bytes; reading restarts at a quarter of both.
 */
const HOLD_EVENTS = 1024;
const HOLD_BYTES = 1 << 20;

/** Native keep-alive and send-limit settings (`mgnet_ws_tune`). */
export interface WsTuning {
  /** Ping after this many ms without input (0: none). */
  ping: number;
  /** Close this many ms after the ping without input. */
  pong: number;
  /** Most unsent bytes a send may find (0: the default). */
  maxBuffered: number;
}

function msOption(name: string, v: number | undefined, zeroOk: boolean): number {
  if (v === undefined) return 0;
  if (!(Number.isInteger(v) && (zeroOk ? v >= 0 : v > 0) && v <= 0x7fffffff)) {
    throw new RangeError(`${name} must be a ${zeroOk ? "non-negative" : "positive"} integer number of ms`);
  }
  return v;
}

/**
 * Checks the keep-alive and send-limit options and turns them into native
 * settings. `idleTimeout` (seconds, `Deno.upgradeWebSocket`'s) pings after
 * half of it and closes after the other half; `idleDefault` is used when
 * neither it nor `pingInterval` is given.
 *
 * @param options The socket's options.
 * @param idleDefault The `idleTimeout` to assume, in seconds (0: none).
 * @returns The settings, or undefined when all are the defaults.
 * @throws {RangeError} for a value out of range; {TypeError} for `idleTimeout` with `pingInterval`.
 */
export function wsTuning(
  options: WebSocketOptions & { idleTimeout?: number },
  idleDefault: number,
): WsTuning | undefined {
  const idle = options.idleTimeout;
  if (idle !== undefined && (options.pingInterval !== undefined || options.pongTimeout !== undefined)) {
    throw new TypeError("give idleTimeout (seconds) or pingInterval/pongTimeout (ms), not both");
  }
  if (idle !== undefined && !(typeof idle === "number" && idle >= 0 && idle * 500 <= 0x7fffffff)) {
    throw new RangeError("idleTimeout must be a non-negative number of seconds");
  }
  let ping = msOption("pingInterval", options.pingInterval, true);
  let pong = msOption("pongTimeout", options.pongTimeout, false);
  if (options.pingInterval === undefined && options.pongTimeout === undefined) {
    const half = Math.round((idle ?? idleDefault) * 500);
    ping = idle === 0 ? 0 : Math.max(half, (idle ?? idleDefault) > 0 ? 1 : 0);
    pong = ping;
  }
  const m = options.maxBufferedAmount;
  if (m !== undefined && !(m === Infinity || Number.isSafeInteger(m) && m > 0)) {
    throw new RangeError("maxBufferedAmount must be a positive integer or Infinity");
  }
  const maxBuffered = m === undefined || m === DEFAULT_MAX_BUFFERED ? 0 : m;
  if (ping === 0 && maxBuffered === 0) return undefined;
  return { ping, pong, maxBuffered };
}

/** What the manager-wide code needs from a socket (not re-exported by `mod.ts`). */
export interface SocketInternals {
  create(conn: Connection, loop: Loop, client: boolean, url: string): MgWebSocket;
  /** The native accept ran: the socket may send. */
  accepted(s: MgWebSocket, protocol: string): void;
  /** A record arrived: returns the event if nobody consumes it at the socket. */
  route(s: MgWebSocket, ev: WsEvent): WsEvent | undefined;
  /** WS_OPEN decoded. */
  opened(s: MgWebSocket, protocol: string, extensions: string): void;
  /** WS_CLOSE decoded (or the connection ended without one). */
  closed(s: MgWebSocket, code: number, reason: string, clean: boolean): void;
  /** Whether the socket saw its close. */
  isClosed(s: MgWebSocket): boolean;
  /** A client handshake failed (before open). */
  failed(s: MgWebSocket, error: Error): void;
  /** Resolves once the client socket is open; rejects if it never opens. */
  whenOpen(s: MgWebSocket): Promise<void>;
  /** Runs `f` when the socket's accept may run (serve's `upgradeWebSocket`). */
  setPending(s: MgWebSocket, f: () => void): void;
  /** Runs a pending accept. */
  runPending(s: MgWebSocket): boolean;
}

/** Accessors of private socket state. */
export let socketInternals: SocketInternals;

const enc = utf8Encoder;

/** Close codes an application may send (RFC 6455 7.4 and the IANA registry). */
function sendableCode(code: number): boolean {
  return Number.isInteger(code) &&
    (code >= 1000 && code <= 1003 || code >= 1007 && code <= 1014 || code >= 3000 && code <= 4999);
}

/** What `send` takes. */
export type WebSocketData = string | ArrayBufferLike | ArrayBufferView;

/**
 * A WebSocket, server or client side. It follows the browser's
 * `WebSocket` (`onopen`/`onmessage`/`onclose`/`onerror`,
 * `addEventListener`, `send`, `close`, `readyState`, `binaryType`,
 * `bufferedAmount`, `protocol`), so code written for
 * `Deno.upgradeWebSocket` runs on it, and adds what servers need:
 * `ping`/`pong`, an awaitable {@linkcode drained}, a per-socket
 * `for await`, and `send` returning the bytes still queued.
 *
 * Backpressure: `send` never blocks; while a peer does not read, what is
 * sent waits in memory (`bufferedAmount`). Await {@linkcode drained} to
 * keep that bounded. mgnet also stops reading a socket while over 1 MiB of
 * its output is unsent, so an echo to a peer that does not read cannot
 * grow without bound, and a send that finds more than `maxBufferedAmount`
 * (16 MiB by default) unsent closes the socket (1006) instead of queueing:
 * sends that are not awaited cannot grow native memory without bound.
 * On the receiving side, events waiting in a socket's own queue (a
 * `for await` slower than the peer, or a client socket not iterated yet)
 * stop the socket being read once over 1,024 events or 1 MiB of messages,
 * and reading restarts at a quarter of that: the peer is held back by TCP,
 * and nothing is lost.
 *
 * @example A per-socket loop
 * ```ts
 * import assert from "node:assert/strict";
 * import { acceptWebSocket, Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const { port } = mgr.listen("http://127.0.0.1:0", {
 *   async onRequest(ev) {
 *     const socket = acceptWebSocket(ev);
 *     for await (const m of socket) {
 *       if (m.type === "ws-message") socket.send(`got ${m.data}`);
 *     }
 *   },
 * });
 * const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
 * ws.onopen = () => ws.send("x");
 * assert.equal(await new Promise((r) => ws.onmessage = (e) => r(e.data)), "got x");
 * ws.close();
 * await new Promise((r) => ws.onclose = r);
 * ```
 */
export class MgWebSocket extends EventTarget implements AsyncIterable<WsEvent> {
  /** `readyState`: not open yet. */
  static readonly CONNECTING = 0;
  /** `readyState`: open. */
  static readonly OPEN = 1;
  /** `readyState`: closing. */
  static readonly CLOSING = 2;
  /** `readyState`: closed. */
  static readonly CLOSED = 3;
  /** `readyState`: not open yet. */
  readonly CONNECTING = 0;
  /** `readyState`: open. */
  readonly OPEN = 1;
  /** `readyState`: closing. */
  readonly CLOSING = 2;
  /** `readyState`: closed. */
  readonly CLOSED = 3;

  /** The connection under the socket. */
  readonly conn: Connection;
  /** For a client: the URL connected to; for a server socket: `""`. */
  readonly url: string;
  #loop: Loop;
  #client: boolean;
  #state = 0;
  #protocol = "";
  #extensions = "";
  #binaryType: BinaryType;
  #buffered = 0;
  #listening = false;
  #handlers = new Map<string, EventListener>();
  #queue: WsEvent[] = [];
  /** Message bytes in {@linkcode #queue}, and whether reading is held for it. */
  #queuedBytes = 0;
  #held = false;
  #wake: (() => void) | undefined;
  #iterating = false;
  #closeSeen = false;
  #opened = Promise.withResolvers<void>();
  #pending: (() => void) | undefined;

  static {
    socketInternals = {
      create: (conn, loop, client, url) => new MgWebSocket(conn, loop, client, url),
      accepted: (s, protocol) => {
        s.#state = 1;
        s.#protocol = protocol;
      },
      route: (s, ev) => s.#route(ev),
      opened: (s, protocol, extensions) => {
        if (s.#state === 0) s.#state = 1;
        s.#protocol = protocol;
        s.#extensions = extensions;
        s.#opened.resolve();
      },
      closed: (s, code, reason, clean) => {
        s.#closeSeen = true;
        s.#state = 3;
        void [code, reason, clean];
        s.#opened.reject(new MgnetError("the WebSocket closed before it opened", "Closed"));
        s.#opened.promise.catch(() => {});
      },
      isClosed: (s) => s.#closeSeen,
      failed: (s, error) => {
        s.#state = 3;
        s.#closeSeen = true;
        s.#opened.reject(error);
        s.#opened.promise.catch(() => {});
      },
      whenOpen: (s) => s.#opened.promise,
      setPending: (s, f) => void (s.#pending = f),
      runPending: (s) => {
        const f = s.#pending;
        s.#pending = undefined;
        if (!f) return false;
        f();
        return true;
      },
    };
  }

  private constructor(conn: Connection, loop: Loop, client: boolean, url: string) {
    super();
    this.conn = conn;
    this.#loop = loop;
    this.#client = client;
    this.url = url;
    this.#binaryType = client ? "blob" : "arraybuffer";
  }

  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  get readyState(): number {
    return this.#state;
  }

  /** The subprotocol agreed on (`""`: none). */
  get protocol(): string {
    return this.#protocol;
  }

  /** The extensions agreed on (`"permessage-deflate; ..."` or `""`). */
  get extensions(): string {
    return this.#extensions;
  }

  /** How binary messages reach `onmessage`: `"arraybuffer"` (server default) or `"blob"` (client default). */
  get binaryType(): BinaryType {
    return this.#binaryType;
  }

  set binaryType(t: BinaryType) {
    if (t === "arraybuffer" || t === "blob") this.#binaryType = t;
  }

  /** Bytes sent but not yet taken by the network (0 once closed and drained). */
  get bufferedAmount(): number {
    if (this.#state === 0 || this.conn.closed) return this.#state === 3 ? this.#buffered : 0;
    const host = connInternals.host(this.conn);
    const rc = host.sym.mgnet_ws_want_drain(host.handle, connInternals.slot(this.conn), this.conn.id, 0);
    if (rc >= 0) this.#buffered = rc;
    return this.#buffered;
  }

  /**
   * Sends a message: a string as text, bytes as binary.
   *
   * @param data The message.
   * @returns The bytes queued on this socket and not yet sent.
   * @throws {DOMException} (`InvalidStateError`) before the socket is open.
   */
  send(data: WebSocketData): number {
    if (typeof data === "string") {
      const buf = encodeString(data);
      return this.#send(Opcode.Text, buf, 0, encodedLen);
    }
    if (ArrayBuffer.isView(data)) {
      return this.#send(
        Opcode.Binary,
        new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
        0,
        data.byteLength,
      );
    }
    if (data instanceof ArrayBuffer || data instanceof SharedArrayBuffer) {
      return this.#send(Opcode.Binary, new Uint8Array(data), 0, data.byteLength);
    }
    throw new TypeError("send() takes a string, an ArrayBuffer or a typed array");
  }

  /**
   * Sends a ping (the peer answers with a pong: a `ws-pong` event).
   *
   * @param data At most 125 bytes.
   * @returns The bytes queued and not yet sent.
   */
  ping(data: string | Uint8Array = new Uint8Array(0)): number {
    const b = typeof data === "string" ? enc.encode(data) : data;
    return this.#send(Opcode.Ping, b, 0, b.length);
  }

  /**
   * Sends a pong (for answering pings yourself with `autoPong: false`, or
   * as a one-way heartbeat).
   *
   * @param data At most 125 bytes.
   * @returns The bytes queued and not yet sent.
   */
  pong(data: string | Uint8Array = new Uint8Array(0)): number {
    const b = typeof data === "string" ? enc.encode(data) : data;
    return this.#send(Opcode.Pong, b, 0, b.length);
  }

  #send(opcode: number, buf: Uint8Array, off: number, len: number): number {
    if (this.#state !== 1) {
      if (this.#state === 0) throw new DOMException("the WebSocket is not open yet", "InvalidStateError");
      return this.#buffered; // closing or closed: dropped, as browsers do
    }
    const host = connInternals.host(this.conn);
    const rc = host.sym.mgnet_ws_send(
      host.handle,
      connInternals.slot(this.conn),
      this.conn.id,
      opcode,
      this.#extensions === "" ? 0 : 1,
      buf,
      off,
      len,
    );
    if (rc < 0) {
      if (rc === Status.Closed || rc === Status.State) return this.#buffered;
      host.check(rc);
    }
    host.queued();
    this.#buffered = rc;
    return rc;
  }

  /**
   * Starts the closing handshake. The `ws-close` event (and `onclose`)
   * follows once the peer answers, or after the close timeout.
   *
   * @param code 1000, 1001–1003, 1007–1014 or 3000–4999; none: a close frame without a code.
   * @param reason At most 123 bytes of UTF-8.
   * @throws {DOMException} `InvalidAccessError` for another code, `SyntaxError` for a long reason.
   */
  close(code?: number, reason?: string): void {
    if (code !== undefined && !sendableCode(code)) {
      throw new DOMException(`invalid close code ${code}`, "InvalidAccessError");
    }
    const r = enc.encode(reason ?? "");
    if (r.length > 123) throw new DOMException("a close reason is at most 123 bytes", "SyntaxError");
    if (this.#state >= 2) return;
    const pending = this.#state === 0 && this.#pending !== undefined;
    this.#state = 2;
    if (pending) return; // not accepted yet: the upgrade is not answered with 101
    if (this.conn.closed) return;
    const host = connInternals.host(this.conn);
    const rc = host.sym.mgnet_ws_close(
      host.handle,
      connInternals.slot(this.conn),
      this.conn.id,
      code ?? (r.length > 0 ? 1000 : 0),
      r,
      r.length,
    );
    if (rc < 0 && rc !== Status.Closed) host.check(rc);
    host.queued();
  }

  /**
   * Resolves once at most `mark` bytes of this socket's output are unsent
   * (at once if that holds already).
   *
   * @param mark Bytes (default 0: everything sent).
   * @returns The wait; rejects with `ConnectionClosedError` if the connection closes first.
   */
  drained(mark = 0): Promise<void> {
    connInternals.assertOpen(this.conn);
    const host = connInternals.host(this.conn);
    const rc = host.sym.mgnet_ws_want_drain(host.handle, connInternals.slot(this.conn), this.conn.id, mark);
    if (rc < 0) host.check(rc);
    this.#buffered = rc;
    return rc === 0 ? Promise.resolve() : host.drained(this.conn);
  }

  /**
   * The socket's events (`ws-open`, `ws-message`, `ws-ping`, `ws-pong`,
   * `ws-close`) while the loop runs; ends after `ws-close`. While it runs,
   * they do not reach the manager's iterator.
   *
   * @returns The iterator.
   */
  [Symbol.asyncIterator](): AsyncIterator<WsEvent> {
    if (this.#iterating) throw new MgnetError("this WebSocket is already being iterated", "State");
    this.#iterating = true;
    const release = this.#loop.hold();
    const stop = (): IteratorReturnResult<undefined> => {
      this.#iterating = false;
      release();
      return { value: undefined, done: true };
    };
    return {
      next: async (): Promise<IteratorResult<WsEvent>> => {
        for (;;) {
          const ev = this.#queue.shift();
          if (ev !== undefined) {
            if (ev.type === "ws-message") this.#queuedBytes -= ev.bytes.length;
            if (
              this.#held && this.#queue.length <= HOLD_EVENTS / 4 && this.#queuedBytes <= HOLD_BYTES / 4
            ) this.#hold(false);
            if (ev.type === "ws-close") stop();
            return { value: ev, done: false };
          }
          if (this.#closeSeen || !this.#iterating || this.#loop.closed) return stop();
          await new Promise<void>((r) => this.#wake = r);
        }
      },
      return: (): Promise<IteratorResult<WsEvent>> => Promise.resolve(stop()),
    };
  }

  #route(ev: WsEvent): WsEvent | undefined {
    // A client socket (from `connect()`) never has its events in the
    // manager's iterator: they wait in its own queue until it is iterated,
    // so a close that arrives before the `for await` starts is not lost.
    if (!this.#iterating && !this.#listening && !this.#client) return ev;
    if (this.#iterating || (this.#client && !this.#listening)) {
      this.#queue.push(ev);
      if (ev.type === "ws-message") this.#queuedBytes += ev.bytes.length;
      // Events JS does not take yet must not grow without bound: over the
      // marks the socket stops being read, so TCP holds the peer back.
      if (!this.#held && (this.#queue.length > HOLD_EVENTS || this.#queuedBytes > HOLD_BYTES)) {
        this.#hold(true);
      }
      const w = this.#wake;
      this.#wake = undefined;
      w?.();
    }
    if (this.#listening) this.#dispatch(ev);
    return undefined;
  }

  /** Stops or restarts reading the socket while its queue is over the marks. */
  #hold(on: boolean): void {
    this.#held = on;
    if (this.conn.closed) return;
    const host = connInternals.host(this.conn);
    const rc = host.sym.mgnet_ws_hold(host.handle, connInternals.slot(this.conn), this.conn.id, on ? 1 : 0);
    if (rc < 0 && rc !== Status.Closed && rc !== Status.State) host.check(rc);
    if (!on) host.wake(); // what arrived meanwhile was parsed: the loop must look
  }

  #dispatch(ev: WsEvent): void {
    switch (ev.type) {
      case "ws-open":
        this.dispatchEvent(new Event("open"));
        return;
      case "ws-message": {
        let data: string | ArrayBuffer | Blob;
        if (!ev.binary) data = ev.text();
        else if (this.#binaryType === "blob") data = new Blob([ev.bytes.slice()]);
        else data = ev.bytes.slice().buffer;
        this.dispatchEvent(new MessageEvent("message", { data, origin: this.url }));
        return;
      }
      case "ws-close":
        if (!ev.wasClean) this.dispatchEvent(new Event("error"));
        this.dispatchEvent(
          new CloseEvent("close", { code: ev.code, reason: ev.reason, wasClean: ev.wasClean }),
        );
        return;
    }
  }

  /**
   * Adds a listener (`open`, `message`, `close`, `error`); from then on the
   * socket's events come here instead of the manager's iterator.
   *
   * @param type The event type.
   * @param listener The listener.
   * @param options Listener options.
   */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    this.#listening = true;
    super.addEventListener(type, listener, options);
  }

  #setHandler(type: string, f: ((ev: any) => void) | null): void {
    const old = this.#handlers.get(type);
    if (old) super.removeEventListener(type, old);
    this.#handlers.delete(type);
    if (typeof f === "function") {
      const wrapped = f as EventListener;
      this.#handlers.set(type, wrapped);
      this.addEventListener(type, wrapped);
    }
  }

  /** Called when the socket opens. */
  get onopen(): ((ev: Event) => void) | null {
    return (this.#handlers.get("open") as (ev: Event) => void) ?? null;
  }
  set onopen(f: ((ev: Event) => void) | null) {
    this.#setHandler("open", f);
  }

  /** Called for each message (`data`: a string, or an ArrayBuffer/Blob per `binaryType`). */
  get onmessage(): ((ev: MessageEvent) => void) | null {
    return (this.#handlers.get("message") as (ev: MessageEvent) => void) ?? null;
  }
  set onmessage(f: ((ev: MessageEvent) => void) | null) {
    this.#setHandler("message", f);
  }

  /** Called once the socket closed (`code`, `reason`, `wasClean`). */
  get onclose(): ((ev: CloseEvent) => void) | null {
    return (this.#handlers.get("close") as (ev: CloseEvent) => void) ?? null;
  }
  set onclose(f: ((ev: CloseEvent) => void) | null) {
    this.#setHandler("close", f);
  }

  /** Called when the connection failed (before `onclose`). */
  get onerror(): ((ev: Event) => void) | null {
    return (this.#handlers.get("error") as (ev: Event) => void) ?? null;
  }
  set onerror(f: ((ev: Event) => void) | null) {
    this.#setHandler("error", f);
  }
}
