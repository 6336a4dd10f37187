/**
 * DNS resolution in the loop (`Manager.resolve`): A and AAAA queries sent
 * from a UDP socket of the manager's own loop, replies parsed natively
 * (`rust/src/net/dns.rs`: matching query id, server address and question;
 * CNAME chains followed), never a blocking `getaddrinfo`. The server is the
 * first `nameserver` of /etc/resolv.conf unless one is given. /etc/hosts is
 * not read; `localhost` and IP literals are answered without a query.
 *
 * @module
 */

import { Connection, type ConnectionHost, connInternals, type NetAddr } from "../core/connection.ts";
import { ManagerClosedError, MgnetError } from "../core/errors.ts";
import type { Loop } from "../core/loop.ts";
import type { Protocol, RecordView } from "../core/protocol.ts";
import { utf8Encoder } from "../core/bytes.ts";
import { AddrFlag, DnsRecord, DnsWant, NetKind } from "./udp_abi.ts";
import { formatIp, parseIp, parseServer } from "./udp.ts";

/** Why a resolution failed ({@linkcode DnsError.kind}). */
export type DnsErrorKind = "nxdomain" | "nodata" | "timeout" | "servfail" | "refused" | "format" | "io";

/**
 * A name did not resolve. `kind` says why: `nxdomain` (the name does not
 * exist), `nodata` (it has no address of the family asked), `timeout` (no
 * valid reply in time), `servfail`, `refused` (the server's RCODE),
 * `format` (the server could not parse the query, or its reply could not be
 * parsed), `io` (no nameserver configured, or the query could not be sent).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DnsError, Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * // A server that never answers: the timeout is the error.
 * const silent = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * const server = `udp://127.0.0.1:${(silent.addr as Deno.NetAddr).port}`;
 * await assert.rejects(mgr.resolve("example.test", { server, timeout: 50 }), (e) => e instanceof DnsError && e.kind === "timeout");
 * silent.close();
 * ```
 */
export class DnsError extends MgnetError {
  /** Why it failed. */
  readonly kind: DnsErrorKind;
  /** The name asked for. */
  readonly hostname: string;
  /**
   * Creates the error.
   *
   * @param hostname The name.
   * @param kind Why it failed.
   * @param detail More words for the message.
   */
  constructor(hostname: string, kind: DnsErrorKind, detail?: string) {
    super(`cannot resolve ${JSON.stringify(hostname)}: ${detail ?? kind}`, "Io");
    this.name = "DnsError";
    this.kind = kind;
    this.hostname = hostname;
  }
}

/** Options of `Manager.resolve`. */
export interface ResolveOptions {
  /**
   * The nameserver: `udp://IP:port`, `IP:port`, `[IPv6]:port` or a bare IP
   * (port 53). Default: the first `nameserver` line of /etc/resolv.conf.
   */
  server?: string;
  /** Longest wait for the answers, in ms (default 5000). */
  timeout?: number;
  /** 4: A records only, 6: AAAA only, 0 (default): both, IPv4 first. */
  family?: 0 | 4 | 6;
  /** Aborting it rejects with the signal's reason and stops the query. */
  signal?: AbortSignal;
}

/** One answer record's contents. */
interface Answer {
  rcode: number;
  addrs: string[];
}

/** A resolution in flight. */
interface Lookup {
  name: string;
  conn: Connection;
  want: number[];
  answers: Map<number, Answer>;
  finish(): void;
}

/** The DNS client's side of one loop: decodes DNS records into lookups. */
export class DnsProtocol implements Protocol {
  readonly name = "dns";
  readonly kinds: readonly number[] = [NetKind.Dns];
  /** Lookups by socket id. */
  readonly lookups: Map<number, Lookup> = new Map();

  decode(r: RecordView): undefined {
    const { u8, dv, off } = r;
    const lookup = this.lookups.get(r.id);
    if (!lookup) return undefined;
    const type = dv.getUint16(off + DnsRecord.Type, true);
    const count = u8[off + DnsRecord.Count];
    const addrs: string[] = [];
    for (let i = 0; i < count; i++) {
      addrs.push(formatIp(u8, off + DnsRecord.Addrs + 16 * i, type === DnsRecord.TypeAaaa));
    }
    lookup.answers.set(type, { rcode: u8[off + DnsRecord.Rcode], addrs });
    if (lookup.want.every((t) => lookup.answers.has(t))) lookup.finish();
    return undefined;
  }

  accept(host: ConnectionHost, slot: number, id: number, remote?: NetAddr, local?: NetAddr): Connection {
    const conn = new Connection(id, remote, local);
    connInternals.bind(conn, host, slot);
    return conn;
  }
}

/** The error an RCODE stands for. */
function rcodeError(name: string, rcode: number): DnsError {
  switch (rcode) {
    case 1:
      return new DnsError(name, "format", "the server could not parse the query (FORMERR)");
    case 2:
      return new DnsError(name, "servfail", "the server failed (SERVFAIL)");
    case 3:
      return new DnsError(name, "nxdomain", "no such name (NXDOMAIN)");
    case 5:
      return new DnsError(name, "refused", "the server refused the query (REFUSED)");
    case DnsRecord.Malformed:
      return new DnsError(name, "format", "the server's reply could not be parsed");
    default:
      return new DnsError(name, "servfail", `the server answered RCODE ${rcode}`);
  }
}

/** Addresses from the answers (IPv4 first), or the error they mean. */
function conclude(name: string, want: number[], answers: Map<number, Answer>): string[] | DnsError {
  const addrs: string[] = [];
  let error: DnsError | undefined;
  for (const t of want) {
    const a = answers.get(t);
    if (!a) continue;
    if (a.rcode !== 0) error ??= rcodeError(name, a.rcode);
    addrs.push(...a.addrs);
  }
  if (addrs.length > 0) return addrs;
  if (error) return error;
  return new DnsError(
    name,
    "nodata",
    `no ${want.length === 2 ? "A or AAAA" : want[0] === 1 ? "A" : "AAAA"} record`,
  );
}

/**
 * Resolves `name` to IP addresses with the loop's UDP sockets.
 *
 * @param loop The loop.
 * @param dns The loop's DNS protocol.
 * @param name A host name (or an IP literal, returned as is).
 * @param options Server, timeout, family, signal.
 * @returns The addresses as text.
 */
export function resolve(
  loop: Loop,
  dns: DnsProtocol,
  name: string,
  options: ResolveOptions = {},
): Promise<string[]> {
  if (typeof name !== "string") return Promise.reject(new TypeError("resolve(name): name must be a string"));
  const family = options.family ?? 0;
  if (family !== 0 && family !== 4 && family !== 6) {
    return Promise.reject(new TypeError("family must be 0, 4 or 6"));
  }
  const timeout = options.timeout ?? 5000;
  if (!(timeout > 0)) return Promise.reject(new RangeError("timeout must be a positive number of ms"));
  options.signal?.throwIfAborted();
  // Answers that need no query.
  const literal = new Uint8Array(16);
  const v6 = parseIp(name, literal);
  if (v6 !== undefined) {
    if ((family === 4 && v6) || (family === 6 && !v6)) {
      return Promise.reject(
        new DnsError(name, "nodata", `an IPv${v6 ? 6 : 4} address asked for family ${family}`),
      );
    }
    return Promise.resolve([formatIp(literal, 0, v6)]);
  }
  if (name.toLowerCase() === "localhost" || name.toLowerCase() === "localhost.") {
    return Promise.resolve(family === 4 ? ["127.0.0.1"] : family === 6 ? ["::1"] : ["127.0.0.1", "::1"]);
  }
  const want = family === 4 ? [DnsRecord.TypeA] : family === 6 ? [DnsRecord.TypeAaaa] : [
    DnsRecord.TypeA,
    DnsRecord.TypeAaaa,
  ];
  let server: ReturnType<typeof parseServer>;
  try {
    server = options.server === undefined ? undefined : parseServer(options.server, 53);
    if (options.server !== undefined && server === undefined) {
      throw new TypeError(`server ${JSON.stringify(options.server)} is not an IP address`);
    }
  } catch (e) {
    return Promise.reject(e);
  }
  const nameBytes = utf8Encoder.encode(name);
  const out = new Uint8Array(8);
  const flags = server ? (server.v6 ? AddrFlag.Ipv6 : 0) : AddrFlag.SystemServer;
  const types = (want.includes(DnsRecord.TypeA) ? DnsWant.A : 0) |
    (want.includes(DnsRecord.TypeAaaa) ? DnsWant.Aaaa : 0);
  let slot: number;
  try {
    slot = loop.check(
      loop.sym.mgnet_dns_query(
        loop.handle,
        server?.addr ?? new Uint8Array(16),
        server?.port ?? 53,
        flags,
        nameBytes,
        nameBytes.length,
        types,
        out,
      ),
    );
  } catch (e) {
    if (e instanceof MgnetError && e.code === "Invalid") return Promise.reject(e);
    if (e instanceof ManagerClosedError) return Promise.reject(e);
    return Promise.reject(new DnsError(name, "io", (e as Error).message));
  }
  const conn = new Connection(new DataView(out.buffer).getFloat64(0, true));
  const { promise, resolve, reject } = Promise.withResolvers<string[]>();
  let settled = false;
  const onAbort = () => settle(options.signal!.reason);
  const timer = setTimeout(() => {
    // Answers that did arrive still count (e.g. A answered, AAAA lost).
    const got = conclude(name, want, lookup.answers);
    settle(
      lookup.answers.size > 0 && Array.isArray(got)
        ? got
        : new DnsError(name, "timeout", `no answer within ${timeout} ms`),
    );
  }, timeout);
  const settle = (r: string[] | Error) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
    dns.lookups.delete(conn.id);
    conn.close();
    if (Array.isArray(r)) resolve(r);
    else reject(r);
  };
  const lookup: Lookup = {
    name,
    conn,
    want,
    answers: new Map(),
    finish: () => settle(conclude(name, want, lookup.answers)),
  };
  dns.lookups.set(conn.id, lookup);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  loop.adoptClient(conn, slot, {
    onOpen() {},
    onData() {},
    onError: (message) => settle(new DnsError(name, "io", message)),
    onClose: () =>
      settle(loop.closed ? new ManagerClosedError() : new DnsError(name, "io", "the socket closed")),
  });
  return promise;
}
