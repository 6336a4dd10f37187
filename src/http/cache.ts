/**
 * The native response cache: GET and HEAD requests for a cached target are
 * answered inside the Rust core, without an event, with a current `date`,
 * an `etag` and `304 Not Modified` for a matching `If-None-Match`.
 *
 * @module
 */

import { check } from "../core/ffi.ts";
import { utf8Encoder } from "../core/bytes.ts";
import type { Loop } from "../core/loop.ts";
import { ManagerClosedError } from "../core/errors.ts";
import type { ReplyBody, ReplyHeaders } from "./headers.ts";

/** A response cached natively with `Manager.cache`. */
export interface CachedResponse {
  /** Status code (default 200). */
  status?: number;
  /** Body (string as UTF-8, or bytes). */
  body?: ReplyBody;
  /** Headers (framing headers are set by mgnet). */
  headers?: ReplyHeaders;
}

/** How long and under which names a cached response lives. */
export interface CacheOptions {
  /** Time to live in milliseconds (default: until removed). */
  ttl?: number;
  /** Names to remove it by with `Manager.invalidate`. */
  tags?: string[];
  /** Its entity tag, quoted (default: computed from the body). */
  etag?: string;
}

/**
 * Stores an encoded response for `target` (replacing an earlier one).
 *
 * @param loop The loop whose native manager holds the cache.
 * @param target Path and query exactly as requests send them.
 * @param status 200–599.
 * @param head Encoded header lines.
 * @param body Body bytes.
 * @param options Time to live, tags, entity tag.
 */
export function cacheSet(
  loop: Loop,
  target: string,
  status: number,
  head: Uint8Array,
  body: Uint8Array,
  options: CacheOptions,
): void {
  if (loop.closed) throw new ManagerClosedError();
  if (typeof target !== "string" || target === "" || /[\s\0]/.test(target)) {
    throw new TypeError(`invalid request target ${JSON.stringify(target)}`);
  }
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    throw new RangeError(`invalid status ${status}`);
  }
  const ttl = options.ttl ?? 0;
  if (!(ttl >= 0) || !Number.isFinite(ttl)) throw new RangeError("ttl must be a non-negative number of ms");
  const tags = options.tags ?? [];
  if (tags.some((t) => typeof t !== "string" || t === "" || t.includes("\n"))) {
    throw new TypeError("tags must be non-empty strings without newlines");
  }
  if (options.etag !== undefined && !/^(W\/)?"[^"\0\r\n]*"$/.test(options.etag)) {
    throw new TypeError('etag must be a quoted entity tag, e.g. ""v1""');
  }
  const t = utf8Encoder.encode(target);
  const e = utf8Encoder.encode(options.etag ?? "");
  const g = utf8Encoder.encode(tags.join("\n"));
  check(loop.sym.mgnet_cache_set(
    loop.handle,
    t,
    t.length,
    status,
    head,
    head.length,
    body,
    body.length,
    e,
    e.length,
    ttl,
    g,
    g.length,
  ));
}

/**
 * Removes the cached response of `target`.
 *
 * @param loop The loop.
 * @param target A cached target.
 * @returns Whether there was one.
 */
export function cacheDelete(loop: Loop, target: string): boolean {
  if (loop.closed) throw new ManagerClosedError();
  const t = utf8Encoder.encode(target);
  return check(loop.sym.mgnet_cache_delete(loop.handle, t, t.length)) === 1;
}

/**
 * Removes every cached response tagged `tag`, or all when no tag is given.
 *
 * @param loop The loop.
 * @param tag A tag, or undefined for everything.
 * @returns How many were removed (0 when clearing everything).
 */
export function cacheInvalidate(loop: Loop, tag: string | undefined): number {
  if (loop.closed) throw new ManagerClosedError();
  const t = utf8Encoder.encode(tag ?? "");
  return check(loop.sym.mgnet_cache_invalidate(loop.handle, t, t.length));
}
