/**
 * Numbers the WebSocket protocol shares with the native library: its
 * record kinds, their fields and flags, opcodes and socket options. Each
 * block names the Rust source it mirrors; nothing else in `src/ws/` spells
 * these numbers.
 *
 * @module
 */

/** WebSocket record kinds (`rust/src/ws/record.rs`, `KIND_WS_*`). */
export const WsKind = { Open: 15, Message: 16, Control: 17, Close: 18 } as const;

/** Record fields (`rust/src/ws/record.rs`): a payload record has its length at 20, bytes at 24. */
export const WsRec = {
  Length: 20,
  Bytes: 24,
  /** WS_OPEN: protocol length @20, extensions length @24, strings @28. */
  OpenProtoLen: 20,
  OpenExtLen: 24,
  OpenStrings: 28,
  /** WS_CLOSE: the code in the header's aux field. */
  CloseCode: 2,
} as const;

/** Record flags (`rust/src/ws/record.rs`, `MSG_BINARY`, `CTRL_*`, `CLOSE_CLEAN`). */
export const WsFlag = { Binary: 1, Ping: 1, Pong: 2, Clean: 1 } as const;

/** Frame opcodes (`rust/src/ws/frame.rs`, `OP_*`). */
export const Opcode = { Text: 1, Binary: 2, Ping: 9, Pong: 10 } as const;

/** Socket option flags (`rust/src/ws/socket.rs`, `OPT_*`). */
export const WsOpt = { NoAutoPong: 1, Deflate: 2, DeflateClientReset: 4 } as const;

/** Defaults (`rust/src/ws/socket.rs`, `DEFAULT_MAX_MESSAGE`, `DEFAULT_CLOSE_TIMEOUT_MS`). */
export const WsDefault = { MaxMessage: 16 << 20, CloseTimeoutMs: 5000 } as const;
