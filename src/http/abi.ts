/**
 * Numbers the HTTP protocol shares with the native library: its record
 * kinds, their field offsets and flags, and the reply flags. Each block
 * names the Rust source it mirrors; nothing else in `src/http/` spells
 * these numbers.
 *
 * @module
 */

/** HTTP record kinds (`rust/src/http/record.rs`, `KIND_HTTP`, `KIND_BODY`). */
export const HttpKind = { Request: 2, Body: 7 } as const;

/** Fields of an HTTP request record (`rust/src/http/record.rs`, the HTTP record writer). */
export const Req = {
  /** u8: `ReqFlag` bits. */
  Flags: 1,
  /** u16: method code (index into `METHODS`, 0: read the method bytes). */
  MethodCode: 2,
  /** u32: the request's sequence number on its connection. */
  Seq: 20,
  TargetOff: 24,
  TargetLen: 28,
  MethodOff: 32,
  MethodLen: 36,
  /** u32: offset of the header table (16 bytes an entry: name off/len, value off/len). */
  HeadersOff: 40,
  HeadersCount: 44,
  BodyOff: 48,
  BodyLen: 52,
  /** Size of one header table entry. */
  HeaderEntry: 16,
} as const;

/** HTTP record flags (`rust/src/http/record.rs`, `HTTP_FLAG_*`). */
export const ReqFlag = { Http10: 1, KeepAlive: 2, Streamed: 4 } as const;

/** Method codes (`rust/src/http/record.rs`, `method_code`). */
export const METHODS: readonly string[] = [
  "",
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "OPTIONS",
  "PATCH",
  "CONNECT",
  "TRACE",
];

/** BODY record fields and flags (`rust/src/http/record.rs`, the BODY record writer). */
export const Body = {
  /** u16 in the header's aux field: the status mgnet answered with (on error). */
  Status: 2,
  Length: 24,
  Bytes: 28,
  FlagEnd: 1,
  FlagError: 2,
} as const;

/** Reply arguments (`rust/src/http/server.rs`, `SEQ_OLDEST`, `REPLY_*`). */
export const Reply = {
  /** `seq` meaning "the oldest request not yet answered". */
  SeqOldest: 0xffffffff,
  /** Close the connection after this response. */
  Close: 1,
  /** The headers carry their own `date`. */
  OwnDate: 2,
} as const;
