/**
 * The user-facing manager: one entry point above the core loop and the
 * protocols. It registers the protocols with its loop, maps listen URL
 * schemes to them, and offers the two ways to consume events: `for await`
 * over the manager, or per-listener handlers.
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";
import { Loop } from "./core/loop.ts";
import { lib } from "./core/ffi.ts";
import { ManagerClosedError, MgnetError } from "./core/errors.ts";
import { StatsOut } from "./core/abi.ts";
import { readMetrics } from "./core/metrics.ts";
import type { ConnCloseEvent, ConnErrorEvent, MgEvent, OpenEvent } from "./events.ts";
import { HTTP_SCHEMES, HttpProtocol } from "./http/protocol.ts";
import type { HttpRequestEvent } from "./http/request_event.ts";
import { bodyToBytes, encodeCachedHead } from "./http/headers.ts";
import {
  cacheDelete,
  type CachedResponse,
  cacheInvalidate,
  type CacheOptions,
  cacheSet,
} from "./http/cache.ts";
import { type HttpLimits, newNativeManager } from "./http/limits.ts";
import {
  type ClientConnectOptions,
  type ClientRequestOptions,
  type ClientResponse,
  type HttpClientConnection,
  openHttpConnection,
} from "./http/client.ts";
import { ClientPool, httpRequest } from "./http/client_pool.ts";
import { bindUdp, type UdpHandlers, type UdpListenOptions, UdpProtocol, type UdpSocket } from "./net/udp.ts";
import { DnsProtocol, resolve, type ResolveOptions } from "./net/dns.ts";
import { type SntpOptions, SntpProtocol, sntpQuery, type SntpResult } from "./net/sntp.ts";
import {
  type Timer,
  type TimerEvent,
  timerInternals,
  type TimerOptions,
  TimerProtocol,
} from "./net/timer.ts";
import { type PostEvent, type PostPort, PostProtocol } from "./net/post.ts";
import { ClientError, resolveAddr } from "./http/client.ts";
import { TCP_SCHEMES, TcpProtocol } from "./net/protocol.ts";
import {
  framingArgs,
  openTcpConnection,
  setListenerFraming,
  type TcpConnection,
  type TcpConnectOptions,
  type TcpHandlers,
  type TcpListenOptions,
} from "./net/tcp.ts";

/** The schemes `listen` takes for connection listeners (`udp://` binds a socket). */
const LISTEN_SCHEMES: readonly string[] = [...HTTP_SCHEMES, ...TCP_SCHEMES, "https", "tls"];
import { WsProtocol } from "./ws/protocol.ts";
import { encodeListenTls, hasListenTls, type TlsListenOptions } from "./core/tls.ts";
import { connectWebSocket, type WebSocketConnectOptions } from "./ws/client.ts";
import type { MgWebSocket } from "./ws/socket.ts";

/**
 * Callbacks for a listener's connections, for those who prefer handlers to
 * a `for await` loop. They run synchronously inside the manager's loop, one
 * batch of events at a time; `onRequest` may return a promise (an async
 * handler) and reply later.
 */
export interface ListenHandlers {
  /** Called for every complete HTTP request. */
  onRequest(ev: HttpRequestEvent): void | Promise<void>;
  /** A connection was accepted. */
  onOpen?(ev: OpenEvent): void;
  /** A connection failed (a close follows). */
  onError?(ev: ConnErrorEvent): void;
  /** A connection closed. */
  onClose?(ev: ConnCloseEvent): void;
  /**
   * `onRequest` threw or its promise rejected. By default the error is
   * logged with `console.error`; either way an unanswered request then gets
   * a 500 response.
   */
  onHandlerError?(error: unknown, ev: HttpRequestEvent): void;
}

/** Counters of a {@linkcode Manager} since it was created ({@linkcode Manager.stats}). */
export interface ManagerStats {
  /**
   * Polls that gathered a batch of events for JS. Connections arriving
   * together are accepted within one (Mongoose alone accepts one per poll).
   */
  polls: number;
  /** Connections accepted by listeners. */
  accepted: number;
  /** HTTP requests parsed: handed to JS or answered from the cache. */
  requests: number;
  /** Requests answered from the native cache, without JS. */
  cacheHits: number;
}

/** Options of a {@linkcode Manager}: HTTP request limits and shutdown. */
export interface ManagerOptions extends HttpLimits {
  /** Aborting it starts a graceful {@linkcode Manager.shutdown}. */
  signal?: AbortSignal;
  /** Longest a graceful shutdown waits for in-flight responses (ms, default 10 000). */
  shutdownTimeout?: number;
  /**
   * Turns metrics on: {@linkcode Manager.metrics} returns them in the
   * Prometheus text format, with the request latency histogram (at most
   * two clock reads per poll, none per request). Default off.
   */
  metrics?: boolean;
}

/**
 * A listening socket made by {@linkcode Manager.listen}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../mod.ts";
 *
 * await using mgr = new Manager();
 * const listener = mgr.listen("http://127.0.0.1:0");
 * assert.ok(listener.port > 0);
 * listener.close();
 * assert.equal(listener.closed, true);
 * ```
 */
export class Listener {
  /** Mongoose's connection id of the listening socket. */
  readonly id: number;
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  /** The URL passed to `listen`. */
  readonly url: string;
  #close: () => void;
  #isClosed: () => boolean;
  #reload?: (tls: TlsListenOptions) => void;
  #closed = false;

  /**
   * Made by {@linkcode Manager.listen}; not constructed by users.
   *
   * @param id Connection id.
   * @param port Bound port.
   * @param url Listen URL.
   * @param close Stops the listening socket.
   * @param isClosed Whether its manager is closed.
   * @param reload Replaces its TLS settings (TLS listeners only).
   */
  constructor(
    id: number,
    port: number,
    url: string,
    close: () => void,
    isClosed: () => boolean,
    reload?: (tls: TlsListenOptions) => void,
  ) {
    this.id = id;
    this.port = port;
    this.url = url;
    this.#close = close;
    this.#isClosed = isClosed;
    this.#reload = reload;
  }

  /**
   * Replaces the certificates (and the other TLS settings) of an
   * `https://` or `tls://` listener without a restart: handshakes from now
   * on use them, open connections keep theirs. Bad settings throw and leave
   * the old ones in place.
   *
   * @param tls The new settings, as `listen` took them.
   * @throws {MgnetError} (`Invalid`) for a bad PEM or a key that does not
   *   match, or if this listener has no TLS; {ManagerClosedError} once closed.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager, selfSignedCert } from "../mod.ts";
   *
   * await using mgr = new Manager();
   * const listener = mgr.listen("https://127.0.0.1:0", { ...selfSignedCert(), onRequest: (ev) => void ev.reply(200, "hi") });
   * listener.reloadTls(selfSignedCert(["example.test"]));
   * assert.throws(() => listener.reloadTls({ cert: "junk", key: "junk" }), /cert/);
   * ```
   */
  reloadTls(tls: TlsListenOptions): void {
    if (!this.#reload) throw new MgnetError(`${this.url} is not a TLS listener`, "Invalid");
    if (this.closed) throw new ManagerClosedError();
    this.#reload(tls);
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed || this.#isClosed();
  }

  /** Stops accepting connections; open connections stay. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.#closed = true;
    this.#close();
  }
}

const DONE: IteratorReturnResult<undefined> = { value: undefined, done: true };

/** The loop of a manager, for code inside `src/` (not re-exported by `mod.ts`). */
export let managerLoop: (mgr: Manager) => Loop;

/**
 * The manager whose handler loop runs the current code, if any: handlers
 * (`onRequest`... and `serve()`'s fetch handler) and everything they await
 * see it, because each manager's handler loop runs inside
 * `handlerContext.run(manager, ...)` (one `run` per manager, no per-request
 * cost). mgnet's `fetch` uses it to run on the manager serving the request.
 * For code inside `src/` (not re-exported by `mod.ts`).
 */
export const handlerContext: AsyncLocalStorage<Manager> = new AsyncLocalStorage<Manager>();

/**
 * Owns a Mongoose event manager. Create listeners with {@linkcode listen},
 * then consume events with `for await`. Only one loop may iterate a manager.
 * Breaking out of the loop closes the manager.
 *
 * @example Hello server on an ephemeral port
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../mod.ts";
 *
 * await using mgr = new Manager();
 * const listener = mgr.listen("http://127.0.0.1:0");
 * const served = (async () => {
 *   for await (const ev of mgr) {
 *     if (ev.type === "http") ev.reply(200, "hello");
 *   }
 * })();
 * const res = await fetch(`http://127.0.0.1:${listener.port}/`);
 * assert.equal(await res.text(), "hello");
 * await mgr.close();
 * await served;
 * ```
 */
export class Manager implements AsyncIterable<MgEvent>, AsyncDisposable {
  #loop: Loop;
  #http = new HttpProtocol();
  #udp = new UdpProtocol();
  #dns = new DnsProtocol();
  #sntp = new SntpProtocol();
  #ws: WsProtocol;
  #iterating = false;
  #pumping: Promise<void> | undefined;
  #tcp = new TcpProtocol();
  #handlers = new Map<number, ListenHandlers | TcpHandlers>();
  /** Handlers of each open connection accepted by a listener with handlers (or UDP socket), by id. */
  #connHandlers = new Map<number, ListenHandlers | TcpHandlers | UdpHandlers>();
  #shutdown: Promise<void> | undefined;
  #shutdownTimeout: number;
  #pool: ClientPool | undefined;
  // net: timers and posts
  #timers = new TimerProtocol();
  #posts = new PostProtocol();
  #onPost: ((ev: PostEvent) => void) | undefined;
  #metrics: boolean;

  static {
    managerLoop = (mgr) => mgr.#loop;
  }

  /**
   * Creates a manager (loads the native library on first use).
   *
   * @param options Request limits for HTTP listeners, shutdown signal and timeout.
   * @throws {Error} if the native library cannot be loaded.
   */
  constructor(options: ManagerOptions = {}) {
    const timeout = options.shutdownTimeout ?? 10_000;
    if (!(timeout >= 0)) throw new RangeError("shutdownTimeout must be a non-negative number of ms");
    this.#shutdownTimeout = timeout;
    this.#loop = new Loop(newNativeManager(lib(), options));
    this.#metrics = options.metrics === true;
    if (this.#metrics) this.#loop.check(this.#loop.sym.mgnet_metrics_enable(this.#loop.handle, 1));
    this.#loop.register(this.#http);
    this.#loop.register(this.#tcp);
    this.#loop.register(this.#udp);
    this.#loop.register(this.#dns);
    this.#loop.register(this.#sntp);
    this.#loop.register(this.#timers);
    this.#loop.register(this.#posts);
    this.#ws = new WsProtocol(this.#loop);
    this.#loop.register(this.#ws);
    this.#loop.onClosed(() => this.#pool?.clear()); // its connections are closed by now: this drops their timers
    options.signal?.addEventListener("abort", () => void this.shutdown(), { once: true });
  }

  /** True once {@linkcode close} was called. */
  get closed(): boolean {
    return this.#loop.closed;
  }

  /**
   * Binds a UDP socket. Its datagrams arrive as `datagram` events (with
   * `bytes` and the sender's address `from`) or go to `onDatagram`; one over
   * `maxDatagram` arrives as a `datagram-oversized` event (`onOversized`).
   *
   * @param url `udp://IP:port` (`udp://0.0.0.0:0`, `udp://[::]:0`...).
   * @param options Size limit, broadcast, receive buffer; handlers instead of `for await`.
   * @returns The socket, with its real `port`.
   * @throws {MgnetError} (`Invalid`) for a bad URL; (`Io`) if it cannot be bound.
   * @example Handlers: an echo socket
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager } from "../mod.ts";
   *
   * await using mgr = new Manager();
   * const sock = mgr.listen("udp://127.0.0.1:0", { onDatagram: (ev) => void ev.reply(ev.bytes) });
   * const peer = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
   * await peer.send(new Uint8Array([1, 2, 3]), { transport: "udp", hostname: "127.0.0.1", port: sock.port });
   * const [echo] = await peer.receive();
   * assert.deepEqual([...echo], [1, 2, 3]);
   * peer.close();
   * ```
   */
  listen(url: `udp://${string}`, options?: UdpListenOptions): UdpSocket;
  /**
   * Starts listening for raw TCP connections ({@linkcode TcpConnection}s,
   * with `data` and `end` events). See the `http://` form for URLs.
   *
   * @param url e.g. `"tcp://0.0.0.0:7000"`, `"tcp://[::1]:0"`.
   * @param options Framing (`"raw"`, `"line"`, `{ lengthPrefix }`), `maxFrame`;
   *   callbacks instead of `for await` if any `on…` is given.
   * @returns The listener, with its real `port`.
   * @throws {MgnetError} (`Invalid`) for a bad URL; {RangeError} or
   *   {TypeError} for bad framing options.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager } from "../mod.ts";
   *
   * await using mgr = new Manager();
   * const lines = mgr.listen("tcp://127.0.0.1:0", { framing: "line", maxFrame: 1024 });
   * assert.ok(lines.port > 0);
   * ```
   */
  listen(url: `tcp://${string}`, options?: TcpListenOptions): Listener;
  /**
   * Starts listening for raw TCP connections over TLS: as `tcp://`, with a
   * certificate and key (see the `https://` form).
   *
   * @param url e.g. `"tls://0.0.0.0:7443"`.
   * @param options TLS settings plus the `tcp://` options.
   * @returns The listener, with its real `port`.
   * @throws {MgnetError} (`Invalid`) for a bad URL, PEM or key.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager, selfSignedCert } from "../mod.ts";
   *
   * await using mgr = new Manager();
   * const l = mgr.listen("tls://127.0.0.1:0", { ...selfSignedCert(), framing: "line", maxFrame: 1024 });
   * assert.ok(l.port > 0);
   * ```
   */
  listen(url: `tls://${string}`, options: TlsListenOptions & TcpListenOptions): Listener;
  /**
   * Starts an HTTPS listener (WebSocket upgrades on it are `wss://`): as
   * `http://`, with a certificate chain and key (PEM; RSA or ECDSA), and
   * optionally certificates by host name (`sni`), client certificates
   * (`ca` + `requestCert`) and ALPN (default `http/1.1`). The settings are
   * parsed once, here: a bad PEM or a key that does not match the
   * certificate throws before anything is bound, and every connection
   * shares them. A failed handshake closes only that connection.
   *
   * @param url e.g. `"https://0.0.0.0:8443"`.
   * @param options TLS settings, plus `onRequest` for handlers instead of `for await`.
   * @returns The listener, with its real `port` and {@linkcode Listener.reloadTls}.
   * @throws {MgnetError} (`Invalid`) for a bad URL, PEM or key, naming what is wrong.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager, selfSignedCert } from "../mod.ts";
   *
   * const { cert, key } = selfSignedCert(["localhost"]);
   * await using mgr = new Manager();
   * const { port } = mgr.listen("https://127.0.0.1:0", { cert, key, onRequest: (ev) => void ev.reply(200, "secure") });
   * const client = Deno.createHttpClient({ caCerts: [cert] });
   * const res = await fetch(`https://localhost:${port}/`, { client });
   * assert.equal(await res.text(), "secure");
   * client.close();
   * ```
   */
  listen(url: `https://${string}`, options: TlsListenOptions & Partial<ListenHandlers>): Listener;
  /**
   * Starts listening. The URL scheme picks the protocol: `http://` serves
   * HTTP/1.1, `tcp://` raw TCP and `udp://` binds a {@linkcode UdpSocket}
   * (see the overloads). Port 0 binds a free port; read it from the result.
   * The URL is checked part by part (scheme, an IP address or `localhost`, a
   * port from 0 to 65535, nothing after it but an optional `/`).
   *
   * @param url e.g. `"http://127.0.0.1:8000"` or `"http://[::1]:0"`.
   * @param handlers Callbacks for this listener's connections, instead of `for await`.
   * @returns The listener, with its real `port`.
   * @throws {MgnetError} (`Invalid`) for a bad URL, naming the bad part;
   *   (`Io`) if the address is in use or cannot be bound.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager, MgnetError } from "../mod.ts";
   *
   * await using mgr = new Manager();
   * const { port } = mgr.listen("http://127.0.0.1:0");
   * assert.ok(port > 0);
   * assert.throws(() => mgr.listen("http://127.0.0.1:99999"), (e) => e instanceof MgnetError && /port/.test(e.message));
   * assert.throws(() => mgr.listen("ftp://127.0.0.1:0"), /unsupported scheme/);
   * ```
   */
  listen(url: string, handlers?: ListenHandlers): Listener;
  listen(
    url: string,
    handlers?:
      | ListenHandlers
      | TcpListenOptions
      | UdpListenOptions
      | (TlsListenOptions & Partial<ListenHandlers>),
  ): Listener | UdpSocket {
    if (/^udp:\/\//i.test(url)) return this.#listenUdp(url, handlers as UdpListenOptions | undefined);
    return this.#listenConn(url, handlers as ListenHandlers | TcpListenOptions | undefined);
  }

  #listenUdp(url: string, options: UdpListenOptions = {}): UdpSocket {
    if (this.#loop.closed) throw new ManagerClosedError();
    if (this.#shutdown) throw new MgnetError("the manager is shutting down", "State");
    const withHandlers = options.onDatagram !== undefined;
    if (withHandlers) {
      if (typeof options.onDatagram !== "function") throw new TypeError("onDatagram must be a function");
      if (this.#iterating) {
        throw new MgnetError("this manager is iterated with for await: listen without handlers", "State");
      }
    } else if (this.#pumping) {
      throw new MgnetError("this manager runs handlers: give this socket an onDatagram handler too", "State");
    }
    const sock = bindUdp(this.#loop, this.#udp, url, options);
    if (withHandlers) {
      this.#connHandlers.set(sock.id, options as UdpHandlers);
      this.#loop.pumping = true;
      this.#pumping ??= handlerContext.run(this, () => this.#pump());
    }
    return sock;
  }

  /** An `http://` or `tcp://` listener. */
  #listenConn(url: string, handlers?: ListenHandlers | TcpListenOptions): Listener {
    if (this.#loop.closed) throw new ManagerClosedError();
    if (this.#shutdown) throw new MgnetError("the manager is shutting down", "State");
    const tcp = /^(tcp|tls):\/\//i.test(url);
    const secure = /^(https|tls):\/\//i.test(url);
    let tlsSpec: Uint8Array | undefined;
    if (secure) {
      if (!hasListenTls(handlers)) {
        throw new TypeError(`${url.split(":")[0]}:// needs TLS settings: { cert, key } (PEM)`);
      }
      tlsSpec = encodeListenTls(handlers);
    } else if (hasListenTls(handlers)) {
      throw new TypeError("cert/key given for a plain listener: use https:// or tls://");
    }
    let h: ListenHandlers | TcpHandlers | undefined = handlers;
    if (secure && !tcp && typeof (handlers as Partial<ListenHandlers>).onRequest === "undefined") {
      h = undefined;
    }
    if (tcp && handlers !== undefined) {
      const t = handlers as TcpListenOptions;
      framingArgs(t); // bad framing options throw before anything is bound
      const names = ["onOpen", "onData", "onEnd", "onError", "onClose"] as const;
      for (const n of names) {
        if (t[n] !== undefined && typeof t[n] !== "function") throw new TypeError(`${n} must be a function`);
      }
      if (!names.some((n) => t[n] !== undefined)) h = undefined; // options only: for await
    }
    if (h !== undefined) {
      if (!tcp && typeof (h as ListenHandlers)?.onRequest !== "function") {
        throw new TypeError("handlers.onRequest must be a function");
      }
      if (this.#iterating) {
        throw new MgnetError("this manager is iterated with for await: listen without handlers", "State");
      }
    } else if (this.#pumping) {
      throw new MgnetError("this manager runs handlers: give this listener handlers too", "State");
    }
    const loop = this.#loop;
    const bound = loop.listen(url, LISTEN_SCHEMES, tcp ? this.#tcp : this.#http, tlsSpec);
    if (tcp && handlers !== undefined) {
      try {
        setListenerFraming(loop, bound.slot, bound.id, handlers as TcpListenOptions);
      } catch (e) {
        loop.unlisten(bound);
        throw e;
      }
    }
    const reload = secure ? (t: TlsListenOptions) => loop.reloadTls(bound, encodeListenTls(t)) : undefined;
    const listener = new Listener(
      bound.id,
      bound.port,
      url,
      () => loop.unlisten(bound),
      () => loop.closed,
      reload,
    );
    if (h !== undefined) {
      this.#handlers.set(listener.id, h);
      this.#startPump();
    }
    return listener;
  }

  #startPump(): void {
    this.#loop.pumping = true;
    this.#pumping ??= handlerContext.run(this, () => this.#pump());
  }

  /** Checks that a handler (or its absence) fits how this manager is consumed. */
  #checkMode(hasHandler: boolean, what: string, handler: string): void {
    if (this.#loop.closed) throw new ManagerClosedError();
    if (hasHandler && this.#iterating) {
      throw new MgnetError(
        `this manager is iterated with for await: give this ${what} no ${handler}`,
        "State",
      );
    }
    if (!hasHandler && this.#pumping) {
      throw new MgnetError(`this manager runs handlers: give this ${what} ${handler} too`, "State");
    }
  }

  /**
   * Starts a timer owned by this manager: its fires are `timer` events (or
   * calls of `onFire`). It runs inside the native loop (no JS timer per
   * fire), never fires after {@linkcode Timer.cancel} or after the manager
   * closes, and does not keep the process alive unless `ref: true`.
   *
   * @param ms Delay, and for a repeating timer its period, in ms (0 to 2^31-1).
   * @param options `repeat`, `ref`, `onFire`.
   * @returns The timer.
   * @throws {MgnetError} (`Invalid`) for a bad delay; (`State`) for an
   *   `onFire` while the manager is iterated, or none while it runs handlers.
   * @example A one-shot and a repeating timer
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager } from "../mod.ts";
   *
   * await using mgr = new Manager();
   * const tick = mgr.setTimer(1, { repeat: true });
   * const stop = mgr.setTimer(30, { ref: true }); // keeps the process running until it fires
   * let ticks = 0;
   * for await (const ev of mgr) {
   *   if (ev.type !== "timer") continue;
   *   if (ev.timer === tick) ticks++;
   *   if (ev.timer === stop) break;
   * }
   * tick.cancel();
   * assert.ok(ticks >= 1 && ticks <= 31, `${ticks}`);
   * ```
   * @example With a callback
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager } from "../mod.ts";
   *
   * await using mgr = new Manager();
   * const fired = Promise.withResolvers<number>();
   * mgr.setTimer(5, { ref: true, onFire: (ev) => fired.resolve(ev.timer.id) });
   * assert.equal(typeof await fired.promise, "number");
   * ```
   */
  setTimer(ms: number, options: TimerOptions = {}): Timer {
    this.#checkMode(options.onFire !== undefined, "timer", "onFire");
    const timer = this.#timers.add(this.#loop, ms, options);
    if (options.onFire !== undefined) this.#startPump();
    return timer;
  }

  /**
   * The manager's post port: hand it to a Worker (with `postMessage`),
   * which opens it with `openPoster()` and posts messages that arrive here
   * as `post` events (or calls of `onPost`), in order. Every call returns
   * the same port. While the port exists the manager keeps the process
   * alive (like a `MessagePort` with a listener) until it is closed.
   *
   * @param options `onPost`: receive posts with this callback instead of `for await`.
   * @returns The port.
   * @throws {MgnetError} (`State`) for an `onPost` while the manager is
   *   iterated (or none while it runs handlers), or a second, different `onPost`.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager, openPoster } from "../mod.ts";
   *
   * await using mgr = new Manager();
   * const got = Promise.withResolvers<string>();
   * const port = mgr.postPort({ onPost: (ev) => got.resolve(ev.text()) });
   * using poster = openPoster(port); // usually in a Worker: new Worker(...).postMessage(port)
   * poster.post("hi");
   * assert.equal(await got.promise, "hi");
   * ```
   */
  postPort(options: { onPost?: (ev: PostEvent) => void } = {}): PostPort {
    const onPost = options.onPost;
    if (onPost !== undefined && typeof onPost !== "function") {
      throw new TypeError("onPost must be a function");
    }
    if (onPost !== undefined && this.#onPost !== undefined && onPost !== this.#onPost) {
      throw new MgnetError("this manager's posts already have an onPost", "State");
    }
    this.#checkMode(onPost !== undefined || this.#onPost !== undefined, "post port", "onPost");
    const port = this.#posts.port(this.#loop);
    if (onPost !== undefined) {
      this.#onPost = onPost;
      this.#startPump();
    }
    return port;
  }

  /**
   * Resolves when the manager's handler loop has stopped (after
   * {@linkcode close}); resolves at once if no listener has handlers.
   */
  get finished(): Promise<void> {
    return this.#pumping ?? Promise.resolve();
  }

  async #pump(): Promise<void> {
    const loop = this.#loop;
    loop.startClock();
    while (await loop.fill()) {
      for (let ev = loop.next(); ev !== undefined; ev = loop.next()) this.#dispatch(ev as MgEvent);
    }
  }

  #dispatch(ev: MgEvent): void {
    if (ev.conn === undefined) return this.#dispatchLoose(ev);
    if (ev.type === "open") {
      const h = this.#handlers.get(ev.listenerId);
      if (h === undefined) return;
      this.#connHandlers.set(ev.conn.id, h);
      return (h.onOpen as ((ev: OpenEvent) => void) | undefined)?.(ev);
    }
    const h = this.#connHandlers.get(ev.conn.id);
    if (h === undefined) return;
    switch (ev.type) {
      case "datagram":
        return (h as UdpHandlers).onDatagram(ev);
      case "datagram-oversized":
        return (h as UdpHandlers).onOversized?.(ev);
      case "http":
        try {
          const r = (h as ListenHandlers).onRequest(ev);
          if (r instanceof Promise) r.catch((e) => this.#handlerFailed(h as ListenHandlers, e, ev));
        } catch (e) {
          this.#handlerFailed(h as ListenHandlers, e, ev);
        }
        return;
      case "data":
        return (h as TcpHandlers).onData?.(ev);
      case "end":
        return (h as TcpHandlers).onEnd?.(ev);
      case "error":
        return (h as ListenHandlers).onError?.(ev);
      case "close":
        this.#connHandlers.delete(ev.conn.id);
        return (h as ListenHandlers).onClose?.(ev);
    }
  }

  /** net: events about no connection (timers, posts). */
  #dispatchLoose(ev: TimerEvent | PostEvent): void {
    if (ev.type === "timer") return timerInternals.onFire(ev.timer)?.(ev);
    this.#onPost?.(ev);
  }

  #handlerFailed(h: ListenHandlers, error: unknown, ev: HttpRequestEvent): void {
    try {
      if (h.onHandlerError) h.onHandlerError(error, ev);
      else console.error("mgnet: request handler failed:", error);
    } finally {
      if (!ev.replied && !ev.conn.closed) ev.reply(500, "Internal Server Error\n");
    }
  }

  /**
   * Answers GET and HEAD requests for `target` (path and query exactly as
   * sent, e.g. `"/api/status"`) inside the native core, without an event:
   * with the response given, a current `date`, an `etag` and `304 Not
   * Modified` for a matching `If-None-Match`. Replaces an earlier entry.
   *
   * @param target The request target to answer.
   * @param response Status, body and headers.
   * @param options Time to live, tags, entity tag.
   * @throws {TypeError} for a malformed header or a `connection: close` header.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager } from "../mod.ts";
   *
   * await using mgr = new Manager();
   * const { port } = mgr.listen("http://127.0.0.1:0", { onRequest: (ev) => void ev.reply(404, "not cached") });
   * mgr.cache("/health", { body: "ok", headers: { "content-type": "text/plain" } }, { ttl: 5_000 });
   * const res = await fetch(`http://127.0.0.1:${port}/health`);
   * assert.equal(await res.text(), "ok");
   * assert.equal(mgr.stats().cacheHits, 1);
   * ```
   */
  cache(target: string, response: CachedResponse, options: CacheOptions = {}): void {
    cacheSet(
      this.#loop,
      target,
      response.status ?? 200,
      encodeCachedHead(response.headers),
      bodyToBytes(response.body),
      options,
    );
  }

  /**
   * Removes the cached response of `target`.
   *
   * @param target A target given to {@linkcode cache}.
   * @returns Whether there was one.
   */
  uncache(target: string): boolean {
    return cacheDelete(this.#loop, target);
  }

  /**
   * Removes every cached response tagged `tag`, or all with no tag.
   *
   * @param tag A tag given to {@linkcode cache}; omit to clear the cache.
   * @returns How many were removed (0 when clearing everything).
   */
  invalidate(tag?: string): number {
    return cacheInvalidate(this.#loop, tag);
  }

  /**
   * Counters since the manager was created. Cheap (one FFI call); meant for
   * monitoring and for checking how work was batched.
   *
   * @returns The counters.
   * @throws {ManagerClosedError} once the manager is closed.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager } from "../mod.ts";
   *
   * await using mgr = new Manager();
   * const { port } = mgr.listen("http://127.0.0.1:0", { onRequest: (ev) => void ev.reply(200, "ok") });
   * await (await fetch(`http://127.0.0.1:${port}/`)).text();
   * const { accepted, requests } = mgr.stats();
   * assert.deepEqual([accepted, requests], [1, 1]);
   * ```
   */
  stats(): ManagerStats {
    const loop = this.#loop;
    if (loop.closed) throw new ManagerClosedError();
    const out = new Float64Array(StatsOut.Count);
    loop.check(loop.sym.mgnet_stats(loop.handle, new Uint8Array(out.buffer)));
    return {
      polls: out[StatsOut.Polls],
      accepted: out[StatsOut.Accepted],
      requests: out[StatsOut.Requests],
      cacheHits: out[StatsOut.CacheHits],
    };
  }

  /**
   * The manager's metrics in the Prometheus text format (0.0.4; serve it
   * with `content-type: text/plain; version=0.0.4`): open connections,
   * bytes in and out, polls, HTTP requests, responses by status code and
   * the latency from a request read to its response queued, cache hits,
   * WebSocket messages, TCP bytes, UDP datagrams, timer fires and posts.
   * Counted natively; reading them costs two FFI calls and the text.
   *
   * @returns The text.
   * @throws {MgnetError} (`State`) unless the manager was made with
   *   `metrics: true`; {ManagerClosedError} once it is closed.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager } from "../mod.ts";
   *
   * await using mgr = new Manager({ metrics: true });
   * const { port } = mgr.listen("http://127.0.0.1:0", {
   *   onRequest: (ev) =>
   *     void (ev.path === "/metrics"
   *       ? ev.reply(200, mgr.metrics(), { "content-type": "text/plain; version=0.0.4" })
   *       : ev.reply(404, "no")),
   * });
   * await (await fetch(`http://127.0.0.1:${port}/x`)).text();
   * const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
   * assert.match(text, /^mgnet_http_responses_total\{code="404"\} 1$/m);
   * assert.match(text, /^# TYPE mgnet_http_request_duration_seconds histogram$/m);
   * ```
   */
  metrics(): string {
    const loop = this.#loop;
    if (loop.closed) throw new ManagerClosedError();
    if (!this.#metrics) {
      throw new MgnetError("metrics are off: create the manager with { metrics: true }", "State");
    }
    return readMetrics(loop);
  }

  /**
   * Sends one HTTP request and resolves with the response when its head is
   * in. Connections are kept alive and reused: a request to an origin with
   * an idle connection (its previous response read to the end) goes on
   * that one; an idempotent request with a fixed body is sent again on a
   * fresh connection if the server had closed the idle one. Idle
   * connections are closed after 4 s and by {@linkcode close}, and do not
   * keep the process alive. `keepAlive: false` uses a fresh connection
   * closed after the response. `https:` URLs use TLS; pass `ca` to verify
   * the server.
   *
   * @param url `http://` or `https://` URL.
   * @param options Method, headers, body, timeouts, `signal`, TLS trust.
   * @returns The response; read its body with `text()`, `json()`, `bytes()` or `body`.
   * @throws {ClientError} with `kind` `dns`, `refused`, `connect`, `tls`,
   *   `timeout`, `reset`, `protocol` or `aborted`; {TypeError} for a bad
   *   URL or header.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager } from "../mod.ts";
   *
   * await using mgr = new Manager();
   * const { port } = mgr.listen("http://127.0.0.1:0", { onRequest: (ev) => void ev.reply(200, "pong") });
   * const res = await mgr.request(`http://127.0.0.1:${port}/ping`);
   * assert.equal(res.status, 200);
   * assert.equal(await res.text(), "pong");
   * ```
   */
  request(url: string | URL, options?: ClientRequestOptions): Promise<ClientResponse> {
    if (this.#loop.closed) return Promise.reject(new ManagerClosedError());
    if (this.#shutdown) return Promise.reject(new MgnetError("the manager is shutting down", "State"));
    return httpRequest(this.#loop, url, options, this.#pool ??= new ClientPool());
  }

  /**
   * Opens a raw TCP connection (`tcp://host:port`, `tcp://[::1]:7000` for
   * IPv6): a {@linkcode TcpConnection} whose events go to its own iterator.
   *
   * @param url The server.
   * @param options Connect timeout (ms, default 10 000) and framing.
   * @returns The connection, once connected.
   * @throws {ClientError} if the name does not resolve or the connection
   *   fails (`kind` `refused` when nobody listens); {TypeError} for a bad URL.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager } from "../mod.ts";
   *
   * const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
   * const served = server.accept().then(async (c) => {
   *   await c.write(new TextEncoder().encode("hi\n"));
   *   c.close();
   * });
   * await using mgr = new Manager();
   * const conn = await mgr.connect(`tcp://127.0.0.1:${server.addr.port}`, { framing: "line" });
   * const lines = [];
   * for await (const ev of conn) {
   *   if (ev.type === "data") lines.push(ev.text());
   *   if (ev.type === "end") conn.end();
   * }
   * assert.deepEqual(lines, ["hi"]);
   * await served;
   * server.close();
   * ```
   */
  connect(url: `tcp://${string}`, options?: TcpConnectOptions): Promise<TcpConnection>;
  /**
   * Opens a raw TCP connection over TLS (`tls://host:port`): as `tcp://`,
   * resolving once the handshake is done. The server is verified against
   * `ca` (default: the system bundle) and the host name, which is always
   * sent (SNI); `insecure` skips verification, `cert`/`key` present a client
   * certificate.
   *
   * @param url e.g. `"tls://example.com:7443"`.
   * @param options Framing, connect timeout and TLS trust.
   * @returns The connection, once the handshake is done.
   * @throws {ClientError} `kind` `tls` when the handshake or the settings fail.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager, selfSignedCert, TcpDataEvent } from "../mod.ts";
   *
   * const { cert, key } = selfSignedCert(["localhost"]);
   * await using mgr = new Manager();
   * const l = mgr.listen("tls://127.0.0.1:0", {
   *   cert,
   *   key,
   *   framing: "line",
   *   maxFrame: 100,
   *   onData: (ev) => void ev.conn.send(`re: ${ev.text()}\n`),
   * });
   * const conn = await mgr.connect(`tls://localhost:${l.port}`, { ca: cert, framing: "line", maxFrame: 100 });
   * conn.send("hi\n");
   * for await (const ev of conn) {
   *   if (ev instanceof TcpDataEvent) {
   *     assert.equal(ev.text(), "re: hi");
   *     break;
   *   }
   * }
   * ```
   */
  connect(url: `tls://${string}`, options?: TcpConnectOptions): Promise<TcpConnection>;
  /**
   * Opens a WebSocket client connection (`ws://` or `wss://`): resolves
   * once the server accepted the handshake (101, the right
   * `sec-websocket-accept`, a subprotocol among those offered). Frames
   * are masked natively. A closed socket stays closed: reconnecting is
   * up to you.
   *
   * @param url The WebSocket URL.
   * @param options Subprotocols, request headers, TLS trust, limits.
   * @returns The open socket.
   * @throws {ClientError} if the connection or the handshake fails (`protocol` for a refusal).
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager } from "../mod.ts";
   *
   * await using server = Deno.serve({ port: 0, onListen() {} }, (req) => {
   *   const { socket, response } = Deno.upgradeWebSocket(req, { protocol: "echo" });
   *   socket.onmessage = (e) => socket.send(e.data);
   *   return response;
   * });
   * await using mgr = new Manager();
   * const ws = await mgr.connect(`ws://127.0.0.1:${server.addr.port}/`, { protocols: ["echo"] });
   * assert.equal(ws.protocol, "echo");
   * ws.send("hi");
   * for await (const ev of ws) {
   *   if (ev.type === "ws-message") {
   *     assert.equal(ev.data, "hi");
   *     ws.close(1000);
   *   }
   * }
   * ```
   */
  connect(url: `ws://${string}` | `wss://${string}`, options?: WebSocketConnectOptions): Promise<MgWebSocket>;
  /**
   * Opens a keep-alive HTTP connection to a server for several requests
   * (`http://` or `https://`); see the `tcp://` form for raw TCP.
   *
   * @param url The server (`http://host:port` or `https://...`); a path is ignored.
   * @param options Connect timeout and TLS trust.
   * @returns The connection, once connected.
   * @throws {ClientError} if the name does not resolve or the connection fails.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager } from "../mod.ts";
   *
   * await using mgr = new Manager();
   * const { port } = mgr.listen("http://127.0.0.1:0", { onRequest: (ev) => void ev.reply(200, ev.path) });
   * await using conn = await mgr.connect(`http://127.0.0.1:${port}`);
   * const bodies = [];
   * for (const p of ["/a", "/b"]) bodies.push(await (await conn.request(p)).text());
   * assert.deepEqual(bodies, ["/a", "/b"]);
   * ```
   */
  connect(url: string | URL, options?: ClientConnectOptions): Promise<HttpClientConnection>;
  connect(
    url: string | URL,
    options?: ClientConnectOptions | TcpConnectOptions | WebSocketConnectOptions,
  ): Promise<HttpClientConnection | TcpConnection | MgWebSocket> {
    if (this.#loop.closed) return Promise.reject(new ManagerClosedError());
    if (this.#shutdown) return Promise.reject(new MgnetError("the manager is shutting down", "State"));
    if (/^wss?:/i.test(String(url))) {
      return connectWebSocket(this.#loop, this.#ws, url, options as WebSocketConnectOptions);
    }
    if (typeof url === "string" && /^(tcp|tls):\/\//i.test(url)) {
      return openTcpConnection(
        this.#loop,
        url,
        (options ?? {}) as TcpConnectOptions,
        resolveAddr,
        (message, timedOut) => {
          if (timedOut) return new ClientError("timeout", `connecting to ${url} timed out`);
          const msg = message ?? "the connection closed";
          const kind = /refused/i.test(msg)
            ? "refused"
            : /^TLS\b/.test(msg) || (/^tls:/i.test(url) && !/connect failed/.test(msg))
            ? "tls"
            : "connect";
          return new ClientError(kind, `${url}: ${msg}`);
        },
      );
    }
    return openHttpConnection(this.#loop, url, options as ClientConnectOptions);
  }

  /**
   * Resolves a host name to IP addresses with DNS over UDP, inside this
   * manager's loop (never a blocking `getaddrinfo`): A and/or AAAA queries
   * to the system's nameserver (the first `nameserver` line of
   * /etc/resolv.conf) or `options.server`; CNAME chains are followed.
   * `localhost` and IP literals are answered without a query; /etc/hosts is
   * not read.
   *
   * @param name The host name.
   * @param options `server`, `timeout` (ms, default 5000), `family` (4, 6 or 0 for both), `signal`.
   * @returns The addresses, IPv4 first.
   * @throws {DnsError} with `kind` `nxdomain`, `nodata`, `timeout`,
   *   `servfail`, `refused`, `format` or `io`; {MgnetError} (`Invalid`) for
   *   a name that is not a host name.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager } from "../mod.ts";
   *
   * await using mgr = new Manager();
   * assert.deepEqual(await mgr.resolve("localhost", { family: 4 }), ["127.0.0.1"]);
   * assert.deepEqual(await mgr.resolve("::1"), ["::1"]);
   * ```
   */
  resolve(name: string, options?: ResolveOptions): Promise<string[]> {
    if (this.#loop.closed) return Promise.reject(new ManagerClosedError());
    return resolve(this.#loop, this.#dns, name, options);
  }

  /**
   * Asks an SNTP server for the time (RFC 4330) from a UDP socket of this
   * manager's loop, and computes the clock offset and round-trip delay from
   * the four timestamps.
   *
   * @param server `udp://host:port`, `host:port` or `host` (port 123); a
   *   name is resolved with {@linkcode resolve} first.
   * @param options `timeout` (ms, default 5000), `signal`.
   * @returns `offset` (ms the server is ahead), `delay` (ms), `time` (the
   *   server's time in ms since the epoch), `stratum`, `server`.
   * @throws {SntpError} with `kind` `timeout`, `kod`, `unsynchronized` or `io`.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager } from "../mod.ts";
   *
   * await using mgr = new Manager();
   * // A responder whose clock is exactly 1 s ahead of the request's T1.
   * const ntp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
   * (async () => {
   *   const [req, from] = await ntp.receive();
   *   const res = new Uint8Array(48);
   *   const dv = new DataView(res.buffer);
   *   res[0] = 0x24; // version 4, server
   *   res[1] = 1; // stratum
   *   res.set(req.subarray(40, 48), 24); // originate = the request's T1
   *   const t1 = new DataView(req.buffer, req.byteOffset).getBigUint64(40);
   *   dv.setBigUint64(32, t1 + (1n << 32n)); // T2 = T1 + 1 s
   *   dv.setBigUint64(40, t1 + (1n << 32n)); // T3 = T2
   *   await ntp.send(res, from);
   * })();
   * const { offset, delay } = await mgr.sntp(`udp://127.0.0.1:${(ntp.addr as Deno.NetAddr).port}`);
   * assert.ok(Math.abs(offset + delay / 2 - 1000) < 0.01);
   * ntp.close();
   * ```
   */
  sntp(server: string, options?: SntpOptions): Promise<SntpResult> {
    if (this.#loop.closed) return Promise.reject(new ManagerClosedError());
    return sntpQuery(this.#loop, this.#sntp, this.#dns, server, options);
  }

  async #nextSlow(): Promise<IteratorResult<MgEvent>> {
    const loop = this.#loop;
    for (;;) {
      const ev = loop.next();
      if (ev !== undefined) return { value: ev as MgEvent, done: false };
      if (!(await loop.fill())) break;
    }
    return DONE;
  }

  /**
   * Iterates events until the manager closes. Breaking out of the loop
   * closes the manager.
   *
   * @returns The event iterator.
   * @throws {MgnetError} if another loop already iterates this manager.
   */
  [Symbol.asyncIterator](): AsyncIterator<MgEvent> {
    if (this.#iterating) throw new MgnetError("this manager is already being iterated", "State");
    if (this.#pumping) {
      throw new MgnetError("this manager runs listener handlers; it cannot be iterated", "State");
    }
    this.#iterating = true;
    const loop = this.#loop;
    loop.startClock();
    return {
      next: (): Promise<IteratorResult<MgEvent>> => {
        loop.delivered();
        if (loop.hasEvents()) {
          const ev = loop.next();
          if (ev !== undefined) return Promise.resolve({ value: ev as MgEvent, done: false });
        }
        return this.#nextSlow();
      },
      return: async (): Promise<IteratorResult<MgEvent>> => {
        this.#iterating = false;
        await this.close();
        return DONE;
      },
    };
  }

  /**
   * Shuts down gracefully: stops accepting connections, closes idle
   * keep-alive connections, lets the requests already received get their
   * responses (each busy connection closes after its last one, with
   * `connection: close` where still possible), then {@linkcode close}s.
   * Requests arriving meanwhile are not read. Outbound connections (a
   * database pool, an upstream) stay open while any accepted connection
   * is still being answered, then close the same way. After `timeout` ms
   * whatever is still open is closed anyway. The event loop keeps running until
   * then, so handlers can finish. Idempotent.
   *
   * @param options `timeout` in ms (default: the `shutdownTimeout` option, 10 s).
   * @returns A promise that settles once the manager is closed.
   * @example Answering the request in flight, then closing
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager } from "../mod.ts";
   *
   * await using mgr = new Manager();
   * const { port } = mgr.listen("http://127.0.0.1:0", {
   *   onRequest(ev) {
   *     void mgr.shutdown(); // stops accepting; this request still gets its response
   *     ev.reply(200, "last one");
   *   },
   * });
   * const res = await fetch(`http://127.0.0.1:${port}/`);
   * assert.equal(res.headers.get("connection"), "close");
   * assert.equal(await res.text(), "last one");
   * await mgr.shutdown(); // the same shutdown: settles once the manager is closed
   * assert.equal(mgr.closed, true);
   * ```
   * @example Stopping on SIGTERM
   * ```ts ignore
   * import { Manager } from "../mod.ts";
   *
   * const mgr = new Manager();
   * mgr.listen("http://0.0.0.0:8000", { onRequest: (ev) => void ev.reply(200, "hello") });
   * Deno.addSignalListener("SIGTERM", () => mgr.shutdown({ timeout: 5000 }));
   * await mgr.finished;
   * ```
   */
  shutdown(options: { timeout?: number } = {}): Promise<void> {
    const loop = this.#loop;
    if (loop.closed) return this.close();
    this.#shutdown ??= (async () => {
      const deadline = performance.now() + (options.timeout ?? this.#shutdownTimeout);
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        for (;;) {
          if (loop.closed) break;
          const { open, closedOne } = loop.shutdownStep();
          if (open === 0) break;
          const left = deadline - performance.now();
          if (left <= 0) break;
          await Promise.race([closedOne, new Promise<void>((r) => timer = setTimeout(r, left))]);
          clearTimeout(timer);
        }
      } finally {
        await this.close();
      }
    })();
    return this.#shutdown;
  }

  /**
   * Closes the manager: sends queued replies, closes every listener and
   * connection and frees native memory. Idempotent; a running `for await`
   * ends.
   *
   * @returns A promise that settles once everything is freed.
   */
  close(): Promise<void> {
    // The handler pump (if any) ends at its next fill, which sees the loop closed.
    return this.#loop.close(this.#pumping);
  }

  /** Same as {@linkcode close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
