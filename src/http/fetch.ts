/**
 * mgnet's `fetch`: the global `fetch`'s signature and `Response` for
 * `http:` and `https:` URLs, running on an mgnet manager's loop through its
 * HTTP client (`Manager.request`: keep-alive pool, streaming bodies with
 * backpressure).
 *
 * Which manager: inside a handler of a manager (`serve()`'s fetch handler,
 * a listener's `onRequest`, and everything they await) the manager running
 * that handler, so the request and the upstream call share one loop and no
 * thread hop; elsewhere a shared manager of this thread, made on first use,
 * which never keeps the process alive while idle. {@linkcode createFetch}
 * binds one manager explicitly.
 *
 * @module
 */

import { handlerContext, Manager } from "../manager.ts";
import { abortWithReason, ClientError, type ClientRequestOptions, type ClientResponse } from "./client.ts";

/** mgnet's options beside the standard `RequestInit` ones. */
export interface MgFetchInit extends RequestInit {
  /**
   * Trusted CA certificates for `https:` (PEM text or DER bytes); default:
   * the system bundle. A custom `ca` sends the request on a fresh
   * connection (not pooled).
   */
  ca?: string | Uint8Array;
  /** `https:` without verifying the certificate or name (testing only). */
  insecure?: boolean;
  /** The manager to run on (default: see the module documentation). */
  manager?: Manager;
}

/** The type of mgnet's `fetch`: the global one's, with {@linkcode MgFetchInit}. */
export type MgFetch = (input: string | URL | Request, init?: MgFetchInit) => Promise<Response>;

let shared: Manager | undefined;

/** This thread's shared manager for `fetch` outside handlers, made on first use. */
function sharedManager(): Manager {
  if (!shared || shared.closed) shared = new Manager();
  return shared;
}

const MAX_REDIRECTS = 20;
const REDIRECT = new Set([301, 302, 303, 307, 308]);
const REDIRECT_MODES = new Set<string>(["follow", "manual", "error"]);
const NULL_BODY = new Set([101, 103, 204, 205, 304]);
const NORMALIZED = new Set(["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"]);
const FORBIDDEN_METHODS = new Set(["CONNECT", "TRACE", "TRACK"]);
/** Headers that describe a request body, dropped when a redirect drops the body. */
const BODY_HEADERS = ["content-encoding", "content-language", "content-location", "content-type"];
const TEXT_PLAIN = "text/plain;charset=UTF-8";

type Body = string | Uint8Array | ReadableStream<Uint8Array> | null;

/** A request as the client sends it. */
interface Prepared {
  url: URL;
  method: string;
  headers: [string, string][];
  body: Body;
  redirect: RequestRedirect;
  signal: AbortSignal | undefined;
}

function normalizeMethod(m: string): string {
  const upper = m.toUpperCase();
  const method = NORMALIZED.has(upper) ? upper : m;
  if (FORBIDDEN_METHODS.has(upper)) throw new TypeError(`method ${m} is forbidden`);
  return method;
}

function headerPairs(h: HeadersInit | undefined): [string, string][] {
  if (h === undefined) return [];
  const out: [string, string][] = [];
  // Headers validates names and values and joins repeats, as fetch does.
  for (const [k, v] of h instanceof Headers ? h : new Headers(h)) out.push([k, v]);
  return out;
}

function hasHeader(pairs: [string, string][], name: string): boolean {
  for (const [k] of pairs) if (k === name) return true;
  return false;
}

/** Turns `init.body` into what the client sends, adding a content-type where the standard does. */
async function extractBody(
  raw: BodyInit,
  headers: [string, string][],
): Promise<Body> {
  if (typeof raw === "string") {
    if (!hasHeader(headers, "content-type")) headers.push(["content-type", TEXT_PLAIN]);
    return raw;
  }
  if (raw instanceof Uint8Array) return raw;
  if (raw instanceof ArrayBuffer) return new Uint8Array(raw.slice(0));
  if (ArrayBuffer.isView(raw)) {
    return new Uint8Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength) as ArrayBuffer);
  }
  if (raw instanceof ReadableStream) return raw as ReadableStream<Uint8Array>;
  // URLSearchParams, Blob, FormData: the standard's encoding (multipart with
  // its boundary for FormData), read whole so it goes with a content-length.
  const framed = new Response(raw as BodyInit);
  const type = framed.headers.get("content-type");
  if (type !== null && !hasHeader(headers, "content-type")) headers.push(["content-type", type]);
  return await framed.bytes();
}

async function prepare(input: string | URL | Request, init: MgFetchInit | undefined): Promise<Prepared> {
  if (!(input instanceof Request)) {
    const url = new URL(input);
    if (url.username !== "" || url.password !== "") {
      throw new TypeError(`${url.protocol}//…@${url.host}: credentials in a URL are not allowed`);
    }
    const redirect = init?.redirect ?? "follow";
    if (!REDIRECT_MODES.has(redirect)) {
      throw new TypeError(`invalid redirect mode ${JSON.stringify(redirect)}`);
    }
    const method = init?.method === undefined ? "GET" : normalizeMethod(init.method);
    const headers = headerPairs(init?.headers);
    const raw = init?.body ?? null;
    if (raw !== null && (method === "GET" || method === "HEAD")) {
      throw new TypeError("a request with a GET or HEAD method cannot have a body");
    }
    return {
      url,
      method,
      headers,
      body: raw === null ? null : await extractBody(raw, headers),
      redirect,
      signal: init?.signal ?? undefined,
    };
  }
  // A Request: the standard's merging of the request and `init`.
  const req = init === undefined ? input : new Request(input, init);
  const headers = headerPairs(req.headers);
  let body: Body = null;
  if (init?.body !== undefined && init.body !== null) {
    body = await extractBody(init.body, []); // the content-type is in req.headers already
  } else if (req.body !== null) body = await req.bytes();
  return {
    url: new URL(req.url),
    method: req.method,
    headers,
    body,
    redirect: req.redirect,
    signal: init?.signal ?? input.signal,
  };
}

/** The Fetch standard's `TypeError` for a network error, with mgnet's error as `cause`. */
function networkError(url: URL, e: ClientError): TypeError {
  return new TypeError(`error sending request for url (${url.href}): ${e.kind}: ${e.message}`, { cause: e });
}

/** A promise rejected with `signal`'s reason once it aborts, and how to stop watching. */
function watchAbort(signal: AbortSignal): { aborted: Promise<never>; stop: () => void } {
  let stop = () => {};
  const aborted = new Promise<never>((_, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    stop = () => signal.removeEventListener("abort", onAbort);
  });
  aborted.catch(() => {});
  return { aborted, stop };
}

/** Reads a redirect's body to its end (small ones keep their connection for the pool), else drops it. */
async function discard(res: ClientResponse): Promise<void> {
  const length = Number(res.headers.get("content-length") ?? NaN);
  if (length <= 64 * 1024) {
    try {
      await res.bytes();
      return;
    } catch {
      return; // the connection failed: nothing to reuse
    }
  }
  await res.body.cancel().catch(() => {});
}

function toResponse(res: ClientResponse, method: string, url: URL, redirected: boolean): Response {
  const nullBody = method === "HEAD" || NULL_BODY.has(res.status);
  let body: ReadableStream<Uint8Array> | null = res.body;
  if (nullBody) {
    void discard(res);
    body = null;
  } else {
    const coding = res.headers.get("content-encoding")?.trim().toLowerCase();
    if (coding === "gzip" || coding === "x-gzip" || coding === "deflate") {
      body = body.pipeThrough(
        new DecompressionStream(coding === "deflate" ? "deflate" : "gzip") as unknown as TransformStream<
          Uint8Array,
          Uint8Array
        >,
      );
    }
  }
  const out = new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  const href = url.hash === "" ? url.href : url.href.slice(0, url.href.length - url.hash.length);
  return asFetched(out, href, redirected);
}

/**
 * Gives a constructed `Response` what the global fetch's responses have and
 * a constructed one lacks: its `url`, `redirected` and `type` "basic", kept
 * by `clone()` too.
 */
function asFetched(res: Response, href: string, redirected: boolean): Response {
  const clone = res.clone;
  Object.defineProperties(res, {
    url: { value: href, enumerable: true },
    redirected: { value: redirected, enumerable: true },
    type: { value: "basic", enumerable: true },
    clone: { value: (): Response => asFetched(clone.call(res), href, redirected) },
  });
  return res;
}

async function run(
  mgr: Manager,
  input: string | URL | Request,
  init: MgFetchInit | undefined,
): Promise<Response> {
  const req = await prepare(input, init);
  const { signal } = req;
  signal?.throwIfAborted();
  const base: ClientRequestOptions & { [abortWithReason]?: boolean } = {
    timeout: Infinity,
    connectTimeout: 30_000,
    ca: init?.ca,
    insecure: init?.insecure,
  };
  if (signal) {
    base.signal = signal;
    base[abortWithReason] = true;
  }
  const watch = signal ? watchAbort(signal) : undefined;
  try {
    for (let redirects = 0;; redirects++) {
      const { url, method, body } = req;
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        throw new TypeError(`mgnet's fetch supports http: and https: URLs, not ${url.protocol}`);
      }
      if (!hasHeader(req.headers, "accept")) req.headers.push(["accept", "*/*"]);
      const options = { ...base, method, headers: req.headers, body };
      let res: ClientResponse;
      try {
        const pending = mgr.request(url, options);
        res = await (watch ? Promise.race([pending, watch.aborted]) : pending);
      } catch (e) {
        if (signal?.aborted) throw signal.reason;
        if (e instanceof ClientError) throw networkError(url, e);
        throw e;
      }
      const location = res.headers.get("location");
      if (!REDIRECT.has(res.status) || location === null || req.redirect === "manual") {
        return toResponse(res, method, url, redirects > 0);
      }
      await discard(res);
      if (req.redirect === "error") {
        throw new TypeError(`redirect from ${url.href} refused (redirect: "error")`);
      }
      if (redirects >= MAX_REDIRECTS) throw new TypeError(`more than ${MAX_REDIRECTS} redirects`);
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw new TypeError(`invalid redirect location ${JSON.stringify(location)}`);
      }
      if (next.protocol !== "http:" && next.protocol !== "https:") {
        throw new TypeError(`redirect to an unsupported scheme ${next.protocol}`);
      }
      if (next.hash === "" && url.hash !== "") next.hash = url.hash;
      const status = res.status;
      if (status !== 303 && body instanceof ReadableStream) {
        throw new TypeError("cannot follow a redirect with a streamed request body");
      }
      if (
        ((status === 301 || status === 302) && method === "POST") || (status === 303 && method !== "HEAD")
      ) {
        req.method = "GET";
        req.body = null;
        req.headers = req.headers.filter(([k]) => !BODY_HEADERS.includes(k) && k !== "content-length");
      }
      if (next.origin !== url.origin) {
        // Credentials stay with their origin (as the standard and Deno do).
        req.headers = req.headers.filter(([k]) => k !== "authorization" && k !== "cookie");
      }
      req.url = next;
    }
  } finally {
    watch?.stop();
  }
}

/**
 * Makes a `fetch` bound to one manager: its requests run on `mgr`'s loop
 * and share its keep-alive pool.
 *
 * @param mgr The manager.
 * @returns A function with the global `fetch`'s signature.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createFetch, Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const { port } = mgr.listen("http://127.0.0.1:0", {
 *   onRequest: (ev) => void ev.reply(200, `${ev.method} ${ev.body.length}`),
 * });
 * const fetch = createFetch(mgr);
 * const res = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body: "hello" });
 * assert.ok(res instanceof Response);
 * assert.equal(await res.text(), "POST 5");
 * ```
 */
export function createFetch(mgr: Manager): MgFetch {
  if (!(mgr instanceof Manager)) throw new TypeError("createFetch needs a Manager");
  return (input, init) => run(init?.manager ?? mgr, input, init);
}

/**
 * The global `fetch` for `http:` and `https:` URLs, on mgnet's loop: a
 * drop-in (`import { fetch } from "mgnet"`) returning a real `Response`
 * whose body streams as bytes arrive (with backpressure), with keep-alive
 * pooling, `AbortSignal` (before connecting, while waiting for the head and
 * mid-body: the body then errors with the abort reason and the connection is
 * dropped), and redirects as the Fetch standard says (`follow`: at most 20,
 * 301/302 POST and 303 become GET without body; `manual`; `error`).
 * Failures reject with a `TypeError` whose `cause` is mgnet's
 * `ClientError` (`kind`: `refused`, `dns`, `tls`, `timeout`, `reset`...).
 *
 * It runs on the manager whose handler calls it (in `serve()`, on the
 * server's own loop), else on a shared manager of this thread that does not
 * keep the process alive; `init.manager` or {@linkcode createFetch} picks
 * one. No `accept-encoding` is sent unless given (then gzip and deflate
 * bodies are decoded); no cookies, cache or CORS (server-side fetch).
 *
 * @param input The URL, or a `Request`.
 * @param init Standard options, plus `ca`, `insecure` and `manager`.
 * @returns The response once its head has arrived.
 * @throws {TypeError} for a network error (`cause`: the `ClientError`), a
 *   bad URL, method or header; the signal's reason once it aborts.
 * @example A proxy handler on serve()
 * ```ts
 * import assert from "node:assert/strict";
 * import { fetch, serve } from "../../mod.ts";
 *
 * await using upstream = Deno.serve({ port: 0, onListen() {} }, (req) => new Response(`up ${req.method}`));
 * await using proxy = serve({ port: 0, hostname: "127.0.0.1", onListen: false }, async () => {
 *   const res = await fetch(`http://127.0.0.1:${upstream.addr.port}/`); // on the proxy's own loop
 *   return new Response(`proxied ${await res.text()}`);
 * });
 * const res = await globalThis.fetch(`http://127.0.0.1:${proxy.addr.port}/`);
 * assert.equal(await res.text(), "proxied up GET");
 * ```
 */
export function fetch(input: string | URL | Request, init?: MgFetchInit): Promise<Response> {
  try {
    const mgr = init?.manager ?? handlerContext.getStore() ?? sharedManager();
    return run(mgr, input, init);
  } catch (e) {
    return Promise.reject(e);
  }
}
