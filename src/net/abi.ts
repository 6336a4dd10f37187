/**
 * Numbers the TCP protocol shares with the native library: its record
 * kinds and fields, and the framing codes. Each block names the Rust
 * source it mirrors; nothing else in `src/net/` spells these numbers.
 *
 * @module
 */

/** TCP record kinds (`rust/src/net/tcp.rs`, `KIND_TCP_DATA`, `KIND_TCP_END`). */
export const TcpKind = { Data: 8, End: 9 } as const;

/** DATA record fields (`rust/src/net/tcp.rs`, `data_record`): length u32 @20, the bytes @24. */
export const TcpData = { Length: 20, Bytes: 24 } as const;

/** Framing codes of `mgnet_tcp_framing`/`mgnet_tcp_connect` (`rust/src/lib.rs`, `TCP_FRAMING_*`). */
export const FramingCode = { Raw: 0, Line: 1, Prefix: 2 } as const;

/**
 * `maxFrame` bounds (`rust/src/net/framing.rs`, `DEFAULT_MAX_FRAME`,
 * `MAX_MAX_FRAME`).
 */
export const MaxFrame = { Default: 64 * 1024, Max: (4 << 20) - 8 } as const;
