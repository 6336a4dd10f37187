/**
 * `serve()`: `Deno.serve`'s signature on the mgnet engine. Handlers take a
 * web `Request` and return a `Response` (or a promise of one), so apps
 * written for `Deno.serve`, Hono apps (`serve(app.fetch)`) and modules for
 * `deno serve` run unchanged.
 *
 * @module
 */

import type { NetAddr } from "../core/connection.ts";
import type { Pem, TlsListenOptions } from "../core/tls.ts";
import { ConnectionClosedError } from "../core/errors.ts";
import { MgRequest, requestAbortController, type RequestContext, staticParts } from "./fetch_bridge.ts";
import { type HttpRequestEvent, requestInternals } from "../http/request_event.ts";
import { completeUpgrade } from "../ws/accept.ts";
import { bodyToBytes, encodeCachedHead } from "../http/headers.ts";
import { type CacheOptions, cacheSet } from "../http/cache.ts";
import { Manager, managerLoop, type ManagerOptions } from "../manager.ts";
import { METRICS_CONTENT_TYPE } from "../core/metrics.ts";

/** Extra information a handler receives, like `Deno.ServeHandlerInfo`. */
export interface ServeHandlerInfo {
  /** The client's address. */
  readonly remoteAddr: NetAddr;
  /** Resolves when the response has been handed to the connection (or the client left). */
  readonly completed: Promise<void>;
}

/** A fetch-style handler. */
export type ServeHandler = (request: Request, info: ServeHandlerInfo) => Response | Promise<Response>;

/** Options of {@linkcode serve}, a subset of `Deno.ServeTcpOptions` plus mgnet's limits. */
export interface ServeOptions extends Omit<ManagerOptions, "metrics"> {
  /** Port to listen on (default 8000; 0 picks a free one). */
  port?: number;
  /** Address to listen on (default `"0.0.0.0"`). */
  hostname?: string;
  /** Called once listening (default: logs `Listening on http://…/`); `false` silences it. */
  onListen?: ((localAddr: NetAddr) => void) | false;
  /** Turns a handler's error into a response (default: logs it, answers 500). */
  onError?: (error: unknown) => Response | Promise<Response>;
  /** Certificate chain (PEM): with `key`, serves HTTPS, as `Deno.serve` does. */
  cert?: Pem;
  /** Private key (PEM) of `cert`. */
  key?: Pem;
  /** Further TLS settings (`sni`, `ca` + `requestCert`, `alpn`); with `cert`/`key`. */
  tls?: Omit<TlsListenOptions, "cert" | "key">;
  /**
   * A path (e.g. `"/metrics"`) answered with the server's metrics in the
   * Prometheus text format for GET and HEAD, before the handler sees the
   * request; turns `metrics` on. Default: none.
   */
  metrics?: string;
}

/** Options with the handler inside, the third form of {@linkcode serve}. */
export interface ServeInit extends ServeOptions {
  /** The request handler. */
  handler: ServeHandler;
}

/** The running server, like `Deno.HttpServer`. */
export interface HttpServer extends AsyncDisposable {
  /** The address actually bound. */
  readonly addr: NetAddr;
  /** Resolves once the server has shut down. */
  readonly finished: Promise<void>;
  /**
   * The manager whose loop runs this server: pass it to mgnet's clients
   * (`createConnection({ port, host, manager: server.manager })` from
   * `./node-net`, `manager.connect(...)`) so a handler's awaited I/O runs on
   * the same loop as the server, with no thread hop.
   */
  readonly manager: Manager;
  /**
   * Stops accepting connections, closes idle keep-alive connections, lets
   * in-flight requests finish (at most `shutdownTimeout`), then closes
   * everything (see `Manager.shutdown`).
   */
  shutdown(): Promise<void>;
  /**
   * Answers GET and HEAD requests for `target` with `response` inside the
   * native core from now on (no handler call), with ETag / 304 handling,
   * until `options.ttl` ms pass or it is invalidated. The body is read once.
   */
  cache(target: string, response: Response, options?: CacheOptions): Promise<void>;
  /** Removes cached responses tagged `tag`, or all; returns how many. */
  invalidate(tag?: string): number;
}

const cacheMarks = new WeakMap<Response, CacheOptions>();
const METRICS_HEADERS = Object.freeze({ "content-type": METRICS_CONTENT_TYPE });

/**
 * Marks a handler's response for the native cache: once sent, later GET and
 * HEAD requests for the same target (path and query) are answered by the
 * core without calling the handler, until the time to live passes or its
 * tags are invalidated (`server.invalidate(tag)`). Only static bodies
 * (string, bytes, JSON) are cached; a streamed response is just sent.
 *
 * @param response The response to send and cache.
 * @param options Time to live (ms), tags, entity tag.
 * @returns The same response.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cached, serve } from "./serve.ts";
 *
 * let calls = 0;
 * const server = serve({ port: 0, onListen: false }, () => {
 *   calls++;
 *   return cached(Response.json({ report: "done" }), { ttl: 60_000, tags: ["reports"] });
 * });
 * const url = `http://127.0.0.1:${server.addr.port}/report`;
 * for (let i = 0; i < 3; i++) assert.deepEqual(await (await fetch(url)).json(), { report: "done" });
 * assert.equal(calls, 1); // the 2nd and 3rd came from the cache
 * assert.equal(server.invalidate("reports"), 1);
 * await (await fetch(url)).text();
 * assert.equal(calls, 2);
 * await server.shutdown();
 * ```
 */
export function cached(response: Response, options: CacheOptions = {}): Response {
  cacheMarks.set(response, options);
  return response;
}

/** The `info` argument of handlers; `completed` is made only when read. */
class HandlerInfo implements ServeHandlerInfo {
  #ev: HttpRequestEvent;
  #completed: PromiseWithResolvers<void> | undefined;
  #done = false;

  constructor(ev: HttpRequestEvent) {
    this.#ev = ev;
  }

  get remoteAddr(): NetAddr {
    return this.#ev.conn.remoteAddr!;
  }

  get completed(): Promise<void> {
    this.#completed ??= Promise.withResolvers<void>();
    if (this.#done) this.#completed.resolve();
    return this.#completed.promise;
  }

  done(): void {
    this.#done = true;
    this.#completed?.resolve();
  }
}

function defaultOnError(error: unknown): Response {
  console.error("mgnet serve: the handler failed:", error);
  return new Response("Internal Server Error", { status: 500 });
}

/**
 * Serves HTTP/1.1 with a fetch-style handler, with `Deno.serve`'s call forms:
 * `serve(handler)`, `serve(options, handler)` and `serve({ ...options, handler })`.
 *
 * Responses with a string, bytes or JSON body are written in one step;
 * `ReadableStream` (and Blob, FormData) bodies are streamed with chunked
 * framing and backpressure. A handler that throws gets `onError`'s
 * response (default 500). `request.signal` aborts if the client leaves.
 *
 * @param a The handler, or the options.
 * @param b The handler, when `a` holds options.
 * @returns The running server.
 * @example Hello world
 * ```ts
 * import assert from "node:assert/strict";
 * import { serve } from "./serve.ts";
 *
 * const server = serve({ port: 0, onListen: false }, () => new Response("hello"));
 * const res = await fetch(`http://127.0.0.1:${server.addr.port}/`);
 * assert.equal(await res.text(), "hello");
 * await server.shutdown();
 * ```
 */
export function serve(a: ServeHandler | ServeInit | ServeOptions, b?: ServeHandler): HttpServer {
  let options: ServeOptions;
  let handler: ServeHandler;
  if (typeof a === "function") {
    options = {};
    handler = a;
  } else if (typeof b === "function") {
    options = a;
    handler = b;
  } else if (a && typeof (a as ServeInit).handler === "function") {
    options = a;
    handler = (a as ServeInit).handler;
  } else {
    throw new TypeError("serve() needs a handler function");
  }
  return new MgServer(options, handler);
}

/** A response's valid `content-length`, if it declares one. */
function declaredLength(headers: Headers): number | undefined {
  const v = headers.get("content-length");
  return v !== null && /^\d{1,15}$/.test(v) ? Number(v) : undefined;
}

class MgServer implements HttpServer {
  readonly addr: NetAddr;
  readonly finished: Promise<void>;
  #mgr: Manager;
  #handler: ServeHandler;

  get manager(): Manager {
    return this.#mgr;
  }

  #onError: (error: unknown) => Response | Promise<Response>;
  #metricsPath: string | undefined;
  #ctx: RequestContext;
  /** Abort controllers of requests whose `signal` was read, per connection. */
  #watched = new Map<number, Set<AbortController>>();

  constructor(options: ServeOptions, handler: ServeHandler) {
    const hostname = options.hostname ?? "0.0.0.0";
    const port = options.port ?? 8000;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`invalid port ${port}`);
    this.#handler = handler;
    this.#onError = options.onError ?? defaultOnError;
    if (options.metrics !== undefined && !/^\/[^?#\s]*$/.test(options.metrics)) {
      throw new TypeError(`metrics must be a path starting with "/", got ${JSON.stringify(options.metrics)}`);
    }
    this.#metricsPath = options.metrics;
    this.#mgr = new Manager({ ...options, metrics: options.metrics !== undefined });
    const host = hostname.includes(":") ? `[${hostname}]` : hostname;
    const secure = options.cert !== undefined || options.key !== undefined;
    const scheme = secure ? "https" : "http";
    const tls = secure ? { ...options.tls, cert: options.cert!, key: options.key! } : undefined;
    if (secure && (options.cert === undefined || options.key === undefined)) {
      throw new TypeError("serve() with TLS needs both cert and key");
    }
    let listener;
    try {
      listener = this.#mgr.listen(`${scheme}://${host}:${port}` as `https://${string}`, {
        ...tls!,
        onRequest: (ev) => this.#onRequest(ev),
        onClose: (ev) => {
          const set = this.#watched.get(ev.conn.id);
          if (!set) return;
          this.#watched.delete(ev.conn.id);
          for (const c of set) c.abort(new ConnectionClosedError("the client disconnected"));
        },
      });
    } catch (e) {
      this.#mgr.close();
      throw e;
    }
    this.addr = { transport: "tcp", hostname, port: listener.port };
    const shownHost = hostname === "0.0.0.0" ? "localhost" : host;
    this.#ctx = {
      origin: `${scheme}://${shownHost}:${listener.port}`,
      scheme,
      watch: (id, controller) => {
        let set = this.#watched.get(id);
        if (!set) this.#watched.set(id, set = new Set());
        set.add(controller);
      },
    };
    // The handler loop ends when the manager closes; the native side is
    // freed right after, which `close()` (idempotent) waits for.
    this.finished = this.#mgr.finished.then(() => this.#mgr.close());
    if (options.onListen !== false) {
      (options.onListen ?? ((a: NetAddr) => console.log(`Listening on ${scheme}://${shownHost}:${a.port}/`)))(
        this.addr,
      );
    }
  }

  #onRequest(ev: HttpRequestEvent): void {
    if (
      this.#metricsPath !== undefined && ev.path === this.#metricsPath &&
      (ev.method === "GET" || ev.method === "HEAD")
    ) {
      ev.reply(200, this.#mgr.metrics(), METRICS_HEADERS);
      return;
    }
    const req = new MgRequest(ev, this.#ctx);
    const info = new HandlerInfo(ev);
    let res: Response | Promise<Response>;
    try {
      res = (0, this.#handler)(req as unknown as Request, info);
    } catch (e) {
      this.#settle(ev, req, info, Promise.reject(e));
      return;
    }
    // The common case, answered synchronously with a static body: no promise.
    if (res instanceof Response && this.#send(ev, res)) this.#finish(ev, req, info);
    else this.#settle(ev, req, info, res);
  }

  async #settle(ev: HttpRequestEvent, req: MgRequest, info: HandlerInfo, res: Response | Promise<Response>) {
    try {
      const r = await res;
      if (!this.#send(ev, r)) await this.#stream(ev, r);
    } catch (e) {
      await this.#fail(ev, e);
    } finally {
      this.#finish(ev, req, info);
    }
  }

  #finish(ev: HttpRequestEvent, req: MgRequest, info: HandlerInfo): void {
    info.done();
    const controller = requestAbortController(req);
    if (controller) this.#watched.get(ev.conn.id)?.delete(controller); // answered: no abort
  }

  /** Sends a response with a static body in one step; false if it must stream. */
  #send(ev: HttpRequestEvent, res: Response): boolean {
    if (!(res instanceof Response)) throw new TypeError("the handler must return a Response");
    if (completeUpgrade(res)) return true;
    const parts = staticParts(res);
    if (!parts) return false;
    if (ev.conn.closed) {
      // the client left: nothing to send
    } else if (parts.body === null && ev.method === "HEAD" && res.headers.has("content-length")) {
      // A HEAD answer keeps the length its GET would have (RFC 9110 8.6).
      ev.respond(parts.status, parts.headers, declaredLength(res.headers)).end();
    } else {
      requestInternals.replyTrusted(ev, parts.status, parts.body, parts.headers);
    }
    const mark = cacheMarks.get(res);
    if (mark && ev.method === "GET") {
      try {
        cacheSet(
          managerLoop(this.#mgr),
          ev.uri,
          parts.status,
          encodeCachedHead(parts.headers, true),
          bodyToBytes(parts.body),
          mark,
        );
      } catch (e) {
        this.#report(e);
      }
    }
    return true;
  }

  async cache(target: string, response: Response, options: CacheOptions = {}): Promise<void> {
    const parts = staticParts(response);
    if (parts) {
      cacheSet(
        managerLoop(this.#mgr),
        target,
        parts.status,
        encodeCachedHead(parts.headers, true),
        bodyToBytes(parts.body),
        options,
      );
      return;
    }
    const body = await response.bytes();
    cacheSet(
      managerLoop(this.#mgr),
      target,
      response.status,
      encodeCachedHead(response.headers),
      body,
      options,
    );
  }

  invalidate(tag?: string): number {
    return this.#mgr.invalidate(tag);
  }

  /** Streams a response whose body is a stream (or Blob, FormData...). */
  async #stream(ev: HttpRequestEvent, res: Response): Promise<void> {
    if (!(res instanceof Response)) throw new TypeError("the handler must return a Response");
    if (ev.conn.closed) {
      await res.body?.cancel();
      return;
    }
    // A declared length is kept: the client learns the size up front.
    const out = ev.respond(res.status, res.headers, declaredLength(res.headers));
    const body = res.body;
    if (!body) return out.end();
    const reader = body.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        await out.write(value);
      }
      out.end();
    } catch (e) {
      await reader.cancel(e).catch(() => {});
      if (e instanceof ConnectionClosedError) return;
      // The body failed midway: the client must not mistake it for complete.
      out.end(true);
      if (!ev.conn.closed) ev.conn.close();
      throw e;
    }
  }

  async #fail(ev: HttpRequestEvent, error: unknown): Promise<void> {
    if (ev.replied) {
      // Too late for an error response: report it and drop the connection.
      this.#report(error);
      if (!ev.conn.closed) ev.conn.close();
      return;
    }
    let res: Response;
    try {
      res = await this.#onError(error);
    } catch (e) {
      this.#report(e);
      res = new Response("Internal Server Error", { status: 500 });
    }
    if (ev.replied || ev.conn.closed) return;
    if (!this.#send(ev, res)) await this.#stream(ev, res).catch((e) => this.#report(e));
  }

  #report(error: unknown): void {
    console.error("mgnet serve: the handler failed:", error);
  }

  shutdown(): Promise<void> {
    return this.#mgr.shutdown();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}
