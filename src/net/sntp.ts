/**
 * SNTP (RFC 4330) in the loop (`Manager.sntp`): one request from a UDP
 * socket of the manager's loop; the reply is timed and checked natively
 * (`rust/src/net/sntp.rs`), which gives the clock offset and round-trip
 * delay from the four timestamps.
 *
 * @module
 */

import { Connection, type ConnectionHost, connInternals, type NetAddr } from "../core/connection.ts";
import { ManagerClosedError, MgnetError } from "../core/errors.ts";
import type { Loop } from "../core/loop.ts";
import type { Protocol, RecordView } from "../core/protocol.ts";
import { AddrFlag, NetKind, SntpRecord } from "./udp_abi.ts";
import { parseServer } from "./udp.ts";
import { type DnsProtocol, resolve } from "./dns.ts";

/** What an SNTP server said about our clock. */
export interface SntpResult {
  /**
   * How far the server's clock is ahead of ours, in ms:
   * ((T2 − T1) + (T3 − T4)) / 2. Add it to `Date.now()` for the server's time.
   */
  offset: number;
  /** The round trip minus the server's own time, in ms: (T4 − T1) − (T3 − T2). */
  delay: number;
  /** The server's time when its reply was read, in ms since the Unix epoch. */
  time: number;
  /** The server's stratum (1: a reference clock; 2–15: synchronised to one). */
  stratum: number;
  /** The server asked. */
  server: NetAddr;
}

/** Why a time request failed ({@linkcode SntpError.kind}). */
export type SntpErrorKind = "timeout" | "kod" | "unsynchronized" | "io";

/**
 * A time request failed: `timeout` (no valid reply in time), `kod` (the
 * server sent a kiss-of-death; `code` holds its kiss code, e.g. `RATE`),
 * `unsynchronized` (the server's clock is not synchronised), `io`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager, SntpError } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const silent = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * const server = `udp://127.0.0.1:${(silent.addr as Deno.NetAddr).port}`;
 * await assert.rejects(mgr.sntp(server, { timeout: 50 }), (e) => e instanceof SntpError && e.kind === "timeout");
 * silent.close();
 * ```
 */
export class SntpError extends MgnetError {
  /** Why it failed. */
  readonly kind: SntpErrorKind;
  /** The kiss code of a kiss-of-death (e.g. `"RATE"`, `"DENY"`), else `""`. */
  readonly kissCode: string;
  /**
   * Creates the error.
   *
   * @param kind Why it failed.
   * @param message What to say.
   * @param kissCode A kiss-of-death's code.
   */
  constructor(kind: SntpErrorKind, message: string, kissCode = "") {
    super(message, "Io");
    this.name = "SntpError";
    this.kind = kind;
    this.kissCode = kissCode;
  }
}

/** Options of `Manager.sntp`. */
export interface SntpOptions {
  /** Longest wait for the reply, in ms (default 5000). */
  timeout?: number;
  /** Aborting it rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** A request in flight: settled by its record. */
type Pending = (r: SntpResult | SntpError) => void;

/** The SNTP client's side of one loop: decodes SNTP records. */
export class SntpProtocol implements Protocol {
  readonly name = "sntp";
  readonly kinds: readonly number[] = [NetKind.Sntp];
  /** Requests by socket id, with the server asked. */
  readonly pending: Map<number, { settle: Pending; server: NetAddr }> = new Map();

  decode(r: RecordView): undefined {
    const { u8, dv, off } = r;
    const p = this.pending.get(r.id);
    if (!p) return undefined;
    const status = u8[off + SntpRecord.Status];
    const code = String.fromCharCode(...u8.subarray(off + SntpRecord.Code, off + SntpRecord.Code + 4))
      .replace(/\0+$/, "");
    if (status === SntpRecord.Kod) {
      p.settle(new SntpError("kod", `the server sent a kiss-of-death (${code})`, code));
    } else if (status === SntpRecord.Unsync) {
      p.settle(new SntpError("unsynchronized", "the server's clock is not synchronised"));
    } else {
      p.settle({
        offset: dv.getFloat64(off + SntpRecord.Offset, true),
        delay: dv.getFloat64(off + SntpRecord.Delay, true),
        time: dv.getFloat64(off + SntpRecord.Time, true),
        stratum: u8[off + SntpRecord.Stratum],
        server: p.server,
      });
    }
    return undefined;
  }

  accept(host: ConnectionHost, slot: number, id: number, remote?: NetAddr, local?: NetAddr): Connection {
    const conn = new Connection(id, remote, local);
    connInternals.bind(conn, host, slot);
    return conn;
  }
}

/**
 * Asks an SNTP server for the time.
 *
 * @param loop The loop.
 * @param sntp The loop's SNTP protocol.
 * @param dns The loop's DNS protocol (for a server given by name).
 * @param server `udp://host:port`, `host:port` or `host` (port 123).
 * @param options Timeout and signal.
 * @returns The offset, delay and time.
 */
export async function sntpQuery(
  loop: Loop,
  sntp: SntpProtocol,
  dns: DnsProtocol,
  server: string,
  options: SntpOptions = {},
): Promise<SntpResult> {
  const timeout = options.timeout ?? 5000;
  if (!(timeout > 0)) throw new RangeError("timeout must be a positive number of ms");
  options.signal?.throwIfAborted();
  const started = performance.now();
  let s = parseServer(server, 123);
  if (s === undefined) {
    // A name: resolve it first, within the same time budget.
    const m = /^(?:udp:\/\/)?([^:/]+)(?::(\d+))?\/?$/.exec(server);
    if (!m) throw new TypeError(`server ${JSON.stringify(server)} is not host[:port]`);
    const [addr] = await resolve(loop, dns, m[1], { timeout, family: 4, signal: options.signal });
    s = parseServer(`${addr}:${m[2] ?? 123}`, 123)!;
  }
  const left = timeout - (performance.now() - started);
  if (left <= 0) throw new SntpError("timeout", `no reply within ${timeout} ms`);
  const out = new Uint8Array(8);
  let slot: number;
  try {
    slot = loop.check(loop.sym.mgnet_sntp_query(loop.handle, s.addr, s.port, s.v6 ? AddrFlag.Ipv6 : 0, out));
  } catch (e) {
    if (e instanceof ManagerClosedError) throw e;
    throw new SntpError("io", (e as Error).message);
  }
  const conn = new Connection(new DataView(out.buffer).getFloat64(0, true));
  const { promise, resolve: ok, reject } = Promise.withResolvers<SntpResult>();
  let settled = false;
  const onAbort = () => settle(options.signal!.reason);
  const timer = setTimeout(() => settle(new SntpError("timeout", `no reply within ${timeout} ms`)), left);
  const settle = (r: SntpResult | Error) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
    sntp.pending.delete(conn.id);
    conn.close();
    if (r instanceof Error) reject(r);
    else ok(r);
  };
  sntp.pending.set(conn.id, { settle, server: { transport: "udp", hostname: s.host, port: s.port } });
  options.signal?.addEventListener("abort", onAbort, { once: true });
  loop.adoptClient(conn, slot, {
    onOpen() {},
    onData() {},
    onError: (message) => settle(new SntpError("io", message)),
    onClose: () => settle(loop.closed ? new ManagerClosedError() : new SntpError("io", "the socket closed")),
  });
  return promise;
}
