/**
 * UDP sockets: `Manager.listen("udp://host:port")` binds one; its datagrams
 * arrive as `datagram` events carrying the bytes and the sender's address;
 * `send(bytes, to)` sends one datagram at once. A datagram larger than the
 * socket's `maxDatagram` is reported as a `datagram-oversized` event with
 * its size, never delivered cut short.
 *
 * @module
 */

import { Connection, type ConnectionHost, connInternals, type NetAddr } from "../core/connection.ts";
import { MgnetError } from "../core/errors.ts";
import type { Loop } from "../core/loop.ts";
import type { Protocol, RecordView } from "../core/protocol.ts";
import { parseListenUrl } from "../core/address.ts";
import { utf8Encoder } from "../core/bytes.ts";
import { AddrFlag, Datagram, DatagramLimit, NetKind, UdpBindFlag, UdpBindOut } from "./udp_abi.ts";

/** The URL schemes UDP sockets take. */
export const UDP_SCHEMES: readonly string[] = ["udp"];

/** Options of a UDP socket ({@linkcode UdpSocket}), given to `Manager.listen("udp://…", options)`. */
export interface UdpOptions {
  /**
   * Largest datagram delivered and sent, in bytes (default 65,507, the
   * largest UDP payload over IPv4; at most 65,527). A larger datagram that
   * arrives is reported as a `datagram-oversized` event; sending a larger
   * one throws {@linkcode DatagramTooLargeError}.
   */
  maxDatagram?: number;
  /** Allow sending to broadcast addresses (`SO_BROADCAST`; default false). */
  broadcast?: boolean;
  /**
   * Receive buffer to ask the kernel for, in bytes (`SO_RCVBUF`; default:
   * the system's, 208 KiB on Linux). A burst larger than the buffer is
   * dropped by the kernel. Linux caps it at `net.core.rmem_max` unless the
   * process may use `SO_RCVBUFFORCE` (CAP_NET_ADMIN); read the granted size
   * from {@linkcode UdpSocket.recvBuffer}.
   */
  recvBuffer?: number;
}

/** Callbacks for a UDP socket, instead of `for await` (`Manager.listen("udp://…", { onDatagram })`). */
export interface UdpHandlers {
  /** Called for every datagram. */
  onDatagram(ev: DatagramEvent): void;
  /** A datagram over `maxDatagram` arrived (it was dropped). */
  onOversized?(ev: OversizedDatagramEvent): void;
  /** The socket failed (a close follows). */
  onError?(ev: { type: "error"; conn: Connection; message: string }): void;
  /** The socket closed. */
  onClose?(ev: { type: "close"; conn: Connection }): void;
}

/** Options and handlers of `Manager.listen("udp://…")`. */
export type UdpListenOptions = UdpOptions & Partial<UdpHandlers>;

/** Where a datagram goes: an IP address (no name) and a port. */
export interface UdpTarget {
  /** An IPv4 or IPv6 address (IPv6 with or without brackets). */
  hostname: string;
  /** 0–65535. */
  port: number;
}

/**
 * Thrown when a datagram to send is larger than the socket's `maxDatagram`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DatagramTooLargeError, Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const sock = mgr.listen("udp://127.0.0.1:0", { maxDatagram: 4 });
 * assert.throws(
 *   () => sock.send(new Uint8Array(5), { hostname: "127.0.0.1", port: sock.port }),
 *   (e) => e instanceof DatagramTooLargeError && e.size === 5 && e.limit === 4,
 * );
 * ```
 */
export class DatagramTooLargeError extends MgnetError {
  /** The datagram's size in bytes. */
  readonly size: number;
  /** The socket's limit. */
  readonly limit: number;
  /**
   * Creates the error.
   *
   * @param size The datagram's size.
   * @param limit The socket's `maxDatagram`.
   */
  constructor(size: number, limit: number) {
    super(`datagram of ${size} bytes is over the socket's limit of ${limit} bytes (maxDatagram)`, "Invalid");
    this.name = "DatagramTooLargeError";
    this.size = size;
    this.limit = limit;
  }
}

// One parsed address, reused while the same hostname is sent to again.
const scratch = new Uint8Array(16);
let scratchHost = "";
let scratchV6 = false;

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses an IPv4 literal into `out[0..4]`; false if it is not one. */
function parseIpv4(s: string, out: Uint8Array, at: number): boolean {
  const m = IPV4.exec(s);
  if (!m) return false;
  for (let i = 0; i < 4; i++) {
    const v = Number(m[i + 1]);
    if (v > 255) return false;
    out[at + i] = v;
  }
  return true;
}

/** Parses an IPv6 literal into `out[0..16]`; false if it is not one. */
function parseIpv6(s: string, out: Uint8Array): boolean {
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  const halves = s.split("::");
  if (halves.length > 2) return false;
  const words: number[][] = [];
  for (const h of halves) {
    const w: number[] = [];
    if (h !== "") {
      const parts = h.split(":");
      for (let i = 0; i < parts.length; i++) {
        const p = parts[i];
        if (p.includes(".") && i === parts.length - 1) {
          const v4 = new Uint8Array(4);
          if (!parseIpv4(p, v4, 0)) return false;
          w.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
        } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) {
          w.push(parseInt(p, 16));
        } else {
          return false;
        }
      }
    }
    words.push(w);
  }
  let all: number[];
  if (halves.length === 2) {
    const fill = 8 - words[0].length - words[1].length;
    if (fill < 1) return false;
    all = [...words[0], ...new Array(fill).fill(0), ...words[1]];
  } else {
    all = words[0];
  }
  if (all.length !== 8) return false;
  for (let i = 0; i < 8; i++) {
    out[2 * i] = all[i] >> 8;
    out[2 * i + 1] = all[i] & 0xff;
  }
  return true;
}

/**
 * Parses an IP literal into 16 bytes (IPv4 in the first 4).
 *
 * @param host An IPv4 or IPv6 address (brackets allowed).
 * @param out Where the bytes go.
 * @returns Whether it is IPv6, or undefined if it is no IP address.
 */
export function parseIp(host: string, out: Uint8Array): boolean | undefined {
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (parseIpv4(host, out, 0)) return false;
  if (host.includes(":") && parseIpv6(host, out)) return true;
  return undefined;
}

/**
 * Formats 16 address bytes as text.
 *
 * @param u8 The bytes.
 * @param off Where they start.
 * @param v6 IPv6 (else IPv4 in the first 4).
 * @returns The address.
 */
export function formatIp(u8: Uint8Array, off: number, v6: boolean): string {
  if (!v6) return `${u8[off]}.${u8[off + 1]}.${u8[off + 2]}.${u8[off + 3]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((u8[off + i] << 8) | u8[off + i + 1]);
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

/** The private parts of a UDP socket and its events, for code inside `src/`. */
interface UdpInternals {
  /** Sends from raw record bytes (the sender of a datagram event). */
  sendRaw(sock: UdpSocket, data: Uint8Array, u8: Uint8Array, off: number, port: number, v6: boolean): boolean;
}

let udpInternals: UdpInternals;

/**
 * A bound UDP socket, made by `Manager.listen("udp://host:port")`. Its
 * datagrams arrive as `datagram` events (or its `onDatagram` handler);
 * {@linkcode send} sends one datagram at once. Close it with `close()`;
 * using it afterwards throws `ConnectionClosedError`.
 *
 * @example Echo one datagram back to a Deno socket
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const sock = mgr.listen("udp://127.0.0.1:0");
 * const peer = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * await peer.send(new TextEncoder().encode("ping"), { transport: "udp", hostname: "127.0.0.1", port: sock.port });
 * for await (const ev of mgr) {
 *   if (ev.type === "datagram") {
 *     assert.equal(ev.from.port, (peer.addr as Deno.NetAddr).port);
 *     ev.socket.send(ev.bytes, ev.from);
 *     break;
 *   }
 * }
 * const [bytes] = await peer.receive();
 * assert.equal(new TextDecoder().decode(bytes), "ping");
 * peer.close();
 * ```
 */
export class UdpSocket extends Connection {
  /** The port bound (useful with port 0). */
  readonly port: number;
  /** The URL passed to `listen`. */
  readonly url: string;
  /** Largest datagram delivered or sent (bytes). */
  readonly maxDatagram: number;
  /** Receive buffer granted by the kernel (bytes, as `getsockopt` reports it). */
  readonly recvBuffer: number;
  /** Send buffer of the socket (bytes, as `getsockopt` reports it). */
  readonly sendBuffer: number;
  #ipv6: boolean;

  static {
    udpInternals = {
      sendRaw: (s, data, u8, off, port, v6) => s.#send(data, u8, off, port, v6),
    };
  }

  /**
   * Made by `Manager.listen`; not constructed by users.
   *
   * @param id The socket's id.
   * @param local The bound address.
   * @param url The URL passed to `listen`.
   * @param info Limits and buffer sizes.
   */
  constructor(
    id: number,
    local: NetAddr,
    url: string,
    info: { maxDatagram: number; recvBuffer: number; sendBuffer: number; ipv6: boolean },
  ) {
    super(id, undefined, local);
    this.port = local.port;
    this.url = url;
    this.maxDatagram = info.maxDatagram;
    this.recvBuffer = info.recvBuffer;
    this.sendBuffer = info.sendBuffer;
    this.#ipv6 = info.ipv6;
  }

  /**
   * Sends one datagram to `to` at once. Over an IPv6 socket bound to `[::]`
   * IPv4 peers are reachable too.
   *
   * @param data The bytes (a string is sent as UTF-8).
   * @param to An IP address and port, e.g. a datagram event's `from`.
   * @returns True if the kernel took it; false if the socket's send buffer
   *   was full and the datagram was dropped (as a network may drop it).
   * @throws {DatagramTooLargeError} over `maxDatagram`; {TypeError} for a
   *   target that is not an IP address and port; `ConnectionClosedError`
   *   once the socket is closed; `MgnetError` (`Io`) with the kernel's reason
   *   (e.g. a broadcast address without the `broadcast` option), or
   *   (`Invalid`) for an IPv6 target from an IPv4 socket.
   */
  send(data: Uint8Array | string, to: UdpTarget): boolean {
    const bytes = typeof data === "string" ? utf8Encoder.encode(data) : data;
    if (to === null || typeof to !== "object") {
      throw new TypeError("send(data, to): `to` is { hostname, port }");
    }
    const host = to.hostname;
    if (host !== scratchHost) {
      const v6 = typeof host === "string" ? parseIp(host, scratch) : undefined;
      if (v6 === undefined) {
        scratchHost = "";
        throw new TypeError(`send: ${JSON.stringify(host)} is not an IP address (resolve names first)`);
      }
      scratchHost = host;
      scratchV6 = v6;
    }
    return this.#send(bytes, scratch, 0, to.port, scratchV6);
  }

  #send(data: Uint8Array, addr: Uint8Array, off: number, port: number, v6: boolean): boolean {
    if (data.length > this.maxDatagram) throw new DatagramTooLargeError(data.length, this.maxDatagram);
    if (!(port >= 0 && port <= 65535 && Number.isInteger(port))) {
      throw new TypeError(`send: port ${port} is not from 0 to 65535`);
    }
    connInternals.assertOpen(this);
    const host = connInternals.host(this);
    const rc = host.sym.mgnet_udp_send(
      host.handle,
      connInternals.slot(this),
      this.id,
      addr,
      off,
      port,
      v6 ? AddrFlag.Ipv6 : 0,
      data,
      0,
      data.length,
    );
    if (rc < 0) host.check(rc);
    return rc === 1;
  }

  /** True if the socket is IPv6 (bound to an IPv6 address). */
  get ipv6(): boolean {
    return this.#ipv6;
  }
}

/**
 * A datagram received by a {@linkcode UdpSocket}. `bytes` is a view that
 * stays valid for as long as it is held.
 */
export class DatagramEvent {
  /** Discriminant. */
  readonly type = "datagram" as const;
  /** The socket it arrived on. */
  readonly socket: UdpSocket;
  #u8: Uint8Array;
  #off: number;
  #len: number;
  #bytes: Uint8Array | undefined;
  #from: NetAddr | undefined;

  /**
   * Made by mgnet when a datagram arrives; not constructed by users.
   *
   * @param socket The socket.
   * @param u8 The batch holding the record.
   * @param off The record's offset.
   * @param len The record's length.
   */
  constructor(socket: UdpSocket, u8: Uint8Array, off: number, len: number) {
    this.socket = socket;
    this.#u8 = u8;
    this.#off = off;
    this.#len = len;
  }

  /** The socket (the same as {@linkcode socket}; every event has a `conn`). */
  get conn(): UdpSocket {
    return this.socket;
  }

  /** The datagram's bytes. */
  get bytes(): Uint8Array {
    return this.#bytes ??= this.#u8.subarray(this.#off + Datagram.Bytes, this.#off + this.#len);
  }

  /** The sender's address and port (`transport: "udp"`). */
  get from(): NetAddr {
    const u8 = this.#u8, off = this.#off;
    return this.#from ??= {
      transport: "udp",
      hostname: formatIp(u8, off + Datagram.Addr, (u8[off + 1] & Datagram.FlagIpv6) !== 0),
      port: u8[off + Datagram.Port] | (u8[off + Datagram.Port + 1] << 8),
    };
  }

  /**
   * Sends a datagram back to the sender, from the socket it arrived on.
   *
   * @param data The bytes (a string is sent as UTF-8).
   * @returns As {@linkcode UdpSocket.send}.
   */
  reply(data: Uint8Array | string): boolean {
    const u8 = this.#u8, off = this.#off;
    const bytes = typeof data === "string" ? utf8Encoder.encode(data) : data;
    return udpInternals.sendRaw(
      this.socket,
      bytes,
      u8,
      off + Datagram.Addr,
      u8[off + Datagram.Port] | (u8[off + Datagram.Port + 1] << 8),
      (u8[off + 1] & Datagram.FlagIpv6) !== 0,
    );
  }
}

/**
 * A datagram larger than the socket's `maxDatagram` arrived; it was
 * dropped, and this says who sent it and how large it was.
 */
export interface OversizedDatagramEvent {
  /** Discriminant. */
  readonly type: "datagram-oversized";
  /** The socket it arrived on. */
  readonly socket: UdpSocket;
  /** The same socket. */
  readonly conn: UdpSocket;
  /** The sender. */
  readonly from: NetAddr;
  /** The datagram's size in bytes. */
  readonly size: number;
  /** The socket's `maxDatagram`. */
  readonly limit: number;
}

/** The UDP protocol of one loop: decodes DATAGRAM records. */
export class UdpProtocol implements Protocol {
  readonly name = "udp";
  readonly kinds: readonly number[] = [NetKind.Datagram];

  decode(
    r: RecordView,
    conn: (slot: number, id: number) => Connection,
  ): DatagramEvent | OversizedDatagramEvent {
    const { u8, dv, off } = r;
    const socket = conn(r.slot, r.id) as UdpSocket;
    const flags = u8[off + 1];
    if (flags & Datagram.FlagOversized) {
      const from: NetAddr = {
        transport: "udp",
        hostname: formatIp(u8, off + Datagram.Addr, (flags & Datagram.FlagIpv6) !== 0),
        port: dv.getUint16(off + Datagram.Port, true),
      };
      const size = dv.getUint32(off + Datagram.Size, true);
      return { type: "datagram-oversized", socket, conn: socket, from, size, limit: socket.maxDatagram };
    }
    return new DatagramEvent(socket, u8, off, dv.getUint32(off + 4, true));
  }

  accept(host: ConnectionHost, slot: number, id: number, remote?: NetAddr, local?: NetAddr): Connection {
    // UDP sockets are adopted when bound, never accepted.
    const conn = new Connection(id, remote, local);
    connInternals.bind(conn, host, slot);
    return conn;
  }
}

/**
 * Binds a UDP socket on `loop` (`udp://host:port`) for `protocol`.
 *
 * @param loop The loop.
 * @param protocol The loop's UDP protocol.
 * @param url `udp://host:port`.
 * @param options Size limit, broadcast, receive buffer.
 * @returns The socket.
 */
export function bindUdp(loop: Loop, protocol: UdpProtocol, url: string, options: UdpOptions = {}): UdpSocket {
  const a = parseListenUrl(url, UDP_SCHEMES);
  const ipv6 = a.host.startsWith("[");
  const limit = ipv6 ? DatagramLimit.V6 : DatagramLimit.V4;
  const max = options.maxDatagram ?? DatagramLimit.V4;
  if (!Number.isInteger(max) || max < 1 || max > limit) {
    throw new RangeError(`maxDatagram must be an integer from 1 to ${limit}`);
  }
  const rcv = options.recvBuffer ?? 0;
  if (!Number.isInteger(rcv) || rcv < 0 || rcv > 0x3fff_ffff) {
    throw new RangeError("recvBuffer must be a non-negative integer (bytes)");
  }
  const bytes = utf8Encoder.encode(`udp://${a.host}:${a.port}`);
  const out = new Uint8Array(UdpBindOut.Size);
  const flags = options.broadcast ? UdpBindFlag.Broadcast : 0;
  const slot = loop.check(loop.sym.mgnet_udp_bind(loop.handle, bytes, bytes.length, max, flags, rcv, out));
  const dv = new DataView(out.buffer);
  const port = dv.getUint16(UdpBindOut.Port, true);
  const host = a.host === "localhost" ? "127.0.0.1" : a.host.replace(/^\[|\]$/g, "");
  const sock = new UdpSocket(
    dv.getFloat64(UdpBindOut.Id, true),
    { transport: "udp", hostname: host, port },
    url,
    {
      maxDatagram: max,
      recvBuffer: dv.getUint32(UdpBindOut.RecvBuffer, true),
      sendBuffer: dv.getUint32(UdpBindOut.SendBuffer, true),
      ipv6: out[UdpBindOut.Ipv6] === 1,
    },
  );
  loop.adopt(sock, slot, protocol);
  return sock;
}

/**
 * Parses a server given as `udp://host:port`, `host:port`, `[v6]:port` or
 * a bare IP address (port `defaultPort`).
 *
 * @param server The server.
 * @param defaultPort The port when none is given.
 * @returns The address bytes, family and port, or undefined for a name.
 */
export function parseServer(
  server: string,
  defaultPort: number,
): { addr: Uint8Array; v6: boolean; port: number; host: string } | undefined {
  let s = server.startsWith("udp://") ? server.slice(6) : server;
  if (s.endsWith("/")) s = s.slice(0, -1);
  let host = s, port = defaultPort;
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? /^([^:]+)(?::(\d+))?$/.exec(s);
  if (m) {
    host = m[1];
    if (m[2] !== undefined) port = Number(m[2]);
  }
  if (!(port >= 0 && port <= 65535)) {
    throw new TypeError(`${JSON.stringify(server)}: the port is out of range`);
  }
  const addr = new Uint8Array(16);
  const v6 = parseIp(host, addr);
  if (v6 === undefined) return undefined;
  return { addr, v6, port, host };
}
