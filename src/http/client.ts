/**
 * HTTP/1.1 client over Mongoose connections: `Manager.request`
 * for one request, `Manager.connect` for a keep-alive connection
 * that carries several in turn. `https:` uses Mongoose's built-in TLS
 * (TLS 1.3), verifying the server against the `ca` given.
 *
 * Names are resolved with the system resolver (`/etc/hosts`, then DNS)
 * before Mongoose connects. Responses arrive as a {@linkcode ClientResponse}
 * as soon as the head is in; its body streams. Failures reject with a
 * {@linkcode ClientError} whose `kind` says what happened.
 *
 * @module
 */

import { lookup } from "node:dns/promises";
import { collectBytes, indexOfBytes, utf8Decoder, utf8Encoder } from "../core/bytes.ts";
import type { ClientSink, ClientTls, Connection, NetAddr } from "../core/connection.ts";
import { ConnectionClosedError, MgnetError } from "../core/errors.ts";
import type { Loop } from "../core/loop.ts";
import { encodeClientTls } from "../core/tls.ts";
import { headerEntries, type ReplyHeaders } from "./headers.ts";

/** Private parts of a client connection, for code inside `src/` (not re-exported by `mod.ts`). */
export interface ClientInternals {
  /** Connects through `loop`; resolves once open (TLS handshake done). */
  open(
    c: HttpClientConnection,
    loop: Loop,
    addr: string,
    tls: ClientTls | undefined,
    ms: number,
  ): Promise<void>;
  /** Marks the connection idle (it then does not keep the loop running) or busy again. */
  setIdle(c: HttpClientConnection, idle: boolean): void;
  /** Sets what runs whenever the connection can take another request. */
  onIdle(c: HttpClientConnection, f: () => void): void;
}

/** Accessors of private client connection state. */
export let clientInternals: ClientInternals;

/**
 * A private request option (for mgnet's `fetch`, not re-exported): when set
 * to true, an abort fails the request and its body with the signal's
 * `reason` itself, as the Fetch standard says, instead of a `ClientError`.
 */
export const abortWithReason: unique symbol = Symbol("mgnet.abortWithReason");

/** What went wrong with a client request. */
export type ClientErrorKind =
  | "dns"
  | "refused"
  | "connect"
  | "tls"
  | "timeout"
  | "reset"
  | "protocol"
  | "aborted";

/**
 * A failed client request; `kind` tells DNS failures, refused connections,
 * TLS failures, timeouts, resets (the connection ended before the response
 * did), malformed responses and aborts apart.
 *
 * @example A port nobody listens on
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 * import { ClientError } from "./client.ts";
 *
 * const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * free.close(); // its port is free again: connecting to it is refused
 * await using mgr = new Manager();
 * await assert.rejects(
 *   mgr.request(`http://127.0.0.1:${free.addr.port}/`),
 *   (e) => e instanceof ClientError && e.kind === "refused" && e.code === "Io",
 * );
 * ```
 */
export class ClientError extends MgnetError {
  /** What happened. */
  readonly kind: ClientErrorKind;
  /**
   * Creates the error.
   *
   * @param kind What happened.
   * @param message Details.
   * @param options Standard error options (`cause`).
   */
  constructor(kind: ClientErrorKind, message: string, options?: ErrorOptions) {
    super(message, "Io", options);
    this.name = "ClientError";
    this.kind = kind;
  }
}

/** Options of `Manager.connect`. */
export interface ClientConnectOptions {
  /** Most ms to connect (TLS handshake included); default 10 000. */
  connectTimeout?: number;
  /**
   * Trusted CA certificates for `https:` (PEM text or DER bytes); default:
   * the system bundle (`/etc/ssl/certs/ca-certificates.crt`).
   */
  ca?: string | Uint8Array;
  /**
   * `https:` without verifying the certificate or name (testing only; the
   * name is still sent as SNI).
   */
  insecure?: boolean;
  /** Client certificate chain (PEM) for servers that ask for one (mutual TLS), with `key`. */
  cert?: string | Uint8Array;
  /** Private key (PEM) of `cert`. */
  key?: string | Uint8Array;
}

/** One request. */
export interface ClientRequestInit {
  /** Method (default `GET`). */
  method?: string;
  /** Request headers; `host` and `content-length` are set by mgnet. */
  headers?: ReplyHeaders;
  /**
   * Body: a string (sent as UTF-8) or bytes, sent with `content-length`; or
   * a `ReadableStream`/async iterable of bytes, sent chunked as it comes,
   * waiting while more than 256 KiB is unsent.
   */
  body?: string | Uint8Array | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> | null;
  /** Most ms from sending to the response head (default 30 000; `Infinity`: no limit). */
  timeout?: number;
  /** Aborts the request (rejects with kind `aborted`, closes the connection). */
  signal?: AbortSignal;
}

/** Options of `Manager.request`: connection and request together. */
export interface ClientRequestOptions extends ClientRequestInit, ClientConnectOptions {
  /**
   * Reuse an idle connection to the same origin and keep this one open for
   * later requests (default `true`). Idle connections wait at most 4 s,
   * 256 per origin, and never keep the process alive. `false` (or a
   * `connection: close` header, or a custom `ca`) sends the request on a
   * fresh connection, closed once the response has arrived.
   */
  keepAlive?: boolean;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\0\r\n]/;
const MAX_HEAD = 64 * 1024;
const CRLF2 = utf8Encoder.encode("\r\n\r\n");
/** Body bytes a response stream buffers before it stops acknowledging reads. */
const BODY_HWM = 256 * 1024;
/** A streamed request body waits while more than this is unsent... */
const UPLOAD_HIGH = 256 * 1024;
/** ...until it is down to this. */
const UPLOAD_LOW = 64 * 1024;
const CRLF = CRLF2.subarray(0, 2);
const LAST_CHUNK = utf8Encoder.encode("0\r\n\r\n");

/**
 * A response: status and headers at once, the body as a stream (or read
 * whole with {@linkcode bytes}, {@linkcode text}, {@linkcode json}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const { port } = mgr.listen("http://127.0.0.1:0", {
 *   onRequest: (ev) => void ev.reply(200, '{"hello":"world"}', { "content-type": "application/json" }),
 * });
 * const res = await mgr.request(`http://127.0.0.1:${port}/api/hello`);
 * assert.equal(res.status, 200);
 * assert.equal(res.headers.get("content-type"), "application/json");
 * assert.deepEqual(await res.json(), { hello: "world" });
 * ```
 */
export class ClientResponse {
  /** Status code. */
  readonly status: number;
  /** Reason phrase as sent. */
  readonly statusText: string;
  /** `HTTP/1.1` or `HTTP/1.0`. */
  readonly httpVersion: string;
  /** Response headers (repeated fields joined with `, `). */
  readonly headers: Headers;
  /** The body, chunk by chunk as it arrives. */
  readonly body: ReadableStream<Uint8Array>;

  /**
   * Made by the client when a response head arrives; not constructed by users.
   *
   * @param status Status code.
   * @param statusText Reason phrase.
   * @param httpVersion Protocol version.
   * @param headers Headers.
   * @param body The body stream.
   */
  constructor(
    status: number,
    statusText: string,
    httpVersion: string,
    headers: Headers,
    body: ReadableStream<Uint8Array>,
  ) {
    this.status = status;
    this.statusText = statusText;
    this.httpVersion = httpVersion;
    this.headers = headers;
    this.body = body;
  }

  /** True for 2xx statuses. */
  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  /**
   * Reads the whole body.
   * @returns The bytes.
   * @throws {ClientError} if the connection fails before the body ends.
   */
  bytes(): Promise<Uint8Array> {
    return collectBytes(this.body);
  }

  /**
   * Reads the whole body as UTF-8 text.
   * @returns The text.
   */
  async text(): Promise<string> {
    return utf8Decoder.decode(await this.bytes());
  }

  /**
   * Reads the whole body as JSON.
   * @returns The parsed value.
   */
  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }
}

interface Pending {
  method: string;
  /** Its response head arrived (the promise is resolved). */
  responded: boolean;
  resolve(res: ClientResponse): void;
  reject(e: unknown): void;
  timer?: ReturnType<typeof setTimeout>;
  onAbort?: () => void;
  signal?: AbortSignal;
}

type Framing = { kind: "none" } | { kind: "length"; left: number } | { kind: "chunked" } | { kind: "close" };

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * A keep-alive connection to one origin. Requests run one after the other
 * (each waits until the previous response's body has arrived); the
 * connection closes when the server says so, on an error, or on
 * {@linkcode close}.
 *
 * @example Two requests on one connection
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const { port } = mgr.listen("http://127.0.0.1:0", { onRequest: (ev) => void ev.reply(200, ev.path) });
 * await using conn = await mgr.connect(`http://127.0.0.1:${port}`);
 * assert.equal(await (await conn.request("/a")).text(), "/a");
 * assert.equal(await (await conn.request("/b")).text(), "/b");
 * assert.equal(mgr.stats().accepted, 1); // both went over one connection
 * ```
 */
export class HttpClientConnection implements AsyncDisposable {
  /** `scheme://host:port` of the server. */
  readonly origin: string;
  #loop: Loop | undefined;
  #conn!: Connection;
  #hostHeader: string;
  #buf: Uint8Array = new Uint8Array(0);
  #queue: Pending[] = [];
  #framing: Framing | undefined;
  #body: ReadableStreamDefaultController<Uint8Array> | undefined;
  #keepAlive = true;
  #closed = false;
  #lastError: string | undefined;
  #opened = Promise.withResolvers<void>();
  #chain: Promise<unknown> = Promise.resolve();
  #remoteAddr: NetAddr | undefined;
  /** Bytes received, and bytes acknowledged to the core as consumed. */
  #received = 0;
  #acked = 0;

  static {
    clientInternals = {
      open: (c, loop, addr, tls, ms) => {
        c.#loop = loop;
        return c.#open(addr, tls, ms);
      },
      setIdle: (c, idle) => {
        if (!c.#closed) c.#loop!.setClientIdle(c.#conn, idle);
      },
      onIdle: (c, f) => void (c.#onIdle = f),
    };
  }

  /**
   * Made by `Manager.connect`; not constructed by users (one made by hand is
   * never connected).
   *
   * @param origin The origin.
   * @param hostHeader The `host` header value.
   */
  constructor(origin: string, hostHeader: string) {
    this.origin = origin;
    this.#hostHeader = hostHeader;
  }

  /** The server's address once connected. */
  get remoteAddr(): NetAddr | undefined {
    return this.#remoteAddr;
  }

  /** True once the connection is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Connects; resolves once open (TLS handshake done). */
  async #open(
    addr: string,
    tls: ClientTls | undefined,
    ms: number,
  ) {
    const sink: ClientSink = {
      onOpen: (remote) => {
        this.#remoteAddr = remote;
        this.#opened.resolve();
      },
      onData: (bytes) => this.#onData(bytes),
      onError: (message) => this.#lastError = message,
      onClose: () => this.#onClose(),
    };
    this.#conn = this.#loop!.openClient(addr, tls, sink);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        this.#opened.promise,
        new Promise<never>((_, reject) =>
          timer = setTimeout(
            () => reject(new ClientError("timeout", `connecting to ${this.origin} timed out`)),
            ms,
          )
        ),
      ]);
    } catch (e) {
      this.close();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Sends a request and resolves with the response once its head arrives.
   *
   * @param target A path (`/x?y=1`) or a full URL of this origin.
   * @param init Method, headers, body, timeout, signal.
   * @returns The response.
   * @throws {ClientError} on failure; {TypeError} for a bad header or target.
   */
  request(target: string, init: ClientRequestInit = {}): Promise<ClientResponse> {
    let encoded: { bytes: Uint8Array; stream?: AsyncIterable<Uint8Array> };
    try {
      encoded = this.#encode(target, init);
    } catch (e) {
      return Promise.reject(e);
    }
    const run = this.#chain.then(() => this.#send(encoded.bytes, encoded.stream, init));
    // The next request waits for this response's body, not just its head.
    this.#chain = run.then(() => this.#bodyDone).catch(() => {});
    return run;
  }

  #bodyDone: Promise<void> = Promise.resolve();

  /**
   * Called whenever the connection has finished every request and can take
   * another (the pool parks it then).
   */
  #onIdle: (() => void) | undefined;

  #encode(
    target: string,
    init: ClientRequestInit,
  ): { bytes: Uint8Array; stream?: AsyncIterable<Uint8Array> } {
    const method = init.method ?? "GET";
    if (!TOKEN.test(method)) throw new TypeError(`invalid method ${JSON.stringify(method)}`);
    let path = target;
    if (!target.startsWith("/")) {
      const url = new URL(target);
      if (url.origin !== this.origin) throw new TypeError(`${target} is not on ${this.origin}`);
      path = `${url.pathname}${url.search}`;
    }
    if (/[\s\0]/.test(path)) throw new TypeError("the request target contains whitespace or NUL");
    let text = `${method} ${path} HTTP/1.1\r\nhost: ${this.#hostHeader}\r\n`;
    for (const [k, v] of headerEntries(init.headers ?? {})) {
      const name = String(k);
      const value = String(v).trim();
      if (!TOKEN.test(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
      if (BAD_VALUE.test(value)) throw new TypeError(`header ${name} contains CR, LF or NUL`);
      const lower = name.toLowerCase();
      if (lower === "host" || lower === "content-length" || lower === "transfer-encoding") continue;
      text += `${name}: ${value}\r\n`;
    }
    const raw = init.body ?? undefined;
    if (raw !== undefined && typeof raw !== "string" && !(raw instanceof Uint8Array)) {
      if (!(Symbol.asyncIterator in raw)) throw new TypeError("unsupported request body type");
      text += "transfer-encoding: chunked\r\n\r\n";
      return { bytes: utf8Encoder.encode(text), stream: raw };
    }
    const body = typeof raw === "string" ? utf8Encoder.encode(raw) : raw;
    if (body !== undefined || /^(POST|PUT|PATCH)$/.test(method)) {
      text += `content-length: ${body?.length ?? 0}\r\n`;
    }
    text += "\r\n";
    return { bytes: body === undefined ? utf8Encoder.encode(text) : concat(utf8Encoder.encode(text), body) };
  }

  /** Sends a streamed request body chunked, with the connection's backpressure. */
  async #upload(body: AsyncIterable<Uint8Array>, fail: (e: unknown) => void): Promise<void> {
    try {
      for await (const chunk of body) {
        if (this.#closed) return;
        if (!(chunk instanceof Uint8Array)) throw new TypeError("request body chunks must be Uint8Array");
        if (chunk.length === 0) continue;
        this.#loop!.sendClient(this.#conn, utf8Encoder.encode(`${chunk.length.toString(16)}\r\n`));
        this.#loop!.sendClient(this.#conn, chunk);
        if (this.#loop!.sendClient(this.#conn, CRLF) > UPLOAD_HIGH) {
          await this.#loop!.clientDrained(this.#conn, UPLOAD_LOW);
        }
      }
      if (!this.#closed) this.#loop!.sendClient(this.#conn, LAST_CHUNK);
    } catch (e) {
      if (this.#closed) return; // the connection ended; the response (or its failure) tells why
      fail(new ClientError("aborted", `the request body failed: ${e}`, { cause: e }));
    }
  }

  #send(
    bytes: Uint8Array,
    stream: AsyncIterable<Uint8Array> | undefined,
    init: ClientRequestInit,
  ): Promise<ClientResponse> {
    if (this.#closed) {
      return Promise.reject(new ClientError("reset", `the connection to ${this.origin} is closed`));
    }
    if (init.signal?.aborted) return Promise.reject(new ClientError("aborted", "the request was aborted"));
    const { promise, resolve, reject } = Promise.withResolvers<ClientResponse>();
    const p: Pending = {
      method: init.method ?? "GET",
      responded: false,
      resolve,
      reject,
      signal: init.signal,
    };
    const fail = (e: unknown) => {
      const i = this.#queue.indexOf(p);
      if (i < 0) return; // already complete
      if (!p.responded) {
        this.#queue.splice(i, 1);
        this.#release(p);
        reject(e);
      } else {
        this.#body?.error(e); // the body was streaming
      }
      this.close();
    };
    const ms = init.timeout ?? 30_000;
    if (ms !== Infinity) {
      p.timer = setTimeout(
        () => fail(new ClientError("timeout", `no response from ${this.origin} in ${ms} ms`)),
        ms,
      );
    }
    if (init.signal) {
      const asReason = (init as { [abortWithReason]?: boolean })[abortWithReason] === true;
      p.onAbort = () =>
        fail(
          asReason
            ? init.signal!.reason
            : new ClientError("aborted", "the request was aborted", { cause: init.signal!.reason }),
        );
      init.signal.addEventListener("abort", p.onAbort, { once: true });
    }
    this.#queue.push(p);
    try {
      this.#loop!.sendClient(this.#conn, bytes);
    } catch (e) {
      // Closed natively before JS saw the close (a reused idle connection).
      if (!(e instanceof ConnectionClosedError)) throw e;
      fail(new ClientError("reset", `the connection to ${this.origin} is closed`, { cause: e }));
      return promise;
    }
    if (stream) void this.#upload(stream, fail);
    return promise;
  }

  #release(p: Pending): void {
    clearTimeout(p.timer);
    if (p.onAbort) p.signal?.removeEventListener("abort", p.onAbort);
  }

  #protocolError(message: string): void {
    const e = new ClientError("protocol", message);
    const p = this.#queue[0];
    if (this.#framing === undefined && p) {
      this.#release(p);
      p.reject(e);
      this.#queue.shift();
    } else this.#body?.error(e);
    this.close();
  }

  #onData(bytes: Uint8Array): void {
    this.#received += bytes.length;
    this.#buf = concat(this.#buf, bytes);
    try {
      this.#process();
    } catch (e) {
      this.#protocolError(e instanceof Error ? e.message : String(e));
    }
    this.#syncAck();
  }

  /**
   * Acknowledges what left mgnet's hands: everything received except the
   * unparsed rest and the body bytes still queued in the response stream.
   * The core stops reading the socket while over 1 MiB is unacknowledged,
   * so a consumer that does not read holds the server back through TCP.
   */
  #syncAck(): void {
    const queued = this.#body ? Math.max(0, BODY_HWM - (this.#body.desiredSize ?? BODY_HWM)) : 0;
    const consumed = this.#received - this.#buf.length - queued;
    if (consumed > this.#acked) {
      this.#loop!.ackClient(this.#conn, consumed - this.#acked);
      this.#acked = consumed;
    }
  }

  #process(): void {
    for (;;) {
      if (this.#framing === undefined) {
        if (this.#queue.length === 0) {
          if (this.#buf.length > 0) throw new Error("the server sent bytes nobody asked for");
          return;
        }
        const end = indexOfBytes(this.#buf, CRLF2);
        if (end < 0) {
          if (this.#buf.length > MAX_HEAD) throw new Error(`a response head over ${MAX_HEAD} bytes`);
          return;
        }
        const headText = utf8Decoder.decode(this.#buf.subarray(0, end));
        this.#buf = this.#buf.subarray(end + 4);
        if (!this.#head(headText)) continue; // an interim 1xx response
      }
      const f = this.#framing!;
      if (f.kind === "none") {
        this.#finish();
        continue;
      }
      if (f.kind === "close") {
        if (this.#buf.length > 0) this.#body!.enqueue(this.#buf);
        this.#buf = new Uint8Array(0);
        return;
      }
      if (f.kind === "length") {
        const n = Math.min(f.left, this.#buf.length);
        if (n > 0) this.#body!.enqueue(this.#buf.subarray(0, n));
        this.#buf = this.#buf.subarray(n);
        f.left -= n;
        if (f.left > 0) return;
        this.#finish();
        continue;
      }
      // chunked
      const line = indexOfBytes(this.#buf, CRLF2.subarray(0, 2));
      if (line < 0) {
        if (this.#buf.length > 4096) throw new Error("a chunk size line over 4096 bytes");
        return;
      }
      const sizeText = utf8Decoder.decode(this.#buf.subarray(0, line)).split(";")[0].trim();
      if (!/^[0-9A-Fa-f]{1,12}$/.test(sizeText)) {
        throw new Error(`invalid chunk size ${JSON.stringify(sizeText)}`);
      }
      const size = parseInt(sizeText, 16);
      if (size === 0) {
        // Trailer fields until an empty line.
        const rest = this.#buf.subarray(line + 2);
        const empty = rest[0] === 13 && rest[1] === 10 ? 0 : indexOfBytes(rest, CRLF2);
        if (empty < 0) return;
        this.#buf = rest.subarray(empty === 0 ? 2 : empty + 4);
        this.#finish();
        continue;
      }
      if (this.#buf.length < line + 2 + size + 2) return;
      const data = this.#buf.subarray(line + 2, line + 2 + size);
      if (this.#buf[line + 2 + size] !== 13 || this.#buf[line + 3 + size] !== 10) {
        throw new Error("a chunk not followed by CRLF");
      }
      this.#body!.enqueue(data);
      this.#buf = this.#buf.subarray(line + 4 + size);
    }
  }

  /** Parses a response head; false for an interim (1xx) response to skip. */
  #head(text: string): boolean {
    const lines = text.split("\r\n");
    const m = /^(HTTP\/1\.[01]) (\d{3})(?: (.*))?$/.exec(lines[0]);
    if (!m) throw new Error(`invalid status line ${JSON.stringify(lines[0].slice(0, 80))}`);
    const status = Number(m[2]);
    const headers = new Headers();
    for (const l of lines.slice(1)) {
      const c = l.indexOf(":");
      if (c <= 0 || !TOKEN.test(l.slice(0, c))) {
        throw new Error(`invalid header line ${JSON.stringify(l.slice(0, 80))}`);
      }
      headers.append(l.slice(0, c), l.slice(c + 1).trim());
    }
    if (status >= 100 && status < 200 && status !== 101) return false;
    const p = this.#queue[0];
    const connection = headers.get("connection")?.toLowerCase() ?? "";
    this.#keepAlive = m[1] === "HTTP/1.1" ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
    const te = headers.get("transfer-encoding");
    const cl = headers.get("content-length");
    if (p.method === "HEAD" || status === 204 || status === 304 || status === 101) {
      this.#framing = { kind: "none" };
    } else if (te !== null) {
      if (!/(^|,)\s*chunked\s*$/i.test(te)) {
        this.#framing = { kind: "close" };
        this.#keepAlive = false;
      } else this.#framing = { kind: "chunked" };
    } else if (cl !== null) {
      const values = new Set(cl.split(",").map((v) => v.trim()));
      const [v] = values;
      if (values.size !== 1 || !/^\d{1,15}$/.test(v)) {
        throw new Error(`invalid content-length ${JSON.stringify(cl)}`);
      }
      this.#framing = { kind: "length", left: Number(v) };
    } else {
      this.#framing = { kind: "close" };
      this.#keepAlive = false;
    }
    const done = Promise.withResolvers<void>();
    this.#bodyDone = done.promise;
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#body = controller;
      },
      pull: () => this.#syncAck(),
      cancel: () => {
        // The reader gave up: the rest of the body cannot be skipped cheaply.
        this.#body = undefined;
        this.close();
      },
    }, new ByteLengthQueuingStrategy({ highWaterMark: BODY_HWM }));
    clearTimeout(p.timer);
    p.responded = true;
    p.resolve(new ClientResponse(status, m[3] ?? "", m[1], headers, body));
    this.#onBodyEnd = () => done.resolve();
    return true;
  }

  #onBodyEnd: (() => void) | undefined;

  /** The current response's body is complete. */
  #finish(): void {
    const p = this.#queue.shift();
    if (p) this.#release(p);
    try {
      this.#body?.close();
    } catch { /* cancelled by the reader */ }
    this.#body = undefined;
    this.#framing = undefined;
    this.#onBodyEnd?.();
    this.#onBodyEnd = undefined;
    if (!this.#keepAlive) this.close();
    else if (this.#queue.length === 0 && !this.#closed) this.#onIdle?.();
  }

  #onClose(): void {
    this.#closed = true;
    this.#opened.reject(this.#connectError());
    this.#opened.promise.catch(() => {});
    if (this.#framing?.kind === "close") {
      this.#finish();
    } else if (this.#framing !== undefined) {
      this.#body?.error(
        new ClientError("reset", "the connection closed before the response body was complete"),
      );
      this.#body = undefined;
      this.#onBodyEnd?.();
      const p = this.#queue.shift();
      if (p) this.#release(p);
    }
    for (const p of this.#queue.splice(0)) {
      this.#release(p);
      p.reject(
        new ClientError("reset", `the connection to ${this.origin} closed before the response arrived`, {
          cause: this.#lastError,
        }),
      );
    }
  }

  #connectError(): ClientError {
    const msg = this.#lastError ?? "the connection closed";
    if (/refused/i.test(msg)) return new ClientError("refused", `${this.origin}: ${msg}`);
    if (this.origin.startsWith("https:") && !/connect failed/.test(msg)) {
      return new ClientError("tls", `${this.origin}: ${msg}`);
    }
    return new ClientError("connect", `${this.origin}: ${msg}`);
  }

  /** Closes the connection (a response in progress fails with kind `reset`). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#conn.closed) this.#conn.close();
  }

  /** Same as {@linkcode close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

/** Where Linux distributions keep the trusted CA bundle. */
const CA_BUNDLES = [
  "/etc/ssl/certs/ca-certificates.crt",
  "/etc/pki/tls/certs/ca-bundle.crt",
  "/etc/ssl/cert.pem",
];
let systemBundle: Uint8Array | undefined;

/**
 * The system's trusted CAs, used for `https:` when no `ca` is given
 * (Mongoose verifies nothing without one).
 */
export function systemCa(): Uint8Array {
  if (systemBundle) return systemBundle;
  for (const path of CA_BUNDLES) {
    try {
      return systemBundle = Deno.readFileSync(path);
    } catch {
      // try the next location
    }
  }
  throw new ClientError(
    "tls",
    `no system CA bundle (${CA_BUNDLES.join(", ")}): pass \`ca\` or \`insecure: true\``,
  );
}

/**
 * Resolves a host name (IPv6 literals without brackets) to a Mongoose
 * address (`tcp://IP:port`).
 *
 * @param bare The host.
 * @param port The port.
 * @returns The address.
 * @throws {ClientError} (kind `dns`) if the name does not resolve.
 */
export async function resolveAddr(bare: string, port: number): Promise<string> {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(bare)) return `tcp://${bare}:${port}`;
  if (bare.includes(":")) return `tcp://[${bare}]:${port}`;
  let found: { address: string; family: number };
  try {
    found = await lookup(bare);
  } catch (e) {
    throw new ClientError("dns", `cannot resolve ${bare}: ${(e as { code?: string }).code ?? e}`, {
      cause: e,
    });
  }
  return found.family === 6 ? `tcp://[${found.address}]:${port}` : `tcp://${found.address}:${port}`;
}

/**
 * Opens a client connection: the work behind `Manager.connect`.
 *
 * @param loop The manager's loop.
 * @param url The server.
 * @param options Connect timeout and TLS trust.
 * @returns The connection, once connected.
 */
export async function openHttpConnection(
  loop: Loop,
  url: string | URL,
  options: ClientConnectOptions = {},
): Promise<HttpClientConnection> {
  const u = new URL(url);
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new TypeError(`unsupported URL scheme ${u.protocol} (http: or https:)`);
  }
  const tls = u.protocol === "https:";
  const port = Number(u.port || (tls ? 443 : 80));
  // The host without an IPv6 literal's brackets.
  const name = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
  const addr = await resolveAddr(name, port);
  const conn = new HttpClientConnection(u.origin, u.host);
  const ca = typeof options.ca === "string"
    ? utf8Encoder.encode(options.ca)
    : options.ca ?? (tls && !options.insecure ? systemCa() : undefined);
  // The name is always sent (SNI) and verified unless `insecure`.
  const spec = tls
    ? encodeClientTls({ ca, cert: options.cert, key: options.key, insecure: options.insecure }, ["http/1.1"])
    : undefined;
  try {
    await clientInternals.open(
      conn,
      loop,
      addr,
      tls ? { name, insecure: options.insecure, spec } : undefined,
      options.connectTimeout ?? 10_000,
    );
  } catch (e) {
    // Settings the native side refused (a bad CA or client key PEM).
    if (e instanceof MgnetError && /^TLS: /.test(e.message)) {
      throw new ClientError("tls", `${u.origin}: ${e.message}`, { cause: e });
    }
    throw e;
  }
  return conn;
}
