/**
 * The event manager: owns one Mongoose `mg_mgr`, runs its loop and yields
 * its events through `for await`.
 *
 * How the loop runs (see docs/architecture.md for the measurements):
 * - while there is work, one synchronous FFI call sends queued replies,
 *   polls Mongoose without blocking and copies a whole batch of events;
 * - when idle, it waits in a `nonblocking` FFI call that only `poll(2)`s
 *   the epoll fd, so the JS thread is free for timers, fetch and other I/O;
 * - but when every request handed out has been answered (no handler is
 *   awaiting anything), a gap in the traffic is first bridged by a short
 *   synchronous wait of at most {@linkcode SYNC_WAIT_MS} on the JS thread:
 *   it saves the two thread hand-offs of a `nonblocking` call, the largest
 *   cost of a busy server's idle moments;
 * - replies made inside the `for await` body are sent when the batch ends
 *   (one `send()` per connection per batch); replies made later (after an
 *   `await`) are sent at the end of the current microtask checkpoint,
 *   even while the loop waits;
 * - a busy loop gives the event loop a turn at least every {@linkcode YIELD_MS}.
 *
 * @module
 */

import {
  type ClientSink,
  type ClientTls,
  Connection,
  type ConnectionHost,
  type NetAddr,
} from "./connection.ts";
import { ConnectionClosedError, ManagerClosedError, MgnetError } from "./errors.ts";
import {
  type ClientConnectOptions,
  ClientPool,
  type ClientRequestOptions,
  type ClientResponse,
  type HttpClientConnection,
  httpRequest,
  openHttpConnection,
} from "./http_client.ts";
import type { CloseEvent, ErrorEvent, MgEvent, OpenEvent } from "./events.ts";
import { Kind } from "./events.ts";
import { bodyCut, bodyRefused, BodySink } from "./request_body.ts";
import { check, lib, type Symbols } from "./ffi.ts";
import {
  type BodyInit,
  bodyToBytes,
  encodeCachedHead,
  type HeadersInit,
  HttpConnection,
  HttpRequestEvent,
} from "./http.ts";
import { utf8Decoder, utf8Encoder } from "./bytes.ts";

/** Longest time a busy loop runs before letting other async work run (ms). */
export const YIELD_MS = 2;
/** Longest synchronous wait for traffic on the JS thread (ms). */
export const SYNC_WAIT_MS = 1;

/**
 * Size of the buffers event batches are copied into. Small on purpose: an
 * arena must die young. A 1 MiB arena lived through several scavenges at
 * 100 k requests/s, was promoted, and its external bytes drove V8 to a
 * mark-compact every ~0.8 s (p99 2.9–3.9 ms at keep-alive 100); at 128 KiB
 * none ran in 5 s and p99 was 2.0–2.4 ms (docs/architecture.md, section 2).
 */
const ARENA_SIZE = 128 << 10;
/** A fresh arena is taken when less than this is left in the current one. */
const ARENA_MIN_FREE = 32 * 1024;
/** HTTP record flag: the body streams in BODY records (rust/src/event.rs). */
const HTTP_FLAG_STREAMED = 4;
/** BODY record flags. */
const BODY_END = 1;
const BODY_ERROR = 2;

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
  onError?(ev: ErrorEvent): void;
  /** A connection closed. */
  onClose?(ev: CloseEvent): void;
  /**
   * `onRequest` threw or its promise rejected. By default the error is
   * logged with `console.error`; either way an unanswered request then gets
   * a 500 response.
   */
  onHandlerError?(error: unknown, ev: HttpRequestEvent): void;
}

/** A response cached natively with {@linkcode Manager.cache}. */
export interface CachedResponse {
  /** Status code (default 200). */
  status?: number;
  /** Body (string as UTF-8, or bytes). */
  body?: BodyInit;
  /** Headers (framing headers are set by mgnet). */
  headers?: HeadersInit;
}

/** How long and under which names a cached response lives. */
export interface CacheOptions {
  /** Time to live in milliseconds (default: until removed). */
  ttl?: number;
  /** Names to remove it by with {@linkcode Manager.invalidate}. */
  tags?: string[];
  /** Its entity tag, quoted (default: computed from the body). */
  etag?: string;
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

/** Request limits of a manager's HTTP listeners. */
export interface ManagerOptions {
  /** Maximum bytes of request line plus headers (default 64 KiB); over it: 431. */
  maxHeaderSize?: number;
  /** Maximum number of request headers (default 128, at most 1024); over it: 431. */
  maxHeaders?: number;
  /** Maximum request-target length (default 16 KiB); over it: 414. */
  maxUriLength?: number;
  /** Maximum request body size after decoding (default 64 MiB); over it: 413. */
  maxBodySize?: number;
  /**
   * Request bodies larger than this (bytes) are not buffered: the request
   * event comes once the head is in, with `bodyStreamed` set, and the body
   * follows through `ev.bodyChunks()` (default: every body is buffered).
   * For `serve()`, `req.body` then streams too.
   */
  streamBodiesOver?: number;
  /** Aborting it starts a graceful {@linkcode Manager.shutdown}. */
  signal?: AbortSignal;
  /** Longest a graceful shutdown waits for in-flight responses (ms, default 10 000). */
  shutdownTimeout?: number;
}

/**
 * A listening socket made by {@linkcode Manager.listen}.
 *
 * @example
 * ```ts ignore
 * const listener = mgr.listen("http://127.0.0.1:0");
 * console.log(`listening on ${listener.port}`);
 * listener.close();
 * ```
 */
export class Listener {
  /** Mongoose's connection id of the listening socket. */
  readonly id: number;
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  /** The URL passed to `listen`. */
  readonly url: string;
  #host: ConnectionHost;
  #slot: number;
  #closed = false;

  /**
   * @internal
   * @param host The manager.
   * @param slot Native slot.
   * @param id Connection id.
   * @param port Bound port.
   * @param url Listen URL.
   */
  constructor(host: ConnectionHost, slot: number, id: number, port: number, url: string) {
    this.#host = host;
    this.#slot = slot;
    this.id = id;
    this.port = port;
    this.url = url;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed || this.#host.isClosed;
  }

  /** Stops accepting connections; open connections stay. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.#closed = true;
    const rc = this.#host.sym.mgnet_close(this.#host.handle, this.#slot, this.id, 0);
    if (rc !== -2) this.#host.check(rc);
  }
}

const DONE: IteratorReturnResult<undefined> = { value: undefined, done: true };

/**
 * Owns a Mongoose event manager. Create listeners with {@linkcode listen},
 * then consume events with `for await`. Only one loop may iterate a manager.
 * Breaking out of the loop closes the manager.
 *
 * @example Hello server on an ephemeral port
 * ```ts
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
 * console.log(await res.text()); // "hello"
 * await mgr.close();
 * await served;
 * ```
 */
export class Manager implements AsyncIterable<MgEvent>, AsyncDisposable {
  #sym: Symbols;
  #h: number;
  #epfd: number;
  #closed = false;
  #closing: Promise<void> | undefined;
  #iterating = false;
  #host: ConnectionHost;

  #arena = new Uint8Array(ARENA_SIZE);
  #arenaView = new DataView(this.#arena.buffer);
  #arenaOff = 0;
  #batch: Uint8Array = this.#arena;
  #batchView: DataView = this.#arenaView;
  #pos = 0;
  #end = 0;

  #conns: (Connection | undefined)[] = [];
  #handlers = new Map<number, ListenHandlers>();
  #drainWaiters = new Map<Connection, PromiseWithResolvers<void>>();
  #backlog: MgEvent[] = [];
  #backlogPos = 0;
  #filling: Promise<boolean> | undefined;
  #driving = false;
  #connHandlers: (ListenHandlers | undefined)[] = [];
  #pumping: Promise<void> | undefined;
  #waiting: Promise<number> | undefined;
  #lastYield = 0;
  #delivered = 0;
  #flushMark = 0;
  #flushQueued = false;
  #unflushed = false;
  #shutdown: Promise<void> | undefined;
  #shutdownTimeout: number;
  /**
   * Outbound connections and the receivers of their events, by connection
   * id (not by slot: a slot can be reused natively before JS has decoded
   * its previous occupant's close).
   */
  #clients = new Map<number, { conn: Connection; sink: ClientSink }>();
  /** Ids of outbound connections parked in the pool: they do not keep the loop running. */
  #idleClients = new Set<number>();
  #pool: ClientPool | undefined;
  /** Streaming request bodies, by connection id (one at a time per connection). */
  #bodies = new Map<number, BodySink>();
  /** Settled by a `close` event while a shutdown waits for connections. */
  #connClosed: PromiseWithResolvers<void> | undefined;

  /**
   * Creates a manager (loads the native library on first use).
   *
   * @param options Request limits for HTTP listeners.
   * @throws {Error} if the native library cannot be loaded.
   */
  constructor(options: ManagerOptions = {}) {
    this.#sym = lib();
    const lim = (v: number | undefined, name: string, max: number) => {
      if (v === undefined) return 0;
      if (!Number.isInteger(v) || v < 1 || v > max) {
        throw new RangeError(`${name} must be an integer from 1 to ${max}`);
      }
      return v;
    };
    this.#h = check(this.#sym.mgnet_manager_new(
      lim(options.maxHeaderSize, "maxHeaderSize", 0x7fffffff),
      lim(options.maxHeaders, "maxHeaders", 1024),
      lim(options.maxUriLength, "maxUriLength", 0x7fffffff),
      lim(options.maxBodySize, "maxBodySize", 0x7fffffff),
      streamOver(options.streamBodiesOver),
    ));
    this.#epfd = check(this.#sym.mgnet_wait_fd(this.#h));
    const timeout = options.shutdownTimeout ?? 10_000;
    if (!(timeout >= 0)) throw new RangeError("shutdownTimeout must be a non-negative number of ms");
    this.#shutdownTimeout = timeout;
    options.signal?.addEventListener("abort", () => void this.shutdown(), { once: true });
    // deno-lint-ignore no-this-alias
    const self = this;
    this.#host = {
      handle: this.#h,
      sym: this.#sym,
      get isClosed() {
        return self.#closed;
      },
      queued: () => this.#queued(),
      check: (rc: number) => {
        if (rc === -1 || (rc < 0 && this.#closed)) throw new ManagerClosedError();
        return check(rc);
      },
      drained: (conn: Connection) => {
        let w = this.#drainWaiters.get(conn);
        if (!w) {
          w = Promise.withResolvers<void>();
          this.#drainWaiters.set(conn, w);
          this.#drive().catch(() => {}); // a failing poll surfaces in the loop itself
        }
        return w.promise;
      },
    };
  }

  /** True once {@linkcode close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Starts listening. The URL scheme picks the protocol: `http://` serves
   * HTTP/1.1. Port 0 binds a free port; read it from the result.
   *
   * @param url e.g. `"http://127.0.0.1:8000"` or `"http://[::1]:0"`.
   * @returns The listener, with its real `port`.
   * @throws {MgnetError} if the address is invalid or in use.
   * @example
   * ```ts ignore
   * const { port } = mgr.listen("http://0.0.0.0:0");
   * ```
   */
  listen(url: string, handlers?: ListenHandlers): Listener {
    if (this.#closed) throw new ManagerClosedError();
    if (this.#shutdown) throw new MgnetError("the manager is shutting down", "State");
    if (typeof url !== "string") throw new TypeError("listen() takes a URL string");
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
    const bytes = utf8Encoder.encode(url);
    const out = new Uint8Array(16);
    const slot = check(this.#sym.mgnet_listen(this.#h, bytes, bytes.length, out));
    const dv = new DataView(out.buffer);
    const listener = new Listener(this.#host, slot, dv.getFloat64(0, true), dv.getUint16(8, true), url);
    if (handlers !== undefined) {
      this.#handlers.set(listener.id, handlers);
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
    this.#lastYield = performance.now();
    while (await this.#fillShared()) {
      for (let ev = this.#next(); ev !== undefined; ev = this.#next()) this.#dispatch(ev);
    }
  }

  #dispatch(ev: MgEvent): void {
    const h = this.#connHandlers[ev.conn.slot];
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
      case "open":
        return h.onOpen?.(ev);
      case "error":
        return h.onError?.(ev);
      case "close":
        this.#connHandlers[ev.conn.slot] = undefined;
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
   * ```ts ignore
   * mgr.cache("/health", { body: "ok", headers: { "content-type": "text/plain" } }, { ttl: 5_000 });
   * ```
   */
  cache(target: string, response: CachedResponse, options: CacheOptions = {}): void {
    this.#cacheRaw(
      target,
      response.status ?? 200,
      encodeCachedHead(response.headers),
      bodyToBytes(response.body),
      options,
    );
  }

  /** @internal {@linkcode cache} with an already encoded head. */
  cacheEncoded(
    target: string,
    status: number,
    head: Uint8Array,
    body: Uint8Array,
    options: CacheOptions,
  ): void {
    this.#cacheRaw(target, status, head, body, options);
  }

  #cacheRaw(target: string, status: number, head: Uint8Array, body: Uint8Array, options: CacheOptions): void {
    if (this.#closed) throw new ManagerClosedError();
    if (typeof target !== "string" || target === "" || /[\s\0]/.test(target)) {
      throw new TypeError(`invalid request target ${JSON.stringify(target)}`);
    }
    if (!Number.isInteger(status) || status < 200 || status > 599) {
      throw new RangeError(`invalid status ${status}`);
    }
    const ttl = options.ttl ?? 0;
    if (!(ttl >= 0) || !Number.isFinite(ttl)) throw new RangeError("ttl must be a non-negative number of ms");
    const tags = options.tags ?? [];
    if (tags.some((t) => typeof t !== "string" || t === "" || t.includes("\n"))) {
      throw new TypeError("tags must be non-empty strings without newlines");
    }
    if (options.etag !== undefined && !/^(W\/)?"[^"\0\r\n]*"$/.test(options.etag)) {
      throw new TypeError('etag must be a quoted entity tag, e.g. ""v1""');
    }
    const t = utf8Encoder.encode(target);
    const e = utf8Encoder.encode(options.etag ?? "");
    const g = utf8Encoder.encode(tags.join("\n"));
    check(this.#sym.mgnet_cache_set(
      this.#h,
      t,
      t.length,
      status,
      head,
      head.length,
      body,
      body.length,
      e,
      e.length,
      ttl,
      g,
      g.length,
    ));
  }

  /**
   * Removes the cached response of `target`.
   *
   * @param target A target given to {@linkcode cache}.
   * @returns Whether there was one.
   */
  uncache(target: string): boolean {
    const t = utf8Encoder.encode(target);
    return check(this.#sym.mgnet_cache_delete(this.#h, t, t.length)) === 1;
  }

  /**
   * Removes every cached response tagged `tag`, or all with no tag.
   *
   * @param tag A tag given to {@linkcode cache}; omit to clear the cache.
   * @returns How many were removed (0 when clearing everything).
   */
  invalidate(tag?: string): number {
    const t = utf8Encoder.encode(tag ?? "");
    return check(this.#sym.mgnet_cache_invalidate(this.#h, t, t.length));
  }

  /**
   * Counters since the manager was created. Cheap (one FFI call); meant for
   * monitoring and for checking how work was batched.
   *
   * @returns The counters.
   * @throws {ManagerClosedError} once the manager is closed.
   * @example
   * ```ts
   * import { Manager } from "../mod.ts";
   * await using mgr = new Manager();
   * const { port } = mgr.listen("http://127.0.0.1:0", { onRequest: (ev) => void ev.reply(200, "ok") });
   * await (await fetch(`http://127.0.0.1:${port}/`)).text();
   * const { accepted, requests } = mgr.stats();
   * console.log(accepted, requests); // 1 1
   * ```
   */
  stats(): ManagerStats {
    if (this.#closed) throw new ManagerClosedError();
    const out = new Float64Array(4);
    check(this.#sym.mgnet_stats(this.#h, new Uint8Array(out.buffer)));
    return { polls: out[0], accepted: out[1], requests: out[2], cacheHits: out[3] };
  }

  /** Replies were queued: make sure they are sent soon (see module docs). */
  #queued(): void {
    this.#unflushed = true;
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      this.#flushMark = this.#delivered;
      queueMicrotask(this.#flushTask);
    }
  }

  #flushTask = (): void => {
    if (this.#closed || !this.#unflushed) {
      this.#flushQueued = false;
      return;
    }
    // The consumer went on to the next event of the same batch without
    // awaiting: the batch's end sends everything in one go.
    if (this.#delivered !== this.#flushMark && this.#hasEvents()) {
      this.#flushMark = this.#delivered;
      queueMicrotask(this.#flushTask);
      return;
    }
    this.#flushQueued = false;
    this.#unflushed = false;
    this.#sym.mgnet_flush(this.#h);
  };

  /** Flushes, polls once and makes the next batch current. Returns its length. */
  #pollOnce(): number {
    this.#unflushed = false;
    const free = this.#arena.length - this.#arenaOff;
    let n = this.#sym.mgnet_poll(this.#h, this.#arena, this.#arenaOff, free);
    if (n <= 0) {
      if (n < 0) this.#host.check(n);
      return 0;
    }
    if (n > free) {
      this.#newArena(n);
      n = check(this.#sym.mgnet_take(this.#h, this.#arena, this.#arena.length));
    }
    this.#batch = this.#arena;
    this.#batchView = this.#arenaView;
    this.#pos = this.#arenaOff;
    this.#end = this.#arenaOff + n;
    this.#arenaOff = (this.#end + 7) & ~7;
    if (this.#arena.length - this.#arenaOff < ARENA_MIN_FREE) this.#newArena(0);
    return n;
  }

  #newArena(min: number): void {
    // Earlier batches stay alive for as long as events reference them.
    this.#arena = new Uint8Array(Math.max(ARENA_SIZE, min));
    this.#arenaView = new DataView(this.#arena.buffer);
    this.#arenaOff = 0;
  }

  #conn(slot: number, id: number): Connection {
    const c = this.#conns[slot];
    if (c !== undefined && c.id === id) return c;
    const made = new HttpConnection(this.#host, slot, id);
    this.#conns[slot] = made;
    return made;
  }

  /** True if an event is ready without polling. */
  #hasEvents(): boolean {
    return this.#backlogPos < this.#backlog.length || this.#pos < this.#end;
  }

  /** The next event: from the backlog first, then the current batch. */
  #next(): MgEvent | undefined {
    if (this.#backlogPos < this.#backlog.length) {
      const ev = this.#backlog[this.#backlogPos++];
      if (this.#backlogPos === this.#backlog.length) {
        this.#backlog = [];
        this.#backlogPos = 0;
      }
      return ev;
    }
    return this.#decode();
  }

  /** Decodes the rest of the current batch into the backlog (before a new poll replaces it). */
  #toBacklog(): void {
    for (let ev = this.#decode(); ev !== undefined; ev = this.#decode()) this.#backlog.push(ev);
  }

  /**
   * Drives the loop while a streamed response waits for room or an
   * outbound connection is open, and nobody else polls (no handlers, or a
   * `for await` body awaiting `write()` or a client request): events that
   * arrive meanwhile wait in the backlog for the iterator.
   */
  async #drive(): Promise<void> {
    if (this.#driving || this.#pumping) return;
    this.#driving = true;
    try {
      while ((this.#drainWaiters.size > 0 || this.#clients.size > this.#idleClients.size) && !this.#closed) {
        this.#toBacklog();
        if (!(await this.#fillShared())) break;
        this.#toBacklog();
      }
    } finally {
      this.#driving = false;
    }
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
   * import { Manager } from "../mod.ts";
   * await using mgr = new Manager();
   * const { port } = mgr.listen("http://127.0.0.1:0", { onRequest: (ev) => void ev.reply(200, "pong") });
   * const res = await mgr.request(`http://127.0.0.1:${port}/ping`);
   * console.log(res.status, await res.text()); // 200 "pong"
   * ```
   */
  request(url: string | URL, options?: ClientRequestOptions): Promise<ClientResponse> {
    if (this.#closed) return Promise.reject(new ManagerClosedError());
    return httpRequest(this, url, options, this.#pool ??= new ClientPool());
  }

  /**
   * Opens a keep-alive HTTP connection to a server for several requests.
   *
   * @param url The server (`http://host:port` or `https://...`); a path is ignored.
   * @param options Connect timeout and TLS trust.
   * @returns The connection, once connected.
   * @throws {ClientError} if the name does not resolve or the connection fails.
   * @example
   * ```ts
   * import { Manager } from "../mod.ts";
   * await using mgr = new Manager();
   * const { port } = mgr.listen("http://127.0.0.1:0", { onRequest: (ev) => void ev.reply(200, ev.path) });
   * await using conn = await mgr.connect(`http://127.0.0.1:${port}`);
   * for (const p of ["/a", "/b"]) console.log(await (await conn.request(p)).text()); // "/a", "/b"
   * ```
   */
  connect(url: string | URL, options?: ClientConnectOptions): Promise<HttpClientConnection> {
    return openHttpConnection(this, url, options);
  }

  /**
   * Opens an outbound TCP (or TLS) connection to a resolved address; its
   * events go to `sink`, not to the iterator. The manager's loop is driven
   * while such connections are open.
   * @internal Used by the HTTP client.
   * @param addr `tcp://IP:port` or `tcp://[IPv6]:port`.
   * @param tls TLS settings, for an encrypted connection.
   * @param sink The receiver of the connection's events.
   * @returns The connection.
   */
  openClient(addr: string, tls: ClientTls | undefined, sink: ClientSink): Connection {
    if (this.#closed) throw new ManagerClosedError();
    if (this.#shutdown) throw new MgnetError("the manager is shutting down", "State");
    const a = utf8Encoder.encode(addr);
    const name = utf8Encoder.encode(tls?.name ?? "");
    const ca = tls?.ca ?? new Uint8Array(0);
    const flags = tls ? 1 | (tls.insecure ? 2 : 0) : 0;
    const out = new Uint8Array(8);
    const slot = check(
      this.#sym.mgnet_connect(this.#h, a, a.length, flags, name, name.length, ca, ca.length, out),
    );
    const conn = new Connection(this.#host, slot, new DataView(out.buffer).getFloat64(0, true));
    this.#clients.set(conn.id, { conn, sink });
    this.#sym.mgnet_wake(this.#h); // a waiting loop must add the new socket
    this.#drive().catch(() => {}); // a failing poll surfaces in the loop itself
    return conn;
  }

  /**
   * Marks an outbound connection idle (parked in the pool: it no longer
   * keeps the loop running) or busy.
   * @internal Used by the HTTP client's pool.
   * @param conn The connection from {@linkcode openClient}.
   * @param idle Idle or busy.
   */
  setClientIdle(conn: Connection, idle: boolean): void {
    if (!this.#clients.has(conn.id)) return;
    if (idle) this.#idleClients.add(conn.id);
    else if (this.#idleClients.delete(conn.id)) this.#drive().catch(() => {});
  }

  /**
   * Queues bytes on an outbound connection.
   * @internal Used by the HTTP client.
   * @param conn The connection from {@linkcode openClient}.
   * @param data The bytes.
   * @returns The bytes queued and not yet sent.
   */
  sendClient(conn: Connection, data: Uint8Array): number {
    conn.assertOpen();
    const rc = this.#sym.mgnet_send(this.#h, conn.slot, conn.id, data, 0, data.length);
    if (rc < 0) this.#host.check(rc);
    this.#host.queued();
    return rc;
  }

  /**
   * Resolves once at most `mark` bytes remain unsent on an outbound
   * connection (at once if that is already so); rejects with
   * `ConnectionClosedError` if it closes first.
   * @internal Used by the HTTP client for request bodies.
   * @param conn The connection from {@linkcode openClient}.
   * @param mark The level to wait for (bytes).
   * @returns The wait.
   */
  clientDrained(conn: Connection, mark: number): Promise<void> {
    conn.assertOpen();
    const rc = this.#sym.mgnet_client_want_drain(this.#h, conn.slot, conn.id, mark);
    if (rc < 0) this.#host.check(rc);
    return rc === 0 ? Promise.resolve() : this.#host.drained(conn);
  }

  /**
   * Tells the core that bytes received on an outbound connection were
   * consumed (reading pauses while over 1 MiB is not).
   * @internal Used by the HTTP client.
   * @param conn The connection from {@linkcode openClient}.
   * @param n Bytes consumed since the last call.
   */
  ackClient(conn: Connection, n: number): void {
    if (conn.closed || this.#closed) return;
    if (this.#sym.mgnet_client_ack(this.#h, conn.slot, conn.id, n) === 1) this.#sym.mgnet_wake(this.#h);
  }

  /** Decodes the next event of the current batch, or undefined. */
  #decode(): MgEvent | undefined {
    const u8 = this.#batch;
    const dv = this.#batchView;
    while (this.#pos < this.#end) {
      const off = this.#pos;
      this.#pos += dv.getUint32(off + 4, true);
      const id = dv.getUint32(off + 8, true) + dv.getUint32(off + 12, true) * 0x1_0000_0000;
      const slot = dv.getUint32(off + 16, true);
      switch (u8[off]) {
        case Kind.Http: {
          const conn = this.#conn(slot, id) as HttpConnection;
          const ev = new HttpRequestEvent(conn, u8, dv, off);
          if (u8[off + 1] & HTTP_FLAG_STREAMED) {
            const sink = new BodySink(conn);
            ev.attachBody(sink);
            this.#bodies.set(id, sink);
          }
          return ev;
        }
        case Kind.Body: {
          const sink = this.#bodies.get(id);
          if (!sink) continue;
          const flags = u8[off + 1];
          if (flags & BODY_END) {
            this.#bodies.delete(id);
            sink.end();
          } else if (flags & BODY_ERROR) {
            this.#bodies.delete(id);
            sink.fail(bodyRefused(dv.getUint16(off + 2, true)));
          } else {
            const len = dv.getUint32(off + 24, true);
            sink.push(u8.subarray(off + 28, off + 28 + len));
          }
          continue;
        }
        case Kind.Data: {
          const len = dv.getUint32(off + 20, true);
          this.#clients.get(id)?.sink.onData(u8.subarray(off + 24, off + 24 + len));
          continue;
        }
        case Kind.Open: {
          const ipv6 = (u8[off + 1] & 1) !== 0;
          const client = this.#clients.get(id);
          if (client) {
            client.sink.onOpen(
              addr(u8, off + 32, dv.getUint16(off + 28, true), ipv6),
              addr(u8, off + 48, dv.getUint16(off + 30, true), ipv6),
            );
            continue;
          }
          const conn = new HttpConnection(
            this.#host,
            slot,
            id,
            addr(u8, off + 32, dv.getUint16(off + 28, true), ipv6),
            addr(u8, off + 48, dv.getUint16(off + 30, true), ipv6),
          );
          this.#conns[slot] = conn;
          const listenerId = dv.getUint32(off + 20, true) + dv.getUint32(off + 24, true) * 0x1_0000_0000;
          this.#connHandlers[slot] = this.#handlers.get(listenerId);
          return { type: "open", conn, listenerId };
        }
        case Kind.Close: {
          const client = this.#clients.get(id);
          if (client) {
            client.conn.markClosed();
            this.#clients.delete(id);
            this.#idleClients.delete(id);
            const w = this.#drainWaiters.get(client.conn);
            if (w) {
              this.#drainWaiters.delete(client.conn);
              w.reject(new ConnectionClosedError(`connection ${id} closed`));
            }
            client.sink.onClose();
            continue;
          }
          const conn = this.#conn(slot, id);
          conn.markClosed();
          this.#conns[slot] = undefined;
          const body = this.#bodies.get(id);
          if (body) {
            this.#bodies.delete(id);
            body.fail(bodyCut(id));
          }
          this.#connClosed?.resolve();
          const w = this.#drainWaiters.get(conn);
          if (w) {
            this.#drainWaiters.delete(conn);
            w.reject(new ConnectionClosedError(`connection ${id} closed`));
          }
          return { type: "close", conn };
        }
        case Kind.Drain: {
          // Internal: a streamed response (or a client's request body) has room again.
          const own = this.#conns[slot];
          const conn = own?.id === id ? own : this.#clients.get(id)?.conn;
          const w = conn && this.#drainWaiters.get(conn);
          if (w) {
            this.#drainWaiters.delete(conn!);
            w.resolve();
          }
          continue;
        }
        case Kind.Error: {
          const len = dv.getUint32(off + 20, true);
          const message = utf8Decoder.decode(u8.subarray(off + 24, off + 24 + len));
          const client = this.#clients.get(id);
          if (client) {
            client.sink.onError(message);
            continue;
          }
          return { type: "error", conn: this.#conn(slot, id), message };
        }
      }
    }
    return undefined;
  }

  #wait(ms: number): Promise<number> {
    const p = this.#sym.mgnet_wait(this.#epfd, ms);
    this.#waiting = p;
    return p.finally(() => {
      if (this.#waiting === p) this.#waiting = undefined;
      this.#lastYield = performance.now();
    });
  }

  /** Waits on the JS thread for traffic, briefly. */
  #bridgeGap(ms: number): boolean {
    return this.#sym.mgnet_wait_sync(this.#epfd, Math.min(ms, SYNC_WAIT_MS)) > 0;
  }

  /** {@linkcode #fill}, shared by whoever needs the loop to run right now. */
  #fillShared(): Promise<boolean> {
    this.#filling ??= this.#fill().finally(() => this.#filling = undefined);
    return this.#filling;
  }

  /** Makes a new batch current: polls, or waits when idle. False once closed. */
  async #fill(): Promise<boolean> {
    for (;;) {
      if (this.#closed) return false;
      if (performance.now() - this.#lastYield >= YIELD_MS) {
        // Busy for a while: let timers and other I/O of this process run.
        await this.#wait(0);
        continue;
      }
      if (this.#pos < this.#end) this.#toBacklog();
      if (this.#pollOnce() > 0) return true;
      const ms = this.#sym.mgnet_next_timeout(this.#h);
      if (ms < 0) this.#host.check(ms);
      if (ms === 0) continue;
      // Bridging a gap blocks this thread: only when no JS code can be about
      // to add work (no request awaits its handler, no outbound connection is
      // busy: its owner's next step runs in a microtask after this one).
      if (
        this.#sym.mgnet_awaiting(this.#h) === 0 && this.#clients.size === this.#idleClients.size &&
        this.#bridgeGap(ms)
      ) continue;
      await this.#wait(ms);
    }
  }

  async #nextSlow(): Promise<IteratorResult<MgEvent>> {
    for (;;) {
      const ev = this.#next();
      if (ev !== undefined) return { value: ev, done: false };
      if (!(await this.#fillShared())) break;
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
    this.#lastYield = performance.now();
    return {
      next: (): Promise<IteratorResult<MgEvent>> => {
        this.#delivered++;
        if (this.#hasEvents()) {
          const ev = this.#next();
          if (ev !== undefined) return Promise.resolve({ value: ev, done: false });
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
   * @example Stopping on SIGTERM
   * ```ts ignore
   * Deno.addSignalListener("SIGTERM", () => mgr.shutdown({ timeout: 5000 }));
   * ```
   */
  shutdown(options: { timeout?: number } = {}): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#shutdown ??= (async () => {
      const deadline = performance.now() + (options.timeout ?? this.#shutdownTimeout);
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        for (;;) {
          if (this.#closed) break;
          this.#connClosed = Promise.withResolvers<void>();
          const open = this.#host.check(this.#sym.mgnet_shutdown(this.#h));
          if (open === 0) break;
          const left = deadline - performance.now();
          if (left <= 0) break;
          this.#sym.mgnet_wake(this.#h); // the loop runs and closes what is done
          await Promise.race([
            this.#connClosed.promise,
            new Promise<void>((r) => timer = setTimeout(r, left)),
          ]);
          clearTimeout(timer);
        }
      } finally {
        this.#connClosed = undefined;
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
    if (this.#closing) return this.#closing;
    this.#closed = true;
    this.#closing = (async () => {
      this.#sym.mgnet_flush(this.#h);
      this.#sym.mgnet_wake(this.#h);
      while (this.#waiting) await this.#waiting.catch(() => {});
      await this.#pumping;
      this.#sym.mgnet_manager_free(this.#h);
      for (const c of this.#conns) c?.markClosed();
      const clients = [...this.#clients.values()];
      this.#clients.clear();
      this.#idleClients.clear();
      for (const { conn, sink } of clients) {
        conn.markClosed();
        sink.onClose();
      }
      this.#pool?.clear(); // its connections are closed by now: this drops their timers
      for (const [id, body] of this.#bodies) body.fail(bodyCut(id));
      this.#bodies.clear();
      for (const [conn, w] of this.#drainWaiters) {
        w.reject(new ConnectionClosedError(`connection ${conn.id} closed`));
      }
      this.#drainWaiters.clear();
      this.#conns = [];
      this.#connHandlers = [];
    })();
    return this.#closing;
  }

  /** Same as {@linkcode close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function streamOver(v: number | undefined): number {
  if (v === undefined) return -1;
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new RangeError("streamBodiesOver must be a non-negative integer");
  }
  return v;
}

function addr(u8: Uint8Array, off: number, port: number, ipv6: boolean): NetAddr {
  let hostname: string;
  if (!ipv6) {
    hostname = `${u8[off]}.${u8[off + 1]}.${u8[off + 2]}.${u8[off + 3]}`;
  } else {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((u8[off + i] << 8) | u8[off + i + 1]).toString(16));
    hostname = compressIpv6(groups);
  }
  return { transport: "tcp", hostname, port };
}

function compressIpv6(groups: string[]): string {
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}
