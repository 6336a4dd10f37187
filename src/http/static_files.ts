/**
 * Static files: a directory or a single file served with a content type,
 * validators (`ETag`, `Last-Modified`) and conditional requests (304, 412),
 * byte ranges (206, 416, `multipart/byteranges`), HEAD, and a custom 404
 * page, for both APIs: {@linkcode serveDir}/{@linkcode serveFile} answer a
 * {@linkcode HttpRequestEvent}, {@linkcode serveDirResponse}/
 * {@linkcode serveFileResponse} build a `Response` for `serve()` handlers.
 *
 * Nothing outside the root is reachable: the path's segments are decoded
 * one by one and `..`, `.` , encoded slashes, backslashes and NUL are
 * refused before the file system is asked, and the real path of what was
 * found (symlinks resolved) must lie inside the root's real path.
 *
 * File metadata is read with synchronous calls, and files up to
 * {@linkcode StaticOptions.inlineLimit} bytes are read in one synchronous
 * read: for files in the page cache that costs a few microseconds, less than
 * the round trip of an asynchronous file operation. Larger files stream with
 * asynchronous reads and the connection's backpressure.
 *
 * @module
 */

import type { HttpRequestEvent } from "./request_event.ts";
import { streamFrom, utf8Encoder } from "../core/bytes.ts";
import { ConnectionClosedError } from "../core/errors.ts";

/** Options of the static file helpers. */
export interface StaticOptions {
  /** File served for a directory (default `"index.html"`; `false`: none, 404). */
  index?: string | false;
  /** Serve names starting with `.` (default `false`: they are 404). */
  dotfiles?: boolean;
  /** A file sent with status 404 when nothing matches (default: a plain-text 404). */
  notFoundPage?: string;
  /** Adds `cache-control: max-age=N` (seconds) to file responses. */
  maxAge?: number;
  /** Extra headers on every file response. */
  headers?: Record<string, string>;
  /** Content types by extension (lowercase, without the dot), over the built-in table. */
  contentTypes?: Record<string, string>;
  /**
   * Files up to this size (bytes) are read whole and sent in one reply;
   * larger ones stream (default 256 KiB).
   */
  inlineLimit?: number;
}

/** Options of {@linkcode serveDir} and {@linkcode serveDirResponse}. */
export interface ServeDirOptions extends StaticOptions {
  /** URL path prefix mapped to the root, e.g. `"/static"` (default `""`). */
  prefix?: string;
}

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  htm: "text/html; charset=utf-8",
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  mjs: "text/javascript; charset=utf-8",
  json: "application/json",
  map: "application/json",
  txt: "text/plain; charset=utf-8",
  md: "text/markdown; charset=utf-8",
  csv: "text/csv; charset=utf-8",
  xml: "application/xml",
  svg: "image/svg+xml",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  avif: "image/avif",
  ico: "image/x-icon",
  woff: "font/woff",
  woff2: "font/woff2",
  ttf: "font/ttf",
  otf: "font/otf",
  wasm: "application/wasm",
  pdf: "application/pdf",
  zip: "application/zip",
  gz: "application/gzip",
  mp3: "audio/mpeg",
  ogg: "audio/ogg",
  wav: "audio/wav",
  mp4: "video/mp4",
  webm: "video/webm",
};

/** At most this many ranges are honoured in one request; more: the whole file. */
const MAX_RANGES = 16;
const READ_CHUNK = 64 * 1024;
const DEFAULT_INLINE = 256 * 1024;

/** A piece of a planned body: literal bytes, or `[start, end)` of the file. */
type Piece = Uint8Array | { start: number; end: number };

/** What to answer: status, headers and, for files, the pieces of the body. */
interface Plan {
  status: number;
  headers: [string, string][];
  /** Literal body (error pages), or undefined when `file` is set. */
  body?: Uint8Array<ArrayBuffer>;
  file?: { path: string; size: number; pieces: Piece[] };
  /** Body length in bytes. */
  length: number;
}

/** Header access shared by request events and `Request` objects. */
type HeaderOf = (name: string) => string | null | undefined;

function text(status: number, message: string, extra: [string, string][] = []): Plan {
  const body = utf8Encoder.encode(message);
  return {
    status,
    headers: [["content-type", "text/plain; charset=utf-8"], ...extra],
    body,
    length: body.length,
  };
}

const realRoots = new Map<string, string>();

function realRoot(root: string): string | undefined {
  let real = realRoots.get(root);
  if (real === undefined) {
    try {
      real = Deno.realPathSync(root);
    } catch {
      return undefined;
    }
    if (realRoots.size > 64) realRoots.clear();
    realRoots.set(root, real);
  }
  return real;
}

/**
 * Decodes a URL path below the prefix into safe segments, or a plan that
 * refuses it.
 */
function segmentsOf(rawPath: string, prefix: string, dotfiles: boolean): string[] | Plan {
  if (
    prefix !== "" && rawPath !== prefix && !rawPath.startsWith(prefix.endsWith("/") ? prefix : `${prefix}/`)
  ) {
    return text(404, "Not Found");
  }
  const rest = rawPath.slice(prefix.length);
  const out: string[] = [];
  for (const raw of rest.split("/")) {
    if (raw === "") continue;
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      return text(400, "Bad Request: malformed percent-encoding in the path");
    }
    if (seg === "." || seg === ".." || /[/\\\0]/.test(seg)) return text(404, "Not Found");
    if (!dotfiles && seg.startsWith(".")) return text(404, "Not Found");
    out.push(seg);
  }
  return out;
}

function inside(real: string, root: string): boolean {
  return real === root || real.startsWith(root.endsWith("/") ? root : `${root}/`);
}

function etagOf(info: Deno.FileInfo): string {
  return `"${info.size.toString(16)}-${Math.floor(info.mtime?.getTime() ?? 0).toString(16)}"`;
}

/** RFC 9110 8.8.3.2: weak comparison for If-None-Match, strong for If-Match. */
function tagListMatches(list: string, etag: string, weak: boolean): boolean {
  if (list.trim() === "*") return true;
  for (let tag of list.split(",")) {
    tag = tag.trim();
    if (tag.startsWith("W/")) {
      if (!weak) continue;
      tag = tag.slice(2);
    }
    if (tag === etag) return true;
  }
  return false;
}

function seconds(ms: number): number {
  return Math.floor(ms / 1000);
}

/**
 * Parses a `Range: bytes=...` value against a file size. Returns the ranges
 * to send, `"unsatisfiable"`, or `undefined` to ignore the header (bad
 * syntax, another unit, or too many ranges).
 */
function parseRanges(
  value: string,
  size: number,
): { start: number; end: number }[] | "unsatisfiable" | undefined {
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(value);
  if (!m) return undefined;
  const specs = m[1].split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (specs.length === 0 || specs.length > MAX_RANGES) return undefined;
  const out: { start: number; end: number }[] = [];
  for (const spec of specs) {
    const r = /^(\d*)\s*-\s*(\d*)$/.exec(spec);
    if (!r || (r[1] === "" && r[2] === "")) return undefined;
    if (r[1] === "") {
      const n = Number(r[2]);
      if (n > 0 && size > 0) out.push({ start: Math.max(0, size - n), end: size });
      continue;
    }
    const start = Number(r[1]);
    const last = r[2] === "" ? Infinity : Number(r[2]);
    if (last < start) return undefined; // invalid range-spec: the header is ignored
    if (start >= size) continue;
    out.push({ start, end: Math.min(last, size - 1) + 1 });
  }
  return out.length === 0 ? "unsatisfiable" : out;
}

function boundary(): string {
  return `mgnet-${crypto.randomUUID().replaceAll("-", "")}`;
}

/** Plans the response for a file that exists (conditional requests, ranges). */
function planFile(
  path: string,
  info: Deno.FileInfo,
  method: string,
  header: HeaderOf,
  options: StaticOptions,
  status = 200,
): Plan {
  const size = info.size;
  const mtime = info.mtime?.getTime();
  const etag = etagOf(info);
  const ext = /\.([^./]+)$/.exec(path)?.[1]?.toLowerCase() ?? "";
  const type = options.contentTypes?.[ext] ?? TYPES[ext] ?? "application/octet-stream";
  const headers: [string, string][] = [["content-type", type], ["etag", etag], ["accept-ranges", "bytes"]];
  if (mtime !== undefined) headers.push(["last-modified", new Date(mtime).toUTCString()]);
  if (options.maxAge !== undefined) headers.push(["cache-control", `max-age=${Math.floor(options.maxAge)}`]);
  if (options.headers) headers.push(...Object.entries(options.headers));
  const whole: Plan = {
    status,
    headers,
    file: { path, size, pieces: [{ start: 0, end: size }] },
    length: size,
  };
  if (status !== 200) return whole; // an error page: no conditionals, no ranges

  // RFC 9110 13.2.2: preconditions in their order of evaluation.
  const ifMatch = header("if-match");
  if (ifMatch != null) {
    if (!tagListMatches(ifMatch, etag, false)) return text(412, "Precondition Failed");
  } else {
    const since = header("if-unmodified-since");
    const t = since == null ? NaN : Date.parse(since);
    if (!Number.isNaN(t) && mtime !== undefined && seconds(mtime) > seconds(t)) {
      return text(412, "Precondition Failed");
    }
  }
  const notModified = (): Plan => ({
    status: 304,
    headers: headers.filter(([k]) => k !== "content-type" && k !== "accept-ranges"),
    body: new Uint8Array(0),
    length: 0,
  });
  const ifNoneMatch = header("if-none-match");
  if (ifNoneMatch != null) {
    if (tagListMatches(ifNoneMatch, etag, true)) {
      return method === "GET" || method === "HEAD" ? notModified() : text(412, "Precondition Failed");
    }
  } else if (method === "GET" || method === "HEAD") {
    const since = header("if-modified-since");
    const t = since == null ? NaN : Date.parse(since);
    if (!Number.isNaN(t) && mtime !== undefined && seconds(mtime) <= seconds(t)) return notModified();
  }

  const range = method === "GET" ? header("range") : undefined;
  if (range == null) return whole;
  const ifRange = header("if-range");
  if (ifRange != null) {
    const v = ifRange.trim();
    const current = v.startsWith('"') || v.startsWith("W/")
      ? v === etag
      : mtime !== undefined && Date.parse(v) === seconds(mtime) * 1000;
    if (!current) return whole;
  }
  const ranges = parseRanges(range, size);
  if (ranges === undefined) return whole;
  if (ranges === "unsatisfiable") {
    return text(416, "Range Not Satisfiable", [["content-range", `bytes */${size}`]]);
  }
  if (ranges.length === 1) {
    const { start, end } = ranges[0];
    return {
      status: 206,
      headers: [...headers, ["content-range", `bytes ${start}-${end - 1}/${size}`]],
      file: { path, size, pieces: [ranges[0]] },
      length: end - start,
    };
  }
  const b = boundary();
  const pieces: Piece[] = [];
  let length = 0;
  for (const r of ranges) {
    const part = utf8Encoder.encode(
      `${length === 0 ? "" : "\r\n"}--${b}\r\ncontent-type: ${type}\r\ncontent-range: bytes ${r.start}-${
        r.end - 1
      }/${size}\r\n\r\n`,
    );
    pieces.push(part, r);
    length += part.length + r.end - r.start;
  }
  const tail = utf8Encoder.encode(`\r\n--${b}--\r\n`);
  pieces.push(tail);
  length += tail.length;
  return {
    status: 206,
    headers: [
      ["content-type", `multipart/byteranges; boundary=${b}`],
      ...headers.filter(([k]) => k !== "content-type"),
    ],
    file: { path, size, pieces },
    length,
  };
}

function notFound(method: string, header: HeaderOf, options: StaticOptions): Plan {
  if (options.notFoundPage !== undefined) {
    try {
      const info = Deno.statSync(options.notFoundPage);
      if (info.isFile) return planFile(options.notFoundPage, info, method, header, options, 404);
    } catch {
      // fall through to the plain page
    }
  }
  return text(404, "Not Found");
}

function statOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch {
    return undefined;
  }
}

/** Plans the answer for `rawPath` (percent-encoded) under `root`. */
function planDir(
  root: string,
  method: string,
  rawPath: string,
  query: string,
  header: HeaderOf,
  options: ServeDirOptions,
): Plan {
  if (method !== "GET" && method !== "HEAD") return text(405, "Method Not Allowed", [["allow", "GET, HEAD"]]);
  const segs = segmentsOf(rawPath, options.prefix ?? "", options.dotfiles ?? false);
  if (!Array.isArray(segs)) return segs.status === 404 ? notFound(method, header, options) : segs;
  const rootReal = realRoot(root);
  if (rootReal === undefined) return notFound(method, header, options);
  let real: string;
  try {
    real = Deno.realPathSync(segs.length === 0 ? rootReal : `${rootReal}/${segs.join("/")}`);
  } catch {
    return notFound(method, header, options);
  }
  if (!inside(real, rootReal)) return notFound(method, header, options);
  let info = statOrUndefined(real);
  if (info === undefined) return notFound(method, header, options);
  if (info.isDirectory) {
    if (!rawPath.endsWith("/")) {
      const location = `${rawPath}/${query === "" ? "" : `?${query}`}`;
      return text(301, "Moved Permanently", [["location", location]]);
    }
    if (options.index === false) return notFound(method, header, options);
    const index = `${real}/${options.index ?? "index.html"}`;
    let indexReal: string;
    try {
      indexReal = Deno.realPathSync(index);
    } catch {
      return notFound(method, header, options);
    }
    if (!inside(indexReal, rootReal)) return notFound(method, header, options);
    info = statOrUndefined(indexReal);
    if (info === undefined || !info.isFile) return notFound(method, header, options);
    real = indexReal;
  } else if (!info.isFile) {
    return notFound(method, header, options);
  }
  return planFile(real, info, method, header, options);
}

function planSingle(path: string, method: string, header: HeaderOf, options: StaticOptions): Plan {
  if (method !== "GET" && method !== "HEAD") return text(405, "Method Not Allowed", [["allow", "GET, HEAD"]]);
  const info = statOrUndefined(path);
  if (info === undefined || !info.isFile) return notFound(method, header, options);
  return planFile(path, info, method, header, options);
}

/** Reads the planned pieces of a file into one buffer (small bodies). */
function readPiecesSync(path: string, pieces: Piece[], length: number): Uint8Array<ArrayBuffer> {
  if (pieces.length === 1 && !(pieces[0] instanceof Uint8Array) && pieces[0].start === 0) {
    const all = Deno.readFileSync(path);
    // The file changed between stat and read: send what the plan promised.
    return all.length === length ? all : all.subarray(0, Math.min(length, all.length));
  }
  const out = new Uint8Array(length);
  using file = Deno.openSync(path);
  let at = 0;
  for (const p of pieces) {
    if (p instanceof Uint8Array) {
      out.set(p, at);
      at += p.length;
      continue;
    }
    file.seekSync(p.start, Deno.SeekMode.Start);
    let want = p.end - p.start;
    while (want > 0) {
      const n = file.readSync(out.subarray(at, at + want));
      if (n === null || n === 0) return out.subarray(0, at);
      at += n;
      want -= n;
    }
  }
  return out;
}

/** Yields the planned pieces of a file in chunks, read asynchronously. */
async function* streamPieces(path: string, pieces: Piece[]): AsyncGenerator<Uint8Array> {
  using file = await Deno.open(path);
  for (const p of pieces) {
    if (p instanceof Uint8Array) {
      yield p;
      continue;
    }
    await file.seek(p.start, Deno.SeekMode.Start);
    let want = p.end - p.start;
    while (want > 0) {
      const buf = new Uint8Array(Math.min(READ_CHUNK, want));
      const n = await file.read(buf);
      if (n === null || n === 0) return; // the file shrank: the body ends short
      want -= n;
      yield n === buf.length ? buf : buf.subarray(0, n);
    }
  }
}

async function send(ev: HttpRequestEvent, plan: Plan, options: StaticOptions): Promise<void> {
  if (ev.conn.closed) return; // the client left: nobody to answer
  if (!plan.file) {
    ev.reply(plan.status, plan.body, plan.headers);
    return;
  }
  const { path, pieces } = plan.file;
  if (ev.method === "HEAD") {
    ev.respond(plan.status, plan.headers, plan.length).end();
    return;
  }
  if (plan.length <= (options.inlineLimit ?? DEFAULT_INLINE)) {
    const body = readPiecesSync(path, pieces, plan.length);
    if (body.length === plan.length) {
      ev.reply(plan.status, body, plan.headers);
      return;
    }
  }
  const out = ev.respond(plan.status, plan.headers, plan.length);
  try {
    for await (const chunk of streamPieces(path, pieces)) await out.write(chunk);
  } catch (e) {
    if (!(e instanceof ConnectionClosedError)) throw e;
  } finally {
    out.end(); // short (file shrank, read failed): the core closes the connection
  }
}

/**
 * Answers a request event from the files under `root`: `GET`/`HEAD` of
 * `prefix + path` sends the file (a directory's `index.html`; a directory
 * without its trailing slash is redirected to it), everything else gets
 * 404, 405, 301, 304, 206, 412 or 416 as RFC 9110 asks.
 *
 * @param ev The request.
 * @param root The directory to serve.
 * @param options Prefix, index file, 404 page, caching.
 * @returns A promise that settles once the response is sent (or the client left).
 * @example Serving a directory under /static
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 * import { serveDir } from "./static_files.ts";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/hello.txt`, "hi");
 * await using mgr = new Manager();
 * const { port } = mgr.listen("http://127.0.0.1:0", {
 *   onRequest: (ev) => serveDir(ev, root, { prefix: "/static" }),
 * });
 * const res = await fetch(`http://127.0.0.1:${port}/static/hello.txt`);
 * assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
 * assert.equal(await res.text(), "hi");
 * const missing = await fetch(`http://127.0.0.1:${port}/static/nope.txt`);
 * assert.equal(missing.status, 404);
 * await missing.body?.cancel();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function serveDir(ev: HttpRequestEvent, root: string, options: ServeDirOptions = {}): Promise<void> {
  const plan = planDir(root, ev.method, ev.path, ev.query, (n) => ev.header(n), options);
  return send(ev, plan, options);
}

/**
 * Answers a request event with one file (conditional requests, ranges and
 * HEAD included); 404 (or the configured page) if it does not exist.
 *
 * @param ev The request.
 * @param path The file.
 * @param options Caching, headers, 404 page.
 * @returns A promise that settles once the response is sent.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 * import { serveFile } from "./static_files.ts";
 *
 * const path = await Deno.makeTempFile({ suffix: ".txt" });
 * await Deno.writeTextFile(path, "0123456789");
 * await using mgr = new Manager();
 * const { port } = mgr.listen("http://127.0.0.1:0", { onRequest: (ev) => serveFile(ev, path) });
 * const res = await fetch(`http://127.0.0.1:${port}/`, { headers: { range: "bytes=2-4" } });
 * assert.equal(res.status, 206);
 * assert.equal(await res.text(), "234");
 * await Deno.remove(path);
 * ```
 */
export function serveFile(ev: HttpRequestEvent, path: string, options: StaticOptions = {}): Promise<void> {
  return send(ev, planSingle(path, ev.method, (n) => ev.header(n), options), options);
}

function toResponse(plan: Plan, method: string, options: StaticOptions): Response {
  const headers = new Headers(plan.headers);
  if (!plan.file) {
    const body = method === "HEAD" || plan.status === 304 ? null : plan.body;
    return new Response(body, { status: plan.status, headers });
  }
  const { path, pieces } = plan.file;
  headers.set("content-length", String(plan.length));
  if (method === "HEAD") return new Response(null, { status: plan.status, headers });
  if (plan.length <= (options.inlineLimit ?? DEFAULT_INLINE)) {
    const body = readPiecesSync(path, pieces, plan.length);
    if (body.length === plan.length) return new Response(body, { status: plan.status, headers });
  }
  return new Response(streamFrom(streamPieces(path, pieces)), { status: plan.status, headers });
}

/**
 * {@linkcode serveDir} for fetch-style handlers: builds the `Response` for
 * a `Request` from the files under `root`.
 *
 * @param req The request.
 * @param root The directory to serve.
 * @param options Prefix, index file, 404 page, caching.
 * @returns The response.
 * @example With serve()
 * ```ts
 * import assert from "node:assert/strict";
 * import { serve } from "../../mod.ts";
 * import { serveDirResponse } from "./static_files.ts";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/index.html`, "<h1>home</h1>");
 * const server = serve({ port: 0, onListen: false }, (req) => serveDirResponse(req, root));
 * const res = await fetch(`http://127.0.0.1:${server.addr.port}/`);
 * assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
 * assert.equal(await res.text(), "<h1>home</h1>");
 * await server.shutdown();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function serveDirResponse(req: Request, root: string, options: ServeDirOptions = {}): Response {
  const url = new URL(req.url);
  const plan = planDir(
    root,
    req.method,
    url.pathname,
    url.search.slice(1),
    (n) => req.headers.get(n),
    options,
  );
  return toResponse(plan, req.method, options);
}

/**
 * {@linkcode serveFile} for fetch-style handlers.
 *
 * @param req The request.
 * @param path The file.
 * @param options Caching, headers, 404 page.
 * @returns The response.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serveFileResponse } from "./static_files.ts";
 *
 * const path = await Deno.makeTempFile({ suffix: ".html" });
 * await Deno.writeTextFile(path, "<p>hi</p>");
 * const res = serveFileResponse(new Request("http://localhost/"), path);
 * assert.equal(res.status, 200);
 * const etag = res.headers.get("etag")!;
 * assert.equal(await res.text(), "<p>hi</p>");
 * const conditional = new Request("http://localhost/", { headers: { "if-none-match": etag } });
 * const again = serveFileResponse(conditional, path);
 * assert.equal(again.status, 304);
 * await Deno.remove(path);
 * ```
 */
export function serveFileResponse(req: Request, path: string, options: StaticOptions = {}): Response {
  return toResponse(planSingle(path, req.method, (n) => req.headers.get(n), options), req.method, options);
}
