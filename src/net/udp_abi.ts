/**
 * Numbers the UDP, DNS and SNTP code shares with the native library: record
 * kinds, field offsets and call flags. Each block names the Rust source it
 * mirrors; nothing else in `src/net/` spells these numbers.
 *
 * @module
 */

/** Record kinds (`rust/src/net/udp.rs` `KIND_DATAGRAM`, `dns.rs` `KIND_DNS`, `sntp.rs` `KIND_SNTP`). */
export const NetKind = { Datagram: 10, Dns: 11, Sntp: 12 } as const;

/** DATAGRAM record (`rust/src/net/udp.rs`, module docs and `datagram_record`). */
export const Datagram = {
  /** u32: the datagram's real size (also when oversized). */
  Size: 20,
  /** u16: the sender's port. */
  Port: 24,
  /** 16 bytes: the sender's address (IPv4 in the first 4). */
  Addr: 28,
  /** The bytes (none when oversized). */
  Bytes: 44,
  /** Header flag: the sender's address is IPv6 (`FLAG_IPV6`). */
  FlagIpv6: 1,
  /** Header flag: larger than the socket's limit; no bytes (`FLAG_OVERSIZED`). */
  FlagOversized: 2,
} as const;

/** Output of `mgnet_udp_bind` (`rust/src/lib.rs`, `mgnet_udp_bind`): 24 bytes. */
export const UdpBindOut = { Id: 0, Port: 8, Ipv6: 10, RecvBuffer: 12, SendBuffer: 16, Size: 24 } as const;

/** `mgnet_udp_bind` flags (`rust/src/net/udp.rs`, `BIND_BROADCAST`). */
export const UdpBindFlag = { Broadcast: 1 } as const;

/**
 * Address and query flags of `mgnet_udp_send`, `mgnet_dns_query`,
 * `mgnet_sntp_query` (`rust/src/lib.rs`, `ADDR_IPV6`, `DNS_SYSTEM_SERVER`,
 * `DNS_WANT_A`, `DNS_WANT_AAAA`).
 */
export const AddrFlag = { Ipv6: 1, SystemServer: 2 } as const;
/** `mgnet_dns_query` types (`rust/src/lib.rs`, `DNS_WANT_*`). */
export const DnsWant = { A: 1, Aaaa: 2 } as const;

/** Size limits (`rust/src/net/udp.rs`, `MAX_DATAGRAM_V4`, `MAX_DATAGRAM_V6`). */
export const DatagramLimit = { V4: 65_507, V6: 65_527 } as const;

/** DNS record (`rust/src/net/dns.rs`, module docs and `dns_record`). */
export const DnsRecord = {
  /** u16: the query type (`TYPE_A` 1, `TYPE_AAAA` 28). */
  Type: 20,
  /** u8: the reply's RCODE, or `Malformed`. */
  Rcode: 22,
  /** u8: how many addresses follow. */
  Count: 23,
  /** u32: the smallest TTL of the answer chain (s). */
  Ttl: 24,
  /** 16 bytes per address (IPv4 in the first 4). */
  Addrs: 28,
  TypeA: 1,
  TypeAaaa: 28,
  /** `RCODE_MALFORMED`: a matching reply that could not be parsed. */
  Malformed: 255,
} as const;

/** SNTP record (`rust/src/net/sntp.rs`, module docs and `SNTP_*`). */
export const SntpRecord = {
  /** u8: `Ok`, `Kod` or `Unsync`. */
  Status: 20,
  /** u8: the server's stratum. */
  Stratum: 21,
  /** f64: clock offset (ms). */
  Offset: 24,
  /** f64: round-trip delay (ms). */
  Delay: 32,
  /** f64: the server's time when the reply was read (ms since the Unix epoch). */
  Time: 40,
  /** 4 bytes: reference id, or the kiss code of a kiss-of-death. */
  Code: 48,
  Ok: 0,
  Kod: 1,
  Unsync: 2,
} as const;
