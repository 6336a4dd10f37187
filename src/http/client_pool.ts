/**
 * Keep-alive reuse for the HTTP client: a pool of idle connections per
 * origin, and `Manager.request`, which takes from it and retries an
 * idempotent request once when a reused connection turns out closed.
 *
 * @module
 */

import type { Loop } from "../core/loop.ts";
import { headerEntries } from "./headers.ts";
import {
  ClientError,
  clientInternals,
  type ClientRequestOptions,
  type ClientResponse,
  type HttpClientConnection,
  openHttpConnection,
} from "./client.ts";

/**
 * Most idle connections a pool keeps per origin: above the concurrency of
 * a busy proxy (at 16, 50 concurrent requests closed and reopened a
 * connection on most requests: 120 µs of CPU per request instead of ~60).
 */
const POOL_MAX_IDLE = 256;
/**
 * An idle pooled connection is closed after this many ms: under the 5 s
 * keep-alive timeout common in servers, so a server rarely closes one just
 * as it is reused.
 */
const POOL_IDLE_MS = 4_000;
/** Methods whose requests may be sent again (RFC 9110 9.2.2; method names are case-sensitive). */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

/** How often a pool looks for connections idle too long. */
const POOL_SWEEP_MS = 500;

/**
 * Idle keep-alive connections of one manager, by origin: the most recently
 * parked one is reused first. One unref'd sweep timer (every 500 ms while
 * any connection is idle) closes those idle for `POOL_IDLE_MS` - 500 ms or
 * more, so a connection idles 3.5 to 4 s; a timer per parked connection
 * cost 3 % of a proxy's CPU (one set and one clear per request).
 * Used by `Manager.request`.
 */
export class ClientPool {
  #idle = new Map<string, HttpClientConnection[]>();
  /** When each idle connection was parked (performance.now()), and under which key. */
  #parked = new Map<HttpClientConnection, { at: number; key: string }>();
  #sweeper: ReturnType<typeof setTimeout> | undefined;

  /** An idle, open connection for `key`, now busy; or undefined. */
  take(key: string): HttpClientConnection | undefined {
    const list = this.#idle.get(key);
    if (list === undefined) return undefined;
    for (let conn = list.pop(); conn; conn = list.pop()) {
      this.#parked.delete(conn);
      if (conn.closed) continue;
      if (list.length === 0) this.#idle.delete(key);
      clientInternals.setIdle(conn, false);
      return conn;
    }
    this.#idle.delete(key);
    return undefined;
  }

  /** Keeps an open connection that finished its requests, for a while. */
  park(key: string, conn: HttpClientConnection): void {
    if (conn.closed || this.#parked.has(conn)) return;
    let list = this.#idle.get(key);
    if (!list) this.#idle.set(key, list = []);
    if (list.length >= POOL_MAX_IDLE) return conn.close();
    list.push(conn);
    clientInternals.setIdle(conn, true);
    this.#parked.set(conn, { at: performance.now(), key });
    if (this.#sweeper === undefined) {
      this.#sweeper = setTimeout(this.#sweep, POOL_SWEEP_MS);
      Deno.unrefTimer(this.#sweeper);
    }
  }

  #sweep = (): void => {
    this.#sweeper = undefined;
    const old = performance.now() - (POOL_IDLE_MS - POOL_SWEEP_MS);
    // Map order is parking order: the oldest come first.
    for (const [conn, { at, key }] of this.#parked) {
      if (at > old) break;
      this.#parked.delete(conn);
      const list = this.#idle.get(key);
      const i = list?.indexOf(conn) ?? -1;
      if (i >= 0) list!.splice(i, 1);
      if (list?.length === 0) this.#idle.delete(key);
      // Busy again until its close is done, so the loop runs to carry it out.
      clientInternals.setIdle(conn, false);
      conn.close();
    }
    if (this.#parked.size > 0) {
      this.#sweeper = setTimeout(this.#sweep, POOL_SWEEP_MS);
      Deno.unrefTimer(this.#sweeper);
    }
  };

  /** Closes every idle connection. */
  clear(): void {
    clearTimeout(this.#sweeper);
    this.#sweeper = undefined;
    this.#parked.clear();
    for (const list of this.#idle.values()) for (const conn of list) conn.close();
    this.#idle.clear();
  }
}

/**
 * One request: on an idle connection of `pool` when there is one (sent
 * again on a fresh connection if the server had closed it and the request
 * is idempotent with a fixed body), else on a new connection that is pooled
 * afterwards; with `keepAlive: false`, on a new connection closed once the
 * body has arrived.
 * The work behind `Manager.request`.
 *
 * @param loop The manager's loop.
 * @param url The URL.
 * @param options Method, headers, body, timeouts, signal, TLS trust.
 * @param pool The manager's pool of idle connections.
 * @returns The response once its head is in.
 */
export async function httpRequest(
  loop: Loop,
  url: string | URL,
  options: ClientRequestOptions = {},
  pool?: ClientPool,
): Promise<ClientResponse> {
  const u = new URL(url);
  const asksClose = [...headerEntries(options.headers ?? {})].some(([k, v]) =>
    String(k).toLowerCase() === "connection" && /\bclose\b/i.test(String(v))
  );
  if (
    pool && options.keepAlive !== false && options.ca === undefined && options.cert === undefined &&
    !asksClose
  ) {
    const key = `${u.origin} ${options.insecure ? "insecure" : "verified"}`;
    const body = options.body;
    const resendable = IDEMPOTENT.has(options.method ?? "GET") &&
      (body === undefined || body === null || typeof body === "string" || body instanceof Uint8Array);
    for (;;) {
      const pooled = pool.take(key);
      const conn = pooled ?? await openHttpConnection(loop, u, options);
      clientInternals.onIdle(conn, () => pool.park(key, conn));
      try {
        return await conn.request(`${u.pathname}${u.search}`, options);
      } catch (e) {
        conn.close();
        // A reused connection the server had closed while it sat idle.
        if (pooled && resendable && e instanceof ClientError && e.kind === "reset") continue;
        throw e;
      }
    }
  }
  const conn = await openHttpConnection(loop, u, options);
  const headers: [string, string][] = [...headerEntries(options.headers ?? {})]
    .filter(([k]) => String(k).toLowerCase() !== "connection")
    .map(([k, v]) => [k, v]);
  headers.push(["connection", "close"]);
  try {
    return await conn.request(`${u.pathname}${u.search}`, { ...options, headers });
  } catch (e) {
    conn.close();
    throw e;
  }
}
