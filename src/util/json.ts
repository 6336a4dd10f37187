/**
 * JSON value lookup by path without parsing the whole document, with
 * Mongoose's `mg_json_get`: only the value found is parsed (by
 * `JSON.parse`). Worth it for large documents only; see
 * docs/architecture.md, "Native utilities", for the numbers.
 *
 * @module
 */

import { check, lib } from "../core/ffi.ts";
import { utf8Decoder, utf8Encoder } from "../core/bytes.ts";

const out = new Uint8Array(4);
const outView = new DataView(out.buffer);
const paths = new Map<string, Uint8Array>();

/**
 * The raw JSON text of the value at `path` in `doc`, or undefined when
 * there is none. Mongoose reads the document only up to the value, so a
 * malformed tail after it goes unnoticed (unlike `JSON.parse`).
 *
 * @param doc The document, as UTF-8 bytes (as received) or a string.
 * @param path `$` then `.key` and `[index]` steps, e.g. `$.items[2].name`.
 * @returns The value's JSON text, or undefined.
 * @throws {MgnetError} (`Invalid`) for a malformed path or document.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsonGetRaw } from "../../mod.ts";
 *
 * const doc = new TextEncoder().encode('{"a":{"b":[10,"x",{"c":true}]}}');
 * assert.equal(jsonGetRaw(doc, "$.a.b[1]"), '"x"');
 * assert.equal(jsonGetRaw(doc, "$.a.b[2]"), '{"c":true}');
 * assert.equal(jsonGetRaw(doc, "$.nope"), undefined);
 * ```
 */
export function jsonGetRaw(doc: Uint8Array | string, path: string): string | undefined {
  const bytes = typeof doc === "string" ? utf8Encoder.encode(doc) : doc;
  let p = paths.get(path);
  if (p === undefined) {
    p = utf8Encoder.encode(path);
    if (paths.size < 1024) paths.set(path, p);
  }
  const off = check(lib().mgnet_json_get(bytes, bytes.length, p, p.length, out));
  const len = outView.getUint32(0, true);
  if (len === 0) return undefined;
  return utf8Decoder.decode(bytes.subarray(off, off + len));
}

/**
 * The value at `path` in `doc`, parsed; undefined when there is none.
 * Only the value found is parsed, so on a large document this is much
 * faster than `JSON.parse(doc)` followed by the same property accesses.
 *
 * @param doc The document, as UTF-8 bytes (as received) or a string.
 * @param path `$` then `.key` and `[index]` steps, e.g. `$.items[2].name`.
 * @returns The value, or undefined.
 * @throws {MgnetError} (`Invalid`) for a malformed path or document.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsonGet } from "../../mod.ts";
 *
 * const body = new TextEncoder().encode('{"user":{"name":"Ada","roles":["admin","dev"]}}');
 * assert.equal(jsonGet(body, "$.user.roles[1]"), "dev");
 * assert.deepEqual(jsonGet(body, "$.user.roles"), ["admin", "dev"]);
 * ```
 */
export function jsonGet(doc: Uint8Array | string, path: string): unknown {
  const raw = jsonGetRaw(doc, path);
  return raw === undefined ? undefined : JSON.parse(raw);
}
