/**
 * Answering HTTP requests: complete replies, streamed responses with
 * backpressure ({@linkcode ResponseWriter}), and the HTTP connection.
 *
 * @module
 */

import { Connection, connInternals } from "../core/connection.ts";
import { ConnectionClosedError, MgnetError } from "../core/errors.ts";
import { Status } from "../core/abi.ts";
import { Reply } from "./abi.ts";
import {
  bodyBytes,
  checkStatus,
  encodedLen,
  encodeHead,
  encodeString,
  encodeTrustedPairs,
  type ReplyBody,
  type ReplyHeaders,
} from "./headers.ts";

/**
 * Queues a complete response for request `seq` of `conn`. Returns false
 * when the connection closed before JS could know (the response is
 * dropped, as Deno.serve drops it); throws ConnectionClosedError when the
 * connection's `close` event was already delivered.
 */
export function sendReply(
  conn: Connection,
  seq: number,
  status: number,
  body: ReplyBody,
  headers: ReplyHeaders | undefined,
  trusted = false,
): boolean {
  checkStatus(status);
  connInternals.assertOpen(conn);
  const head = trusted ? encodeTrustedPairs(headers as [string, string][]) : encodeHead(headers);
  const data = bodyBytes(body);
  const host = connInternals.host(conn);
  const slot = connInternals.slot(conn);
  const bytes = typeof data === "string" ? encodeString(data) : data;
  const len = typeof data === "string" ? encodedLen : data.length;
  const rc = host.sym.mgnet_http_reply(
    host.handle,
    slot,
    conn.id,
    seq,
    status,
    head.flags,
    head.bytes,
    head.bytes.length,
    bytes,
    0,
    len,
  );
  if (rc === Status.Closed) return false; // closed natively; its close event is on its way
  if (rc < 0) host.check(rc);
  host.queued();
  return true;
}

/** A streamed response's `write()` waits while more than this is queued (bytes). */
export const STREAM_HIGH_WATER = 256 * 1024;
/** Marks a writer whose client left before the response started (inside `src/` only). */
export let abandonWriter: (w: ResponseWriter) => void;
/** ...and resumes once the queue is down to this. */
const STREAM_LOW_WATER = 64 * 1024;

/**
 * The body of a streamed response, from `HttpRequestEvent.respond()`.
 * HTTP/1.1 clients receive it with chunked framing, HTTP/1.0 clients as a
 * body that ends when the connection closes, HEAD requests not at all.
 *
 * Backpressure: `write()` resolves at once while less than
 * {@linkcode STREAM_HIGH_WATER} bytes wait to be sent, otherwise when the
 * client has read enough; a slow reader therefore bounds the memory a
 * stream uses instead of growing it.
 *
 * @example Streaming a large body
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const { port } = mgr.listen("http://127.0.0.1:0", {
 *   async onRequest(ev) {
 *     const out = ev.respond(200, { "content-type": "application/octet-stream" });
 *     // Each write waits while more than STREAM_HIGH_WATER bytes are unsent.
 *     for (let i = 0; i < 64; i++) await out.write(new Uint8Array(64 * 1024));
 *     out.end();
 *   },
 * });
 * const res = await fetch(`http://127.0.0.1:${port}/`);
 * assert.equal((await res.bytes()).length, 64 * 64 * 1024);
 * ```
 */
export class ResponseWriter {
  #conn: HttpConnection;
  #seq: number;
  #ended = false;
  #gone = false;
  #queued = 0;

  static {
    abandonWriter = (w) => {
      w.#gone = true;
      w.#ended = true;
    };
  }

  /**
   * Made by `HttpRequestEvent.respond()`; not constructed by users.
   *
   * @param conn The connection.
   * @param seq The request's position on it.
   */
  constructor(conn: HttpConnection, seq: number) {
    this.#conn = conn;
    this.#seq = seq;
  }

  /** True once {@linkcode end} was called. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Bytes of this response the socket had not taken after the last write. */
  get queued(): number {
    return this.#queued;
  }

  /**
   * Sends a piece of the body.
   *
   * @param chunk Bytes, or a string sent as UTF-8.
   * @returns A promise that resolves when more may be written.
   * @throws {ConnectionClosedError} if the client went away.
   */
  async write(chunk: string | Uint8Array): Promise<void> {
    const conn = this.#conn;
    if (this.#gone) throw new ConnectionClosedError(`connection ${conn.id} closed`);
    if (this.#ended) throw new MgnetError("write() after end()", "State");
    connInternals.assertOpen(conn);
    const host = connInternals.host(conn);
    const slot = connInternals.slot(conn);
    const data = typeof chunk === "string" ? encodeString(chunk) : chunk;
    const len = typeof chunk === "string" ? encodedLen : chunk.length;
    const queued = host.sym.mgnet_http_write(host.handle, slot, conn.id, this.#seq, data, 0, len);
    if (queued < 0) {
      if (queued === Status.Closed) throw new ConnectionClosedError(`connection ${conn.id} closed`);
      host.check(queued);
    }
    this.#queued = queued;
    host.queued();
    if (queued > STREAM_HIGH_WATER) {
      const rc = host.sym.mgnet_want_drain(host.handle, slot, conn.id, this.#seq, STREAM_LOW_WATER);
      if (rc > 0) await host.drained(conn);
      else if (rc < 0) host.check(rc);
    }
  }

  /**
   * Ends the body. Idempotent.
   *
   * @param close Close the connection after this response.
   */
  end(close = false): void {
    if (this.#ended) return;
    this.#ended = true;
    const conn = this.#conn;
    if (conn.closed) return;
    const host = connInternals.host(conn);
    const rc = host.sym.mgnet_http_end(
      host.handle,
      connInternals.slot(conn),
      conn.id,
      this.#seq,
      close ? 1 : 0,
    );
    if (rc === Status.Closed) return;
    if (rc < 0) host.check(rc);
    host.queued();
  }
}

/**
 * A connection accepted by an HTTP listener.
 *
 * @example Answering the oldest request of a connection
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const { port } = mgr.listen("http://127.0.0.1:0");
 * const res = fetch(`http://127.0.0.1:${port}/`).then((r) => r.text());
 * for await (const ev of mgr) {
 *   if (ev.type === "http") {
 *     ev.conn.reply(200, "ok");
 *     break;
 *   }
 * }
 * assert.equal(await res, "ok");
 * ```
 */
export class HttpConnection extends Connection {
  /**
   * Answers the oldest request on this connection that has no response yet.
   * With pipelining and async handlers prefer `HttpRequestEvent.reply()`,
   * which is bound to its request.
   *
   * @param status Status code, 200–599.
   * @param body Response body (string as UTF-8, or bytes).
   * @param headers Response headers.
   * @returns `true` if queued, `false` if the client went away before this
   *   reply (nothing is sent; the `close` event follows).
   * @throws {ConnectionClosedError} if the connection's `close` event was
   *   already delivered.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager } from "../../mod.ts";
   *
   * await using mgr = new Manager();
   * const { port } = mgr.listen("http://127.0.0.1:0", {
   *   onRequest: (ev) => void ev.conn.reply(200, '{"ok":true}', { "content-type": "application/json" }),
   * });
   * const res = await fetch(`http://127.0.0.1:${port}/`);
   * assert.equal(res.headers.get("content-type"), "application/json");
   * assert.deepEqual(await res.json(), { ok: true });
   * ```
   */
  reply(status: number, body?: ReplyBody, headers?: ReplyHeaders): boolean {
    return sendReply(this, Reply.SeqOldest, status, body, headers);
  }
}
