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

/**
 * Finds `needle` in `hay` from `from` on.
 *
 * @param hay Bytes to search.
 * @param needle Bytes to find (not empty).
 * @param from First index to consider.
 * @returns The index of the first match, or -1.
 */
export function indexOfBytes(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  const last = hay.length - needle.length;
  outer: for (
    let i = hay.indexOf(needle[0], from);
    i !== -1 && i <= last;
    i = hay.indexOf(needle[0], i + 1)
  ) {
    for (let j = 1; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * A pull-driven `ReadableStream` over an async iterator of byte chunks:
 * nothing is read ahead of the consumer, and cancelling the stream ends the
 * iterator (its `finally` blocks run).
 *
 * @param it The source.
 * @param onPull Called before each read (e.g. to mark a body as used).
 * @returns The stream.
 */
export function streamFrom(it: AsyncIterator<Uint8Array>, onPull?: () => void): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      onPull?.();
      const { value, done } = await it.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel() {
      await it.return?.();
    },
  }, { highWaterMark: 0 });
}
