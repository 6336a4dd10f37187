/**
 * Reply headers and bodies: the forms a handler may give, validated and
 * encoded to the bytes the native side frames. Shared by the server's
 * replies, the native cache and the client's requests.
 *
 * @module
 */

import { utf8Encoder } from "../core/bytes.ts";
import { Reply } from "./abi.ts";

/** Header values for a reply. */
export type ReplyHeaders =
  | Record<string, string>
  | Headers
  | Iterable<readonly [string, string]>;

/** What a reply body can be. Strings are sent as UTF-8. */
export type ReplyBody = string | Uint8Array | ArrayBuffer | ArrayBufferView | null | undefined;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\0\r\n]/;

export interface EncodedHead {
  bytes: Uint8Array;
  flags: number;
}

/** An empty body. */
export const EMPTY: Uint8Array = new Uint8Array(0);
const NO_HEAD: EncodedHead = { bytes: EMPTY, flags: 0 };
const frozenHeads = new WeakMap<object, EncodedHead>();
let scratch = new Uint8Array(64 * 1024);

/**
 * The pairs of any accepted headers form.
 */
export function headerEntries(headers: ReplyHeaders): Iterable<readonly [string, string]> {
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
        if (/(^|,)\s*close\s*(,|$)/i.test(value)) flags |= Reply.Close;
        continue;
      }
      if (lower === "date") flags |= Reply.OwnDate;
    }
    text += `${name}: ${value}\r\n`;
  }
  return { bytes: utf8Encoder.encode(text), flags };
}

/**
 * Serialises a handler's reply headers, validating them. Frozen header
 * objects are serialised once and remembered.
 */
export function encodeHead(headers: ReplyHeaders | undefined): EncodedHead {
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
export let encodedLen = 0;
/** Strings longer than this are encoded into a fresh buffer, not the shared one. */
const SCRATCH_MAX = 4 << 20;

/**
 * Encodes `s` as UTF-8, into the shared scratch buffer when it fits (its
 * length is left in `encodedLen`). Short ASCII strings are copied by a
 * plain loop: TextEncoder.encodeInto costs ~100 ns per call here, a third
 * of mgnet's JS work per hello request.
 */
export function encodeString(s: string): Uint8Array {
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
export function encodeTrustedPairs(pairs: [string, string][]): EncodedHead {
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

export function bodyBytes(body: ReplyBody): Uint8Array | string {
  if (body === undefined || body === null) return EMPTY;
  if (typeof body === "string") return body;
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError("reply body must be a string, Uint8Array, ArrayBuffer or null");
}

export function checkStatus(status: number): void {
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    throw new RangeError(`status must be an integer from 200 to 599, got ${status}`);
  }
}

/**
 * Serialises validated header lines for a cached response (framing and
 * `connection` headers are refused: a cached response has none).
 */
export function encodeCachedHead(headers: ReplyHeaders | undefined, trusted = false): Uint8Array {
  const head = trusted ? encodeTrustedPairs(headers as [string, string][]) : encodeHead(headers);
  if (head.flags & Reply.Close) throw new TypeError("a cached response cannot close the connection");
  return head.bytes;
}

/**
 * Encodes a body for the native side; strings as UTF-8.
 */
export function bodyToBytes(body: ReplyBody): Uint8Array {
  const data = bodyBytes(body);
  return typeof data === "string" ? utf8Encoder.encode(data) : data;
}
