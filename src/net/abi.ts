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
