/**
 * HTTP request events, decoded lazily from the native batch: nothing is
 * parsed into strings or objects until it is read.
 *
 * @module
 */

import { asciiEqualsLower, latin1, streamFrom, utf8Decoder } from "../core/bytes.ts";
import { connInternals } from "../core/connection.ts";
import { MgnetError } from "../core/errors.ts";
import { Status } from "../core/abi.ts";
import { METHODS, Req, ReqFlag } from "./abi.ts";
import { type Credentials, parseAuthorization } from "./auth.ts";
import { checkStatus, encodeHead, type ReplyBody, type ReplyHeaders } from "./headers.ts";
import { type BodySink, wholeBody } from "./request_body.ts";
import { abandonWriter, type HttpConnection, ResponseWriter, sendReply } from "./response.ts";

/** Private parts of a request event, for code inside `src/` (not re-exported by `mod.ts`). */
export interface RequestInternals {
  /** The request's position on its connection. */
  seq(ev: HttpRequestEvent): number;
  /** Marks the request answered by another protocol taking the connection (an upgrade). */
  markReplied(ev: HttpRequestEvent): void;
  /** Attaches the receiver of a streamed body. */
  attachBody(ev: HttpRequestEvent, sink: BodySink): void;
  /** Answers with header pairs a `Headers` object already validated (`serve()`). */
  replyTrusted(
    ev: HttpRequestEvent,
    status: number,
    body: string | Uint8Array | null,
    headers: [string, string][],
  ): boolean;
}

/** Accessors of private request state. */
export let requestInternals: RequestInternals;

/** `scheme://` at the start of an absolute-form request target. */
const ABSOLUTE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

/**
 * A complete HTTP request. Fields are decoded from the native batch only
 * when read. The event, its `body` view and all strings stay valid for as
 * long as you hold them (the batch memory is not reused).
 *
 * @example A JSON echo
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const { port } = mgr.listen("http://127.0.0.1:0");
 * const body = JSON.stringify({ hello: "world" });
 * const init = { method: "POST", body, headers: { "content-type": "application/json" } };
 * const res = fetch(`http://127.0.0.1:${port}/echo?v=1`, init).then((r) => r.json());
 * for await (const ev of mgr) {
 *   if (ev.type !== "http") continue;
 *   assert.deepEqual([ev.method, ev.path, ev.query], ["POST", "/echo", "v=1"]);
 *   ev.reply(200, ev.body, { "content-type": ev.header("content-type") ?? "text/plain" });
 *   break; // closing the manager still sends the reply
 * }
 * assert.deepEqual(await res, { hello: "world" });
 * ```
 */
export class HttpRequestEvent {
  /** Discriminant of the manager's event union. */
  readonly type = "http" as const;
  /** The connection the request arrived on. */
  readonly conn: HttpConnection;
  #u8: Uint8Array;
  #dv: DataView;
  #off: number;
  #replied = false;
  #uri: string | undefined;
  #bodySink: BodySink | undefined;

  static {
    requestInternals = {
      seq: (ev) => ev.#seq(),
      markReplied: (ev) => void (ev.#replied = true),
      attachBody: (ev, sink) => void (ev.#bodySink = sink),
      replyTrusted: (ev, status, body, headers) => ev.#answer(status, body, headers, true),
    };
  }

  /**
   * Made by the loop's decoder; user code receives request events and never
   * constructs one.
   *
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
    const code = this.#dv.getUint16(this.#off + Req.MethodCode, true);
    if (code > 0 && code < METHODS.length) return METHODS[code];
    const start = this.#off + this.#u32(Req.MethodOff);
    return latin1(this.#u8, start, start + this.#u32(Req.MethodLen));
  }

  /** The request target as sent, e.g. `"/search?q=deno"`. */
  get uri(): string {
    if (this.#uri === undefined) {
      const start = this.#off + this.#u32(Req.TargetOff);
      this.#uri = latin1(this.#u8, start, start + this.#u32(Req.TargetLen));
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
    return this.#u8[this.#off + Req.Flags] & ReqFlag.Http10 ? "HTTP/1.0" : "HTTP/1.1";
  }

  /** Whether the connection stays open after this request's response. */
  get keepAlive(): boolean {
    return (this.#u8[this.#off + Req.Flags] & ReqFlag.KeepAlive) !== 0;
  }

  /** True once this request was answered (by {@linkcode reply}). */
  get replied(): boolean {
    return this.#replied;
  }

  /** Position of this request on its connection. */
  #seq(): number {
    return this.#u32(Req.Seq);
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
    const table = this.#off + this.#u32(Req.HeadersOff);
    const count = this.#u32(Req.HeadersCount);
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
    const table = this.#off + this.#u32(Req.HeadersOff);
    const count = this.#u32(Req.HeadersCount);
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
    const start = this.#off + this.#u32(Req.BodyOff);
    return this.#u8.subarray(start, start + this.#u32(Req.BodyLen));
  }

  /**
   * True when the body was not buffered (it is larger than the manager's
   * `streamBodiesOver`): it arrives through {@linkcode bodyChunks}.
   */
  get bodyStreamed(): boolean {
    return (this.#u8[this.#off + Req.Flags] & ReqFlag.Streamed) !== 0;
  }

  /**
   * The body as it arrives, piece by piece; works for buffered bodies too
   * (one piece). Reading pauses the client while over 1 MiB waits
   * unconsumed. One reader only.
   *
   * @returns An async iterator of the body's pieces.
   * @throws {MgnetError} (`State`) when called a second time on a streamed body.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager } from "../../mod.ts";
   *
   * await using mgr = new Manager({ streamBodiesOver: 64 * 1024 });
   * const { port } = mgr.listen("http://127.0.0.1:0", {
   *   async onRequest(ev) {
   *     let size = 0;
   *     for await (const chunk of ev.bodyChunks()) size += chunk.length;
   *     ev.reply(200, `${size} bytes, streamed: ${ev.bodyStreamed}`);
   *   },
   * });
   * const res = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body: new Uint8Array(1 << 20) });
   * assert.equal(await res.text(), "1048576 bytes, streamed: true");
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
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager } from "../../mod.ts";
   *
   * await using mgr = new Manager();
   * const { port } = mgr.listen("http://127.0.0.1:0", {
   *   onRequest(ev) {
   *     ev.reply(200, JSON.stringify({ hello: "world" }), { "content-type": "application/json" });
   *   },
   * });
   * const res = await fetch(`http://127.0.0.1:${port}/`);
   * assert.equal(res.headers.get("content-type"), "application/json");
   * assert.deepEqual(await res.json(), { hello: "world" });
   * ```
   */
  reply(status: number, body?: ReplyBody, headers?: ReplyHeaders): boolean {
    return this.#answer(status, body, headers, false);
  }

  #answer(status: number, body: ReplyBody, headers: ReplyHeaders | undefined, trusted: boolean): boolean {
    if (this.#replied) throw new MgnetError("this request was already answered", "State");
    const sent = sendReply(this.conn, this.#seq(), status, body, headers, trusted);
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
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager } from "../../mod.ts";
   *
   * await using mgr = new Manager();
   * const { port } = mgr.listen("http://127.0.0.1:0", {
   *   async onRequest(ev) {
   *     const out = ev.respond(200, { "content-type": "text/plain" });
   *     await out.write("hello ");
   *     await out.write("world");
   *     out.end();
   *   },
   * });
   * const res = await fetch(`http://127.0.0.1:${port}/`);
   * assert.equal(res.headers.get("transfer-encoding"), "chunked");
   * assert.equal(await res.text(), "hello world");
   * ```
   */
  respond(status: number, headers?: ReplyHeaders, contentLength?: number): ResponseWriter {
    if (this.#replied) throw new MgnetError("this request was already answered", "State");
    checkStatus(status);
    if (contentLength !== undefined && !(Number.isSafeInteger(contentLength) && contentLength >= 0)) {
      throw new RangeError(`contentLength must be a non-negative integer, got ${contentLength}`);
    }
    connInternals.assertOpen(this.conn);
    const head = encodeHead(headers);
    const host = connInternals.host(this.conn);
    const seq = this.#seq();
    const rc = host.sym.mgnet_http_start(
      host.handle,
      connInternals.slot(this.conn),
      this.conn.id,
      seq,
      status,
      head.flags,
      head.bytes,
      head.bytes.length,
      contentLength ?? -1,
    );
    this.#replied = true;
    const writer = new ResponseWriter(this.conn, seq);
    if (rc === Status.Closed) {
      abandonWriter(writer); // the client left: writes throw ConnectionClosedError
    } else {
      if (rc < 0) host.check(rc);
      host.queued();
    }
    return writer;
  }
}
