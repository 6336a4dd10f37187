/**
 * Numbers the net folder shares with the native library. Each block names
 * the Rust source it mirrors; nothing else in `src/net/` spells these
 * numbers.
 *
 * @module
 */

// ---- timers and posting (kinds 13, 14) ----

/** Record kinds of timers and posts (`rust/src/net/timer.rs` `KIND_TIMER`, `rust/src/net/post.rs` `KIND_POST`). */
export const NetKind = { Timer: 13, Post: 14 } as const;

/** `mgnet_timer_add` flags (`rust/src/net/timer.rs`, `TIMER_REPEAT`, `TIMER_REF`, `TIMER_MAX_MS`). */
export const TimerFlag = { Repeat: 1, Ref: 2, MaxMs: 0x7fff_ffff } as const;

/**
 * POST record fields and flags, and the mailbox bounds (`rust/src/net/post.rs`,
 * module docs, `POST_TEXT`, `MAX_COUNT`, `MAX_BYTES`).
 */
export const Post = {
  Length: 20,
  Bytes: 24,
  FlagText: 1,
  MaxCount: 16 * 1024,
  MaxBytes: 16 << 20,
} as const;

// ---- raw TCP (kinds 8, 9) ----

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
