/**
 * Glob matching with captures by Mongoose's `mg_match` (`?` one byte, `*`
 * a run without `/`, `#` any run). Measured slower than a RegExp built
 * once (docs/architecture.md, "Native utilities"), so it is not exported
 * by `mod.ts`; it stays for the benchmark and as the record of why.
 *
 * @module
 */

import { lib } from "../core/ffi.ts";
import { utf8Decoder, utf8Encoder } from "../core/bytes.ts";

const caps = new Uint8Array(8 * 16);
const capsView = new DataView(caps.buffer);

/**
 * Matches `s` against `pattern`; returns the captures (one per wildcard,
 * at most 16) or undefined when it does not match.
 *
 * @param s The text.
 * @param pattern The glob.
 * @returns The captures, or undefined.
 */
export function globMatch(s: string, pattern: string): string[] | undefined {
  const sb = utf8Encoder.encode(s);
  const pb = utf8Encoder.encode(pattern);
  let wild = 0;
  for (let i = 0; i < pb.length; i++) if (pb[i] === 63 || pb[i] === 42 || pb[i] === 35) wild++;
  const n = Math.min(wild, 16);
  if (lib().mgnet_glob_match(sb, sb.length, pb, pb.length, caps, n) !== 1) return undefined;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const off = capsView.getUint32(i * 8, true);
    const len = capsView.getUint32(i * 8 + 4, true);
    out.push(utf8Decoder.decode(sb.subarray(off, off + len)));
  }
  return out;
}
