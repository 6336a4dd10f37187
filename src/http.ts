/**
 * HTTP server side: request events decoded lazily from the native batch and
 * replies encoded straight into native send buffers.
 *
 * @module
 */

import { asciiEqualsLower, latin1, streamFrom, utf8Decoder, utf8Encoder } from "./bytes.ts";
import { Connection } from "./connection.ts";
import { ConnectionClosedError } from "./errors.ts";
import { type Credentials, parseAuthorization } from "./auth.ts";
import { type BodySink, wholeBody } from "./request_body.ts";

/** Header values for a reply. */
export type HeadersInit =
  | Record<string, string>
  | Headers
  | Iterable<readonly [string, string]>;

/** What a reply body can be. Strings are sent as UTF-8. */
export type BodyInit = string | Uint8Array | ArrayBuffer | ArrayBufferView | null | undefined;

/** Native "answer the oldest unanswered request" sequence number. */
const SEQ_OLDEST = 0xffffffff;
/** Native reply flag: close the connection after this response. */
const REPLY_CLOSE = 1;
/** Native reply flag: the headers carry their own `date`. */
const REPLY_OWN_DATE = 2;

// Offsets inside an HTTP record (rust/src/event.rs).
const F_FLAGS = 1;
const F_METHOD_CODE = 2;
const F_SEQ = 20;
const F_TARGET_OFF = 24;
const F_TARGET_LEN = 28;
const F_METHOD_OFF = 32;
const F_METHOD_LEN = 36;
const F_HDR_OFF = 40;
const F_HDR_COUNT = 44;
const F_BODY_OFF = 48;
const F_BODY_LEN = 52;
const FLAG_HTTP10 = 1;
const FLAG_KEEP_ALIVE = 2;
const FLAG_STREAMED = 4;

const METHODS = ["", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"];

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** `scheme://` at the start of an absolute-form request target. */
const ABSOLUTE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;
const BAD_VALUE = /[\0\r\n]/;

interface EncodedHead {
  bytes: Uint8Array;
  flags: number;
}

const EMPTY = new Uint8Array(0);
const NO_HEAD: EncodedHead = { bytes: EMPTY, flags: 0 };
const frozenHeads = new WeakMap<object, EncodedHead>();
let scratch = new Uint8Array(64 * 1024);

/**
 * The pairs of any accepted headers form.
 * @internal
 */
export function headerEntries(headers: HeadersInit): Iterable<readonly [string, string]> {
  if (headers instanceof Headers) return headers;
  if (Symbol.iterator in headers) return headers as Iterable<readonly [string, string]>;
  return Object.entries(headers as Record<string, string>);
}

/**
 * Writes header pairs as `name: value\r\n` lines (validating them unless a
 * `Headers` object already did). `content-length` and `transfer-encoding`
 * are dropped (mgnet frames the body); `connection: close` becomes a flag,
 * as does a handler's own `date`.
 */
function serializeHeaders(pairs: Iterable<readonly [string, string]>, validate: boolean): EncodedHead {
  let text = "";
  let flags = 0;
  for (const pair of pairs) {
    const name = String(pair[0]);
    const value = validate ? String(pair[1]).trim() : pair[1];
    if (validate) {
      if (!TOKEN.test(name)) throw new TypeError(`invalid header name: ${JSON.stringify(name)}`);
      if (BAD_VALUE.test(value)) throw new TypeError(`header ${name} contains CR, LF or NUL`);
    }
    const n = name.length;
    if (n === 4 || n === 10 || n === 14 || n === 17) {
      const lower = name.toLowerCase();
      if (lower === "content-length" || lower === "transfer-encoding") continue;
      if (lower === "connection") {
        if (/(^|,)\s*close\s*(,|$)/i.test(value)) flags |= REPLY_CLOSE;
        continue;
      }
      if (lower === "date") flags |= REPLY_OWN_DATE;
    }
    text += `${name}: ${value}\r\n`;
  }
  return { bytes: utf8Encoder.encode(text), flags };
}

/**
 * Serialises a handler's reply headers, validating them. Frozen header
 * objects are serialised once and remembered.
 */
function encodeHead(headers: HeadersInit | undefined): EncodedHead {
  if (headers === undefined || headers === null) return NO_HEAD;
  const frozen = typeof headers === "object" && Object.isFrozen(headers);
  if (frozen) {
    const hit = frozenHeads.get(headers);
    if (hit) return hit;
  }
  const head = serializeHeaders(headerEntries(headers), true);
  if (frozen) frozenHeads.set(headers, head);
  return head;
}

/** Bytes of the last {@linkcode encodeString} result. */
let encodedLen = 0;
/** Strings longer than this are encoded into a fresh buffer, not the shared one. */
const SCRATCH_MAX = 4 << 20;

/**
 * Encodes `s` as UTF-8, into the shared scratch buffer when it fits (its
 * length is left in `encodedLen`). Short ASCII strings are copied by a
 * plain loop: TextEncoder.encodeInto costs ~100 ns per call here, a third
 * of mgnet's JS work per hello request.
 */
function encodeString(s: string): Uint8Array {
  const n = s.length;
  if (n <= 256) {
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      scratch[i] = c;
    }
    if (i === n) {
      encodedLen = n;
      return scratch;
    }
  }
  if (n * 3 > SCRATCH_MAX) {
    const out = utf8Encoder.encode(s);
    encodedLen = out.length;
    return out;
  }
  if (n * 3 > scratch.length) scratch = new Uint8Array(1 << (32 - Math.clz32(n * 3)));
  encodedLen = utf8Encoder.encodeInto(s, scratch).written;
  return scratch;
}

/** Serialised header lists already validated by `Headers`, by content. */
const trustedHeads = new Map<string, EncodedHead>();

/**
 * Serialises header pairs that a `Headers` object already validated
 * (a `Response`'s header list): no validation, and small lists are cached
 * by content, since most handlers send the same few headers every time.
 */
function encodeTrustedPairs(pairs: [string, string][]): EncodedHead {
  if (pairs.length === 0) return NO_HEAD;
  let key = "";
  if (pairs.length <= 4) {
    for (const [k, v] of pairs) key += `${k}\0${v}\0`;
    const hit = trustedHeads.get(key);
    if (hit) return hit;
  }
  const head = serializeHeaders(pairs, false);
  if (key !== "" && key.length < 512) {
    if (trustedHeads.size >= 256) trustedHeads.clear();
    trustedHeads.set(key, head);
  }
  return head;
}

function bodyBytes(body: BodyInit): Uint8Array | string {
  if (body === undefined || body === null) return EMPTY;
  if (typeof body === "string") return body;
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError("reply body must be a string, Uint8Array, ArrayBuffer or null");
}

function checkStatus(status: number): void {
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    throw new RangeError(`status must be an integer from 200 to 599, got ${status}`);
  }
}

/**
 * Serialises validated header lines for a cached response (framing and
 * `connection` headers are refused: a cached response has none).
 * @internal
 */
export function encodeCachedHead(headers: HeadersInit | undefined, trusted = false): Uint8Array {
  const head = trusted ? encodeTrustedPairs(headers as [string, string][]) : encodeHead(headers);
  if (head.flags & REPLY_CLOSE) throw new TypeError("a cached response cannot close the connection");
  return head.bytes;
}

/**
 * Encodes a body for the native side; strings as UTF-8.
 * @internal
 */
export function bodyToBytes(body: BodyInit): Uint8Array {
  const data = bodyBytes(body);
  return typeof data === "string" ? utf8Encoder.encode(data) : data;
}

/**
 * Queues a complete response for request `seq` of `conn`. Returns false
 * when the connection closed before JS could know (the response is
 * dropped, as Deno.serve drops it); throws ConnectionClosedError when the
 * connection's `close` event was already delivered.
 * @internal
 */
export function sendReply(
  conn: Connection,
  seq: number,
  status: number,
  body: BodyInit,
  headers: HeadersInit | undefined,
  trusted = false,
): boolean {
  checkStatus(status);
  conn.assertOpen();
  const head = trusted ? encodeTrustedPairs(headers as [string, string][]) : encodeHead(headers);
  const data = bodyBytes(body);
  const host = conn.host;
  let rc: number;
  if (typeof data === "string") {
    const buf = encodeString(data);
    rc = host.sym.mgnet_http_reply(
      host.handle,
      conn.slot,
      conn.id,
      seq,
      status,
      head.flags,
      head.bytes,
      head.bytes.length,
      buf,
      0,
      encodedLen,
    );
  } else {
    rc = host.sym.mgnet_http_reply(
      host.handle,
      conn.slot,
      conn.id,
      seq,
      status,
      head.flags,
      head.bytes,
      head.bytes.length,
      data,
      0,
      data.length,
    );
  }
  if (rc === -2) return false; // closed natively; its close event is on its way
  if (rc < 0) host.check(rc);
  host.queued();
  return true;
}

/** A streamed response's `write()` waits while more than this is queued (bytes). */
export const STREAM_HIGH_WATER = 256 * 1024;
/** ...and resumes once the queue is down to this. */
const STREAM_LOW_WATER = 64 * 1024;

/**
 * The body of a streamed response, from {@linkcode HttpRequestEvent.respond}.
 * HTTP/1.1 clients receive it with chunked framing, HTTP/1.0 clients as a
 * body that ends when the connection closes, HEAD requests not at all.
 *
 * Backpressure: `write()` resolves at once while less than
 * {@linkcode STREAM_HIGH_WATER} bytes wait to be sent, otherwise when the
 * client has read enough; a slow reader therefore bounds the memory a
 * stream uses instead of growing it.
 *
 * @example Streaming a large body
 * ```ts ignore
 * const out = ev.respond(200, { "content-type": "application/octet-stream" });
 * for (let i = 0; i < 1000; i++) await out.write(new Uint8Array(64 * 1024));
 * out.end();
 * ```
 */
export class ResponseWriter {
  #conn: HttpConnection;
  #seq: number;
  #ended = false;
  #gone = false;
  #queued = 0;

  /**
   * @internal Made by {@linkcode HttpRequestEvent.respond}.
   * @param conn The connection.
   * @param seq The request's position on it.
   */
  constructor(conn: HttpConnection, seq: number) {
    this.#conn = conn;
    this.#seq = seq;
  }

  /** @internal The client left before the response started: writes throw `ConnectionClosedError`. */
  abandon(): void {
    this.#gone = true;
    this.#ended = true;
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
    if (this.#ended) throw new Error("write() after end()");
    conn.assertOpen();
    const host = conn.host;
    const data = typeof chunk === "string" ? encodeString(chunk) : chunk;
    const len = typeof chunk === "string" ? encodedLen : chunk.length;
    const queued = host.sym.mgnet_http_write(host.handle, conn.slot, conn.id, this.#seq, data, 0, len);
    if (queued < 0) {
      if (queued === -2) throw new ConnectionClosedError(`connection ${conn.id} closed`);
      host.check(queued);
    }
    this.#queued = queued;
    host.queued();
    if (queued > STREAM_HIGH_WATER) {
      const rc = host.sym.mgnet_want_drain(host.handle, conn.slot, conn.id, this.#seq, STREAM_LOW_WATER);
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
    const host = conn.host;
    if (conn.closed) return;
    const rc = host.sym.mgnet_http_end(host.handle, conn.slot, conn.id, this.#seq, close ? 1 : 0);
    if (rc === -2) return;
    if (rc < 0) host.check(rc);
    host.queued();
  }
}

/**
 * A connection accepted by an HTTP listener.
 *
 * @example Answering the oldest request of a connection
 * ```ts ignore
 * if (ev.type === "http") ev.conn.reply(200, "ok");
 * ```
 */
export class HttpConnection extends Connection {
  /**
   * Answers the oldest request on this connection that has no response yet.
   * With pipelining and async handlers prefer {@linkcode HttpRequestEvent.reply},
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
   * ```ts ignore
   * ev.conn.reply(200, '{"ok":true}', { "content-type": "application/json" });
   * ```
   */
  reply(status: number, body?: BodyInit, headers?: HeadersInit): boolean {
    return sendReply(this, SEQ_OLDEST, status, body, headers);
  }
}

/**
 * A complete HTTP request. Fields are decoded from the native batch only
 * when read. The event, its `body` view and all strings stay valid for as
 * long as you hold them (the batch memory is not reused).
 *
 * @example A JSON echo
 * ```ts ignore
 * for await (const ev of mgr) {
 *   if (ev.type !== "http") continue;
 *   if (ev.method === "POST") ev.reply(200, ev.body, { "content-type": ev.header("content-type") ?? "application/octet-stream" });
 *   else ev.reply(405, "use POST");
 * }
 * ```
 */
export class HttpRequestEvent {
  /** Discriminant of {@linkcode MgEvent}. */
  readonly type = "http" as const;
  /** The connection the request arrived on. */
  readonly conn: HttpConnection;
  #u8: Uint8Array;
  #dv: DataView;
  #off: number;
  #replied = false;
  #uri: string | undefined;
  #bodySink: BodySink | undefined;

  /**
   * @internal Made by the manager's decoder.
   * @param conn The connection.
   * @param u8 The batch bytes.
   * @param dv A view of the same bytes.
   * @param off The record's offset.
   */
  constructor(conn: HttpConnection, u8: Uint8Array, dv: DataView, off: number) {
    this.conn = conn;
    this.#u8 = u8;
    this.#dv = dv;
    this.#off = off;
  }

  #u32(field: number): number {
    return this.#dv.getUint32(this.#off + field, true);
  }

  /** The request method, e.g. `"GET"`. */
  get method(): string {
    const code = this.#dv.getUint16(this.#off + F_METHOD_CODE, true);
    if (code > 0 && code < METHODS.length) return METHODS[code];
    const start = this.#off + this.#u32(F_METHOD_OFF);
    return latin1(this.#u8, start, start + this.#u32(F_METHOD_LEN));
  }

  /** The request target as sent, e.g. `"/search?q=deno"`. */
  get uri(): string {
    if (this.#uri === undefined) {
      const start = this.#off + this.#u32(F_TARGET_OFF);
      this.#uri = latin1(this.#u8, start, start + this.#u32(F_TARGET_LEN));
    }
    return this.#uri;
  }

  /**
   * The target's path (before `?`), still percent-encoded. For an
   * absolute-form target (`GET http://host/p HTTP/1.1`, as proxies send) it
   * is the path part of that URL.
   */
  get path(): string {
    const t = this.#originForm();
    const q = t.indexOf("?");
    return q < 0 ? t : t.slice(0, q);
  }

  /** The target's query string without the `?` (`""` if none). */
  get query(): string {
    const t = this.#originForm();
    const q = t.indexOf("?");
    return q < 0 ? "" : t.slice(q + 1);
  }

  /**
   * The authority the request is for: the host of an absolute-form target
   * (RFC 9112 3.2.2 says the Host header is then ignored), else the Host
   * header (`undefined` for an HTTP/1.0 request without one).
   */
  get host(): string | undefined {
    const uri = this.uri;
    const m = ABSOLUTE.exec(uri);
    if (m) return uri.slice(m[0].length).split(/[/?#]/, 1)[0];
    return this.header("host");
  }

  /** The target without an absolute-form `scheme://authority` prefix. */
  #originForm(): string {
    const uri = this.uri;
    const m = ABSOLUTE.exec(uri);
    if (!m) return uri;
    const rest = uri.slice(m[0].length);
    const slash = rest.search(/[/?]/);
    if (slash < 0) return "/";
    return rest[slash] === "?" ? `/${rest.slice(slash)}` : rest.slice(slash);
  }

  /** The query parsed as `URLSearchParams`. */
  get searchParams(): URLSearchParams {
    return new URLSearchParams(this.query);
  }

  /** `"HTTP/1.0"` or `"HTTP/1.1"`. */
  get httpVersion(): "HTTP/1.0" | "HTTP/1.1" {
    return this.#u8[this.#off + F_FLAGS] & FLAG_HTTP10 ? "HTTP/1.0" : "HTTP/1.1";
  }

  /** Whether the connection stays open after this request's response. */
  get keepAlive(): boolean {
    return (this.#u8[this.#off + F_FLAGS] & FLAG_KEEP_ALIVE) !== 0;
  }

  /** True once this request was answered (by {@linkcode reply}). */
  get replied(): boolean {
    return this.#replied;
  }

  /** @internal Position of this request on its connection. */
  get seq(): number {
    return this.#u32(F_SEQ);
  }

  /**
   * The value of a header, matched case-insensitively; repeated headers are
   * joined with `", "`.
   *
   * @param name Header name.
   * @returns The value, or `undefined` when absent.
   */
  header(name: string): string | undefined {
    const lower = name.toLowerCase();
    const table = this.#off + this.#u32(F_HDR_OFF);
    const count = this.#u32(F_HDR_COUNT);
    let out: string | undefined;
    for (let i = 0; i < count; i++) {
      const e = table + i * 16;
      const no = this.#off + this.#dv.getUint32(e, true);
      if (!asciiEqualsLower(this.#u8, no, no + this.#dv.getUint32(e + 4, true), lower)) continue;
      const vo = this.#off + this.#dv.getUint32(e + 8, true);
      const v = latin1(this.#u8, vo, vo + this.#dv.getUint32(e + 12, true));
      out = out === undefined ? v : `${out}, ${v}`;
    }
    return out;
  }

  /** All header fields in arrival order, names as sent. */
  get rawHeaders(): [string, string][] {
    const table = this.#off + this.#u32(F_HDR_OFF);
    const count = this.#u32(F_HDR_COUNT);
    const out: [string, string][] = [];
    for (let i = 0; i < count; i++) {
      const e = table + i * 16;
      const no = this.#off + this.#dv.getUint32(e, true);
      const vo = this.#off + this.#dv.getUint32(e + 8, true);
      out.push([
        latin1(this.#u8, no, no + this.#dv.getUint32(e + 4, true)),
        latin1(this.#u8, vo, vo + this.#dv.getUint32(e + 12, true)),
      ]);
    }
    return out;
  }

  /**
   * The Basic or Bearer credentials of the `authorization` header, or
   * `undefined` when absent, malformed or of another scheme.
   */
  get credentials(): Credentials | undefined {
    return parseAuthorization(this.header("authorization"));
  }

  /** The headers as a `Headers` object (built on each read). */
  get headers(): Headers {
    const h = new Headers();
    for (const [k, v] of this.rawHeaders) h.append(k, v);
    return h;
  }

  /**
   * The request body (a view, no copy; empty when there is none).
   * @throws {TypeError} for a streamed body ({@linkcode bodyStreamed}):
   *   read it with {@linkcode bodyChunks}.
   */
  get body(): Uint8Array {
    if (this.#bodySink) {
      throw new TypeError("this request's body streams (streamBodiesOver): read it with bodyChunks()");
    }
    const start = this.#off + this.#u32(F_BODY_OFF);
    return this.#u8.subarray(start, start + this.#u32(F_BODY_LEN));
  }

  /**
   * True when the body was not buffered (it is larger than the manager's
   * `streamBodiesOver`): it arrives through {@linkcode bodyChunks}.
   */
  get bodyStreamed(): boolean {
    return (this.#u8[this.#off + F_FLAGS] & FLAG_STREAMED) !== 0;
  }

  /** @internal The manager attaches the receiver of a streamed body. */
  attachBody(sink: BodySink): void {
    this.#bodySink = sink;
  }

  /**
   * The body as it arrives, piece by piece; works for buffered bodies too
   * (one piece). Reading pauses the client while over 1 MiB waits
   * unconsumed. One reader only.
   *
   * @returns An async iterator of the body's pieces.
   * @throws {MgnetError} (`State`) when called a second time on a streamed body.
   * @example
   * ```ts ignore
   * let size = 0;
   * for await (const chunk of ev.bodyChunks()) size += chunk.length;
   * ev.reply(200, `${size} bytes`);
   * ```
   */
  bodyChunks(): AsyncIterableIterator<Uint8Array> {
    return this.#bodySink ? this.#bodySink.take() : wholeBody(this.body);
  }

  /**
   * The body as a `ReadableStream` (see {@linkcode bodyChunks}).
   * @returns The stream.
   */
  bodyStream(): ReadableStream<Uint8Array> {
    return streamFrom(this.bodyChunks());
  }

  /**
   * The body decoded as UTF-8.
   *
   * @returns The text.
   */
  text(): string {
    return utf8Decoder.decode(this.body);
  }

  /**
   * The body parsed as JSON.
   *
   * @returns The parsed value.
   * @throws {SyntaxError} if the body is not JSON.
   */
  json(): unknown {
    return JSON.parse(this.text());
  }

  /**
   * Answers this request. Responses go out in request order even when
   * handlers finish out of order. A body containing NUL bytes is sent as is.
   *
   * The response is dropped, and `false` returned, when the client went
   * away before the handler could know (its `close` event follows); after
   * that event, replying throws. A request is answered once.
   *
   * @param status Status code, 200–599.
   * @param body Response body (string as UTF-8, or bytes).
   * @param headers Response headers; `content-length`, `transfer-encoding`
   *   and `connection` are managed by mgnet (`connection: close` closes the
   *   connection after this response).
   * @returns `true` if queued, `false` if dropped because the client left.
   * @throws {RangeError} for a bad status, {TypeError} for a bad header,
   *   {ConnectionClosedError} after the connection's `close` event.
   * @example
   * ```ts ignore
   * ev.reply(200, JSON.stringify({ hello: "world" }), { "content-type": "application/json" });
   * ```
   */
  reply(status: number, body?: BodyInit, headers?: HeadersInit): boolean {
    return this.#answer(status, body, headers, false);
  }

  /**
   * Answers with header pairs a `Headers` object already validated.
   * @internal Used by `serve()`.
   */
  replyTrusted(status: number, body: string | Uint8Array | null, headers: [string, string][]): boolean {
    return this.#answer(status, body, headers, true);
  }

  #answer(status: number, body: BodyInit, headers: HeadersInit | undefined, trusted: boolean): boolean {
    if (this.#replied) throw new Error("this request was already answered");
    const sent = sendReply(this.conn, this.seq, status, body, headers, trusted);
    this.#replied = true;
    return sent;
  }

  /**
   * Starts a streamed response: sends the status and headers now; the body
   * follows through the returned writer (chunked for HTTP/1.1 clients).
   * Responses still leave in request order.
   *
   * With `contentLength` the body is sent unframed behind a
   * `content-length` header (HEAD requests get the header and no body):
   * writing more than that throws an `MgnetError` with code
   * `"Invalid"`, and ending short closes
   * the connection so the client cannot take the body for complete.
   *
   * @param status Status code, 200–599.
   * @param headers Response headers (framing headers are managed by mgnet).
   * @param contentLength The body's size in bytes, when known.
   * @returns The body writer.
   * @throws {ConnectionClosedError} after the connection's `close` event.
   * @example
   * ```ts ignore
   * const out = ev.respond(200, { "content-type": "text/plain" });
   * await out.write("hello ");
   * await out.write("world");
   * out.end();
   * ```
   */
  respond(status: number, headers?: HeadersInit, contentLength?: number): ResponseWriter {
    if (this.#replied) throw new Error("this request was already answered");
    checkStatus(status);
    if (contentLength !== undefined && !(Number.isSafeInteger(contentLength) && contentLength >= 0)) {
      throw new RangeError(`contentLength must be a non-negative integer, got ${contentLength}`);
    }
    this.conn.assertOpen();
    const head = encodeHead(headers);
    const host = this.conn.host;
    const rc = host.sym.mgnet_http_start(
      host.handle,
      this.conn.slot,
      this.conn.id,
      this.seq,
      status,
      head.flags,
      head.bytes,
      head.bytes.length,
      contentLength ?? -1,
    );
    this.#replied = true;
    const writer = new ResponseWriter(this.conn, this.seq);
    if (rc === -2) {
      writer.abandon(); // the client left: writes throw ConnectionClosedError
    } else {
      if (rc < 0) host.check(rc);
      host.queued();
    }
    return writer;
  }
}
