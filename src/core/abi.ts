/**
 * Numbers the core shares with the native library: status codes, the
 * generic record kinds of an event batch and their field offsets. Each
 * block names the Rust source it mirrors; nothing else in `src/` spells
 * these numbers. Protocol records (HTTP, ...) keep their numbers in their
 * own folder's `abi.ts`.
 *
 * @module
 */

/** The name of a native status code, e.g. `"Closed"`. */
export type StatusName = "BadHandle" | "Closed" | "Invalid" | "State" | "Io" | "Panic" | "NoMem";

/** Negative status codes of every native call (`rust/src/core/error.rs`, `Status`). */
export const Status = {
  BadHandle: -1,
  Closed: -2,
  Invalid: -3,
  State: -4,
  Io: -5,
  Panic: -6,
  NoMem: -7,
} as const satisfies Record<StatusName, number>;

/**
 * The core's record kinds of an event batch (`rust/src/core/event.rs`,
 * `KIND_*`). Other kinds belong to the protocol that registered them.
 */
export const Kind = {
  Open: 1,
  Close: 3,
  Error: 4,
  Drain: 5,
  Data: 6,
  /** A TLS upgrade (startTls) ended: flag {@linkcode SECURE_FAILED} if it failed (message as in Error). */
  Secure: 19,
} as const;

/** The flag of a failed upgrade in a `Kind.Secure` record (`event.rs`, `SECURE_FAILED`). */
export const SECURE_FAILED = 1;

/** The common 16-byte record header (`rust/src/core/event.rs`, module docs). */
export const Header = {
  /** u8: record kind. */
  Kind: 0,
  /** u8: kind-specific flags. */
  Flags: 1,
  /** u16: kind-specific. */
  Aux: 2,
  /** u32: record length, header included. */
  Length: 4,
  /** u32 + u32: connection id, low and high halves. */
  IdLow: 8,
  IdHigh: 12,
  /** u32: native slot of the connection (every record kind has it here). */
  Slot: 16,
} as const;

/** OPEN record (`rust/src/core/event.rs`, `EventBuf::open`). */
export const Open = {
  /** u32 + u32: id of the listener that accepted the connection. */
  ListenerLow: 20,
  ListenerHigh: 24,
  /** u16: remote port; u16: local port. */
  RemotePort: 28,
  LocalPort: 30,
  /** 16 bytes each: remote and local address (IPv4 in the first 4). */
  RemoteAddr: 32,
  LocalAddr: 48,
  /** Flag: the addresses are IPv6. */
  FlagIpv6: 1,
} as const;

/** DATA and ERROR records: a u32 length at 20, the bytes from 24. */
export const Payload = {
  Length: 20,
  Bytes: 24,
} as const;

/** Output of `mgnet_listen` (16 bytes): f64 id, u16 port. */
export const ListenOut = { Id: 0, Port: 8, Size: 16 } as const;

/** `mgnet_connect` flags (`rust/src/lib.rs`, `CONNECT_*`). */
export const ConnectFlag = { Tls: 1, Insecure: 2, TlsSpec: 4 } as const;

/**
 * Field tags of a TLS settings buffer (`rust/src/tls/config.rs`, `tag`):
 * each field is u32 tag, u32 length, the bytes (little-endian).
 */
export const TlsField = {
  Cert: 1,
  Key: 2,
  Ca: 3,
  RequestCert: 4,
  Sni: 5,
  Alpn: 6,
  Name: 7,
  Insecure: 8,
} as const;

/** Positions in the `mgnet_stats` output, as f64 (`rust/src/lib.rs`, `mgnet_stats`). */
export const StatsOut = { Polls: 0, Accepted: 1, Requests: 2, CacheHits: 3, Count: 4 } as const;
