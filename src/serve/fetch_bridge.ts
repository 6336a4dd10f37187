/**
 * The bridge between mgnet's request events and the web's `Request` and
 * `Response`: a lazily built `Request` (nothing is decoded unless read) and
 * a fast reader of `Response` objects.
 *
 * Reading a `Response` through its public API costs a `Headers` iteration
 * and an async body read per request. Deno keeps a response's status,
 * header list and static body (string or bytes) in internal slots reachable
 * through the object's own symbol-keyed properties; this module finds them
 * once at load time, checks on sample responses that they hold what the
 * public API reports, and reads them directly. If the check fails (another
 * Deno version), every response takes the public-API path instead.
 *
 * @module
 */

import type { HttpRequestEvent } from "../http/request_event.ts";
import type { NetAddr } from "../core/connection.ts";
import { collectBytes, streamFrom, utf8Decoder } from "../core/bytes.ts";

/** A response's parts, read without consuming it. */
export interface ResponseParts {
  status: number;
  headers: [string, string][];
  /** `null`: no body. */
  body: string | Uint8Array | null;
}

/** Deno's internal slots of a Response, found by their symbols' descriptions. */
type Slots = Partial<
  Record<"response" | "lazyBody" | "lazyType" | "kind" | "status" | "body" | "type", symbol>
>;

const SLOT_NAMES: Record<string, keyof Slots> = {
  "response": "response",
  "lazy static body": "lazyBody",
  "lazy static content type": "lazyType",
  "serve fast header kind": "kind",
  "serve fast status": "status",
  "serve fast body": "body",
  "serve fast content type": "type",
};

function findSlots(): Slots {
  const out: Slots = {};
  for (const r of [new Response("probe"), new Response("probe", { headers: { "x-probe": "1" } })]) {
    for (const s of Object.getOwnPropertySymbols(r)) {
      const name = SLOT_NAMES[s.description ?? ""];
      if (name) out[name] = s;
    }
  }
  return out;
}

const slots = findSlots();
const TEXT_PLAIN = "text/plain;charset=UTF-8";

// deno-lint-ignore no-explicit-any
type Any = any;

function isStatic(b: unknown): b is string | Uint8Array | null {
  return b === null || typeof b === "string" || b instanceof Uint8Array;
}

/**
 * Reads status, header list and a static body straight from Deno's internal
 * slots, or returns undefined (stream, Blob, FormData bodies; unknown layout).
 * Deno keeps simple responses (status + static body + at most a
 * content-type) in "serve fast" slots and builds the full internal response
 * only when something asks for it; both forms are read here.
 */
function fastParts(res: Response): ResponseParts | undefined {
  const r = res as Any;
  const inner = slots.response && r[slots.response];
  if (!inner || typeof inner.status !== "number" || !Array.isArray(inner.headerList)) return undefined;
  if (inner.body !== null && inner.body.streamOrStatic?.consumed !== false) return undefined;
  // Simple responses (status, static body, at most a content-type) keep
  // their content-type and body in the "serve fast" slots, not in the
  // header list.
  const kind = slots.kind && r[slots.kind];
  if ((kind === 1 || kind === 2) && slots.status && slots.body) {
    const body = r[slots.body];
    const type = kind === 1 ? TEXT_PLAIN : slots.type && r[slots.type];
    if (!isStatic(body) || typeof type !== "string") return undefined;
    return { status: r[slots.status], headers: [["content-type", type]], body };
  }
  if (inner.body === null) {
    const lazy = slots.lazyBody ? r[slots.lazyBody] : null;
    if (lazy === null || lazy === undefined) {
      return { status: inner.status, headers: inner.headerList, body: null };
    }
    if (!isStatic(lazy)) return undefined;
    const type = slots.lazyType ? r[slots.lazyType] : null;
    const headers: [string, string][] = inner.headerList.length > 0
      ? inner.headerList
      : [["content-type", typeof type === "string" ? type : TEXT_PLAIN]];
    return { status: inner.status, headers, body: lazy };
  }
  const source = inner.body.source;
  if (!isStatic(source) || source === null) return undefined;
  return { status: inner.status, headers: inner.headerList, body: source };
}

/** Responses the self-check compares: every representation Deno uses. */
const SAMPLES: (() => Response)[] = [
  () => new Response("plain"),
  () => new Response("typed", { headers: { "content-type": "application/json" } }),
  () => Response.json({ k: 1 }),
  () => Response.json({ k: 2 }, { status: 201, headers: { "x-b": "2" } }),
  () => new Response("extra", { headers: { "x-a": "1" } }),
  () => new Response("created", { status: 201, headers: { "content-type": "text/html" } }),
  () => new Response(new Uint8Array([1, 2]), { headers: { "content-type": "application/octet-stream" } }),
  () => new Response(new Uint8Array([3])),
  () => new Response(null, { status: 204 }),
  () => Response.redirect("http://example.com/", 302),
  () => {
    const r = new Response("late", { headers: { "content-type": "text/css" } });
    r.headers.set("x-late", "1");
    return r;
  },
  () => {
    const r = new Response("late2");
    r.headers.append("x-late", "2");
    return r;
  },
  () => {
    const r = Response.json({ read: true });
    r.status; // builds the internal response while the body stays lazy
    return r;
  },
  () => {
    const r = new Response("inspected", { headers: { "content-type": "text/xml" } });
    r.bodyUsed;
    return r;
  },
  () => new Response("status", { status: 404 }),
];

async function selfCheck(): Promise<boolean> {
  const norm = (h: Iterable<[string, string]>) =>
    [...h].map(([k, v]) => `${k.toLowerCase()}:${v}`).sort().join("|");
  for (const make of SAMPLES) {
    const got = fastParts(make());
    if (!got) return false;
    const want = make();
    if (got.status !== want.status || norm(got.headers) !== norm(want.headers)) return false;
    const wantBody = new Uint8Array(await want.arrayBuffer());
    const gotBody = got.body === null
      ? new Uint8Array()
      : typeof got.body === "string"
      ? new TextEncoder().encode(got.body)
      : got.body;
    if (gotBody.length !== wantBody.length || gotBody.some((b, i) => b !== wantBody[i])) return false;
  }
  return true;
}

/**
 * True when Deno's internal response slots were found and read back every
 * sample response exactly as the public API does; otherwise responses are
 * read through the public API (slower, same result).
 */
export const fastResponses: boolean = await selfCheck().catch(() => false);

/**
 * The parts of a response with a static body, read without consuming it;
 * `undefined` when the body must be streamed.
 *
 * @param res A handler's response.
 * @returns Its status, headers and body, or undefined.
 */
export function staticParts(res: Response): ResponseParts | undefined {
  return fastResponses ? fastParts(res) : undefined;
}

/** Everything a lazy request needs from the server. */
export interface RequestContext {
  /** `http://host:port` used when a request has no Host. */
  origin: string;
  /** `"https"` on a TLS listener (default `"http"`). */
  scheme?: string;
  /** Called once when `signal` is first read, to abort it on disconnect. */
  watch(connId: number, controller: AbortController): void;
}

/** The controller of a request's `signal`, if it was ever read (inside `src/` only). */
export let requestAbortController: (req: MgRequest) => AbortController | undefined;

/**
 * A `Request` built lazily from a request event: `instanceof Request` holds
 * and every standard field and body method works, but nothing is decoded
 * until read. Its body is complete when the handler runs (mgnet receives
 * the whole body first), so the body methods resolve at once.
 *
 * Passing it to `fetch()` is not supported (Deno's `fetch` wants its own
 * `Request`); use `req.clone()`, which makes a real one.
 */
export class MgRequest {
  #ev: HttpRequestEvent;
  #ctx: RequestContext;
  #url: string | undefined;
  #headers: Headers | undefined;
  #used = false;
  #stream: ReadableStream<Uint8Array> | null | undefined;
  #controller: AbortController | undefined;

  /**
   * Wraps a request event; `serve()` makes these.
   *
   * @param ev The request event.
   * @param ctx Server context.
   */
  constructor(ev: HttpRequestEvent, ctx: RequestContext) {
    this.#ev = ev;
    this.#ctx = ctx;
  }

  static {
    requestAbortController = (r) => r.#controller;
  }

  /** The request event behind this request. */
  get event(): HttpRequestEvent {
    return this.#ev;
  }

  /** The request method. */
  get method(): string {
    return this.#ev.method;
  }

  /** The absolute URL (`http://host/path?query`). */
  get url(): string {
    if (this.#url === undefined) {
      const ev = this.#ev;
      const host = ev.host;
      const path = ev.uri === "*" ? "/*" : `${ev.path}${ev.query ? `?${ev.query}` : ""}`;
      this.#url = host ? `${this.#ctx.scheme ?? "http"}://${host}${path}` : `${this.#ctx.origin}${path}`;
    }
    return this.#url;
  }

  /** The request headers (built on first read). */
  get headers(): Headers {
    return this.#headers ??= this.#ev.headers;
  }

  /** The body as a stream, or null for an empty body. */
  get body(): ReadableStream<Uint8Array> | null {
    if (this.#stream === undefined && this.#ev.bodyStreamed) {
      this.#stream = streamFrom(this.#ev.bodyChunks(), () => this.#used = true);
    }
    if (this.#stream === undefined) {
      const bytes = this.#ev.body;
      this.#stream = bytes.length === 0 ? null : new ReadableStream<Uint8Array>({
        type: "bytes",
        start: (c) => {
          this.#used = true;
          c.enqueue(bytes.slice());
          c.close();
        },
      });
    }
    return this.#stream;
  }

  /** True once the body was read. */
  get bodyUsed(): boolean {
    return this.#used;
  }

  /** Aborted when the client disconnects before the response is complete. */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      this.#ctx.watch(this.#ev.conn.id, this.#controller);
    }
    return this.#controller.signal;
  }

  #take(): Uint8Array {
    if (this.#used) throw new TypeError("the body has already been read");
    this.#used = true;
    return this.#ev.body;
  }

  /**
   * Reads the body.
   *
   * @returns The body as bytes.
   */
  bytes(): Promise<Uint8Array<ArrayBuffer>> {
    if (this.#ev.bodyStreamed) return this.#collect();
    try {
      return Promise.resolve(this.#take().slice());
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Reads a streamed body whole. */
  async #collect(): Promise<Uint8Array<ArrayBuffer>> {
    if (this.#used) throw new TypeError("the body has already been read");
    this.#used = true;
    return await collectBytes(this.#ev.bodyChunks());
  }

  /**
   * Reads the body.
   *
   * @returns The body as an ArrayBuffer.
   */
  arrayBuffer(): Promise<ArrayBuffer> {
    return this.bytes().then((b) => b.buffer);
  }

  /**
   * Reads the body.
   *
   * @returns The body decoded as UTF-8.
   */
  text(): Promise<string> {
    if (this.#ev.bodyStreamed) return this.#collect().then((b) => utf8Decoder.decode(b));
    try {
      return Promise.resolve(utf8Decoder.decode(this.#take()));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Reads the body.
   *
   * @returns The body parsed as JSON.
   */
  json(): Promise<unknown> {
    return this.text().then(JSON.parse);
  }

  /**
   * Reads the body.
   *
   * @returns The body as a Blob typed by Content-Type.
   */
  blob(): Promise<Blob> {
    return this.bytes().then((b) => new Blob([b], { type: this.headers.get("content-type") ?? "" }));
  }

  /**
   * Reads the body.
   *
   * @returns The body parsed as form data (multipart or urlencoded).
   */
  formData(): Promise<FormData> {
    return this.bytes().then((b) =>
      new Response(b, { headers: { "content-type": this.headers.get("content-type") ?? "" } }).formData()
    );
  }

  /**
   * Copies the request.
   *
   * @returns A real `Request` with the same method, URL, headers and body.
   */
  clone(): Request {
    if (this.#ev.bodyStreamed) throw new TypeError("a request whose body streams cannot be cloned");
    const body = this.#ev.body;
    const hasBody = body.length > 0 && this.method !== "GET" && this.method !== "HEAD";
    return new Request(this.url, {
      method: this.method,
      headers: this.headers,
      body: hasBody ? body.slice() : null,
    });
  }

  /** Always `"default"` (fields that only matter to a browser's fetch follow). */
  get cache(): RequestCache {
    return "default";
  }
  /** Always `"same-origin"`. */
  get credentials(): RequestCredentials {
    return "same-origin";
  }
  /** Always "". */
  get destination(): RequestDestination {
    return "";
  }
  /** Always "". */
  get integrity(): string {
    return "";
  }
  /** Always `false`. */
  get isHistoryNavigation(): boolean {
    return false;
  }
  /** Always `false`. */
  get keepalive(): boolean {
    return false;
  }
  /** Always `"cors"`. */
  get mode(): RequestMode {
    return "cors";
  }
  /** Always `"follow"`. */
  get redirect(): RequestRedirect {
    return "follow";
  }
  /** Always `"about:client"`. */
  get referrer(): string {
    return "about:client";
  }
  /** Always `""`. */
  get referrerPolicy(): ReferrerPolicy {
    return "";
  }
  /** The connection's remote address (not part of `Request`). */
  get remoteAddr(): NetAddr | undefined {
    return this.#ev.conn.remoteAddr;
  }
}
// `instanceof Request` holds; every accessor above shadows Request's own.
Object.setPrototypeOf(MgRequest.prototype, Request.prototype);
