/**
 * `multipart/form-data` (RFC 7578) parsing of a request body, and a file
 * name sanitiser for saving uploads.
 *
 * @module
 */

import { indexOfBytes, utf8Decoder } from "../core/bytes.ts";
import { MgnetError } from "../core/errors.ts";

/** One part of a form. */
export interface FormPart {
  /** The field name (`name` of `content-disposition`). */
  name: string;
  /** The client's file name, for file fields (unsanitised: see {@linkcode sanitizeFilename}). */
  filename?: string;
  /** The part's content type (`text/plain` when the part names none). */
  contentType: string;
  /** All part headers, names in lowercase. */
  headers: Record<string, string>;
  /** The part's bytes (a view into the request body). */
  data: Uint8Array;
}

/** Limits of {@linkcode parseMultipart}. */
export interface MultipartLimits {
  /** Most parts accepted (default 1000). */
  maxParts?: number;
  /** Most bytes of one part's header section (default 16 KiB). */
  maxHeaderSize?: number;
}

/**
 * A body that is not valid `multipart/form-data`; answer it with 400.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MultipartError, parseMultipart } from "./multipart.ts";
 *
 * assert.throws(
 *   () => parseMultipart(new Uint8Array(0), "multipart/form-data; boundary=x"),
 *   (e) => e instanceof MultipartError && e.code === "Invalid",
 * );
 * ```
 */
export class MultipartError extends MgnetError {
  /**
   * Creates the error.
   *
   * @param message What is wrong with the body.
   */
  constructor(message: string) {
    super(message, "Invalid");
    this.name = "MultipartError";
  }
}

/** Splits `type/subtype; a=1; b="two"` into its lowercase type and parameters. */
function parseParams(value: string): { type: string; params: Map<string, string> } {
  const params = new Map<string, string>();
  const semi = value.indexOf(";");
  const type = (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
  const re = /;\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/g;
  for (const m of (semi < 0 ? "" : value.slice(semi)).matchAll(re)) {
    const key = m[1].toLowerCase();
    if (!params.has(key)) params.set(key, m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : m[3]);
  }
  return { type, params };
}

/**
 * The boundary of a `multipart/form-data` content type.
 *
 * @param contentType The request's `content-type`.
 * @returns The boundary, or `undefined` if the type is not multipart/form-data with a valid boundary.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { multipartBoundary } from "./multipart.ts";
 *
 * assert.equal(multipartBoundary('multipart/form-data; boundary="a b"'), "a b");
 * assert.equal(multipartBoundary("text/plain; boundary=x"), undefined);
 * ```
 */
export function multipartBoundary(contentType: string | null | undefined): string | undefined {
  if (!contentType) return undefined;
  const { type, params } = parseParams(contentType);
  const b = params.get("boundary");
  if (type !== "multipart/form-data" || !b || b.length > 70 || /[\r\n]/.test(b)) return undefined;
  return b;
}

function ascii(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

const CRLF2 = ascii("\r\n\r\n");

/**
 * Browsers write `"`, CR and LF in field and file names as `%22`, `%0D` and
 * `%0A` (HTML's form-data encoding); only those three are undone.
 */
function htmlUnescape(v: string | undefined): string | undefined {
  return v?.replace(/%(22|0D|0A)/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** RFC 8187 `UTF-8''percent%20encoded` (the `filename*` form). */
function extValue(v: string): string | undefined {
  const m = /^utf-8'[^']*'(.*)$/i.exec(v);
  if (!m) return undefined;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return undefined;
  }
}

/**
 * Parses a `multipart/form-data` body into its parts (in order; a field
 * may repeat). Part data are views of `body`, not copies.
 *
 * @param body The whole request body.
 * @param contentType The request's `content-type` (carries the boundary).
 * @param limits Most parts and most header bytes per part.
 * @returns The parts.
 * @throws {MultipartError} if the type has no boundary, the body is
 *   truncated or malformed, a part lacks `content-disposition: form-data`
 *   with a name, or a limit is exceeded.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseMultipart } from "./multipart.ts";
 *
 * const form = new FormData();
 * form.append("title", "hello");
 * form.append("file", new File(["contents"], "a.txt", { type: "text/plain" }));
 * const req = new Request("http://x/", { method: "POST", body: form });
 * const parts = parseMultipart(await req.bytes(), req.headers.get("content-type")!);
 * assert.deepEqual(parts.map((p) => [p.name, p.filename, new TextDecoder().decode(p.data)]), [
 *   ["title", undefined, "hello"],
 *   ["file", "a.txt", "contents"],
 * ]);
 * assert.equal(parts[1].contentType, "text/plain");
 * ```
 */
export function parseMultipart(
  body: Uint8Array,
  contentType: string,
  limits: MultipartLimits = {},
): FormPart[] {
  const boundary = multipartBoundary(contentType);
  if (boundary === undefined) throw new MultipartError("not multipart/form-data with a valid boundary");
  const maxParts = limits.maxParts ?? 1000;
  const maxHeader = limits.maxHeaderSize ?? 16 * 1024;
  const delim = ascii(`\r\n--${boundary}`);
  // The first delimiter may open the body (no CRLF before it) or follow a preamble.
  let pos: number;
  if (indexOfBytes(body.subarray(0, delim.length - 2), delim.subarray(2), 0) === 0) pos = delim.length - 2;
  else {
    const at = indexOfBytes(body, delim, 0);
    if (at < 0) throw new MultipartError("no boundary delimiter in the body");
    pos = at + delim.length;
  }
  const parts: FormPart[] = [];
  for (;;) {
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) return parts; // close delimiter
    while (body[pos] === 0x20 || body[pos] === 0x09) pos++; // transport padding
    if (body[pos] !== 0x0d || body[pos + 1] !== 0x0a) throw new MultipartError("malformed boundary line");
    pos += 2;
    if (parts.length >= maxParts) throw new MultipartError(`more than ${maxParts} parts`);
    let headEnd: number;
    let headers: Record<string, string> = {};
    if (body[pos] === 0x0d && body[pos + 1] === 0x0a) {
      headEnd = pos; // no headers at all
      pos += 2;
    } else {
      headEnd = indexOfBytes(body.subarray(0, Math.min(body.length, pos + maxHeader + 4)), CRLF2, pos);
      if (headEnd < 0) {
        throw new MultipartError(
          body.length > pos + maxHeader
            ? `a part's headers exceed ${maxHeader} bytes`
            : "truncated part headers",
        );
      }
      headers = {};
      for (const line of utf8Decoder.decode(body.subarray(pos, headEnd)).split("\r\n")) {
        const colon = line.indexOf(":");
        if (colon <= 0) {
          throw new MultipartError(`malformed part header: ${JSON.stringify(line.slice(0, 80))}`);
        }
        const key = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        headers[key] = key in headers ? `${headers[key]}, ${value}` : value;
      }
      pos = headEnd + 4;
    }
    const end = indexOfBytes(body, delim, pos);
    if (end < 0) throw new MultipartError("truncated body: no closing boundary");
    const disposition = parseParams(headers["content-disposition"] ?? "");
    const name = htmlUnescape(disposition.params.get("name"));
    if (disposition.type !== "form-data" || name === undefined) {
      throw new MultipartError("a part lacks content-disposition: form-data with a name");
    }
    const star = disposition.params.get("filename*");
    const filename = (star !== undefined ? extValue(star) : undefined) ??
      htmlUnescape(disposition.params.get("filename"));
    const part: FormPart = {
      name,
      contentType: headers["content-type"] ?? "text/plain",
      headers,
      data: body.subarray(pos, end),
    };
    if (filename !== undefined) part.filename = filename;
    parts.push(part);
    pos = end + delim.length;
  }
}

/**
 * Turns a client-supplied file name into one safe to create in a directory
 * of yours: only its last path segment is kept, control characters and
 * `<>:"/\|?*` are replaced with `_`, leading dots are dropped (no hidden
 * files, no `..`), and it is cut to 200 characters. An empty result becomes
 * `"upload"`.
 *
 * @param name The client's file name.
 * @returns A plain file name.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sanitizeFilename } from "./multipart.ts";
 *
 * assert.equal(sanitizeFilename("../../etc/passwd"), "passwd");
 * assert.equal(sanitizeFilename("C:\\x\\..\\a<b>.txt"), "a_b_.txt");
 * assert.equal(sanitizeFilename(".."), "upload");
 * ```
 */
export function sanitizeFilename(name: string): string {
  const last = name.split(/[/\\]/).pop() ?? "";
  // deno-lint-ignore no-control-regex
  const clean = last.replace(/[\x00-\x1f\x7f<>:"|?*]/g, "_").replace(/^[.\s]+/, "").trim().slice(0, 200);
  return clean === "" ? "upload" : clean;
}
