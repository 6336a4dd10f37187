/**
 * Small byte/string helpers shared by the decoders.
 *
 * @module
 */

/** Shared UTF-8 encoder. */
export const utf8Encoder: TextEncoder = new TextEncoder();
/** Shared UTF-8 decoder (replaces invalid sequences). */
export const utf8Decoder: TextDecoder = new TextDecoder();

/**
 * Decodes bytes as ISO-8859-1 (one char per byte), as HTTP field values are.
 *
 * @param u8 Source bytes.
 * @param start First byte.
 * @param end One past the last byte.
 * @returns The decoded string.
 */
export function latin1(u8: Uint8Array, start: number, end: number): string {
  if (end - start <= 64) {
    let s = "";
    for (let i = start; i < end; i++) s += String.fromCharCode(u8[i]);
    return s;
  }
  let s = "";
  for (let i = start; i < end; i += 8192) {
    s += String.fromCharCode.apply(
      null,
      u8.subarray(i, Math.min(end, i + 8192)) as unknown as number[],
    );
  }
  return s;
}

/**
 * True if `u8[start..end)` equals the lower-case ASCII `lower`, ignoring case.
 *
 * @param u8 Bytes to compare.
 * @param start First byte.
 * @param end One past the last byte.
 * @param lower Lower-case ASCII name.
 * @returns Whether they match.
 */
export function asciiEqualsLower(u8: Uint8Array, start: number, end: number, lower: string): boolean {
  if (end - start !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    let b = u8[start + i];
    if (b >= 0x41 && b <= 0x5a) b |= 0x20;
    if (b !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * Reads an async iterable of byte chunks into one buffer.
 *
 * @param chunks The pieces, in order.
 * @returns Their concatenation (a fresh buffer).
 */
export async function collectBytes(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array<ArrayBuffer>> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const p of chunks) {
    parts.push(p);
    n += p.length;
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
