/**
 * Request limits of HTTP listeners, checked in TypeScript and handed to the
 * native manager when it is created.
 *
 * @module
 */

import { check, type Symbols } from "../core/ffi.ts";

/** Request limits of a manager's HTTP listeners. */
export interface HttpLimits {
  /** Maximum bytes of request line plus headers (default 64 KiB); over it: 431. */
  maxHeaderSize?: number;
  /** Maximum number of request headers (default 128, at most 1024); over it: 431. */
  maxHeaders?: number;
  /** Maximum request-target length (default 16 KiB); over it: 414. */
  maxUriLength?: number;
  /** Maximum request body size after decoding (default 64 MiB); over it: 413. */
  maxBodySize?: number;
  /**
   * Request bodies larger than this (bytes) are not buffered: the request
   * event comes once the head is in, with `bodyStreamed` set, and the body
   * follows through `ev.bodyChunks()` (default: every body is buffered).
   * For `serve()`, `req.body` then streams too.
   */
  streamBodiesOver?: number;
}

function limit(v: number | undefined, name: string, max: number): number {
  if (v === undefined) return 0;
  if (!Number.isInteger(v) || v < 1 || v > max) {
    throw new RangeError(`${name} must be an integer from 1 to ${max}`);
  }
  return v;
}

function streamOver(v: number | undefined): number {
  if (v === undefined) return -1;
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new RangeError("streamBodiesOver must be a non-negative integer");
  }
  return v;
}

/**
 * Creates a native manager with these limits.
 *
 * @param sym The native symbols.
 * @param options The limits (0 / absent: the native default).
 * @returns The native handle.
 */
export function newNativeManager(sym: Symbols, options: HttpLimits): number {
  return check(sym.mgnet_manager_new(
    limit(options.maxHeaderSize, "maxHeaderSize", 0x7fffffff),
    limit(options.maxHeaders, "maxHeaders", 1024),
    limit(options.maxUriLength, "maxUriLength", 0x7fffffff),
    limit(options.maxBodySize, "maxBodySize", 0x7fffffff),
    streamOver(options.streamBodiesOver),
  ));
}
