/**
 * The user-facing manager: one entry point above the core loop and the
 * protocols. It registers the protocols with its loop, maps listen URL
 * schemes to them, and offers the two ways to consume events: `for await`
 * over the manager, or per-listener handlers.
 *
 * @module
 */

import { Loop } from "./core/loop.ts";
import { lib } from "./core/ffi.ts";
import { ManagerClosedError, MgnetError } from "./core/errors.ts";
import { StatsOut } from "./core/abi.ts";
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
import { WsProtocol } from "./ws/protocol.ts";
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
  #closed = false;

  /**
   * Made by {@linkcode Manager.listen}; not constructed by users.
   *
   * @param id Connection id.
   * @param port Bound port.
   * @param url Listen URL.
   * @param close Stops the listening socket.
   * @param isClosed Whether its manager is closed.
   */
  constructor(id: number, port: number, url: string, close: () => void, isClosed: () => boolean) {
    this.id = id;
    this.port = port;
    this.url = url;
    this.#close = close;
    this.#isClosed = isClosed;
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
  #ws: WsProtocol;
  #iterating = false;
  #pumping: Promise<void> | undefined;
  #handlers = new Map<number, ListenHandlers>();
  /** Handlers of each open connection accepted by a listener with handlers, by connection id. */
  #connHandlers = new Map<number, ListenHandlers>();
  #shutdown: Promise<void> | undefined;
  #shutdownTimeout: number;
  #pool: ClientPool | undefined;

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
    this.#loop.register(this.#http);
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
   * Starts listening. The URL scheme picks the protocol: `http://` serves
   * HTTP/1.1. Port 0 binds a free port; read it from the result. The URL is
   * checked part by part (scheme, an IP address or `localhost`, a port from
   * 0 to 65535, nothing after it but an optional `/`).
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
  listen(url: string, handlers?: ListenHandlers): Listener {
    if (this.#loop.closed) throw new ManagerClosedError();
    if (this.#shutdown) throw new MgnetError("the manager is shutting down", "State");
    if (handlers !== undefined) {
      if (typeof handlers?.onRequest !== "function") {
        throw new TypeError("handlers.onRequest must be a function");
      }
      if (this.#iterating) {
        throw new MgnetError("this manager is iterated with for await: listen without handlers", "State");
      }
    } else if (this.#pumping) {
      throw new MgnetError("this manager runs handlers: give this listener handlers too", "State");
    }
    const loop = this.#loop;
    const bound = loop.listen(url, HTTP_SCHEMES, this.#http);
    const listener = new Listener(bound.id, bound.port, url, () => loop.unlisten(bound), () => loop.closed);
    if (handlers !== undefined) {
      this.#handlers.set(listener.id, handlers);
      this.#loop.pumping = true;
      this.#pumping ??= this.#pump();
    }
    return listener;
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
    if (ev.type === "open") {
      const h = this.#handlers.get(ev.listenerId);
      if (h === undefined) return;
      this.#connHandlers.set(ev.conn.id, h);
      return h.onOpen?.(ev);
    }
    const h = this.#connHandlers.get(ev.conn.id);
    if (h === undefined) return;
    switch (ev.type) {
      case "http":
        try {
          const r = h.onRequest(ev);
          if (r instanceof Promise) r.catch((e) => this.#handlerFailed(h, e, ev));
        } catch (e) {
          this.#handlerFailed(h, e, ev);
        }
        return;
      case "error":
        return h.onError?.(ev);
      case "close":
        this.#connHandlers.delete(ev.conn.id);
        return h.onClose?.(ev);
    }
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
   * Opens a keep-alive HTTP connection to a server for several requests.
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
    options?: ClientConnectOptions | WebSocketConnectOptions,
  ): Promise<HttpClientConnection | MgWebSocket> {
    if (this.#loop.closed) return Promise.reject(new ManagerClosedError());
    if (this.#shutdown) return Promise.reject(new MgnetError("the manager is shutting down", "State"));
    if (/^wss?:/i.test(String(url))) return connectWebSocket(this.#loop, this.#ws, url, options);
    return openHttpConnection(this.#loop, url, options);
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
   * Requests arriving meanwhile are not read. After `timeout` ms whatever
   * is still open is closed anyway. The event loop keeps running until
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
