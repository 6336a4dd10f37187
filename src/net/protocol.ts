/**
 * The TCP protocol as the loop sees it: it decodes DATA and END records
 * into `data` and `end` events (or hands them to a connection's own
 * iterator), gives accepted connections their {@linkcode TcpConnection},
 * and ends own iterators when connections close.
 *
 * @module
 */

import { type Connection, type ConnectionHost, connInternals, type NetAddr } from "../core/connection.ts";
import type { Protocol, RecordView } from "../core/protocol.ts";
import { TcpData, TcpKind } from "./abi.ts";
import { TcpConnection, TcpDataEvent, type TcpEndEvent, tcpInternals } from "./tcp.ts";

/** The URL schemes TCP listeners take. */
export const TCP_SCHEMES: readonly string[] = ["tcp"];

/** The TCP protocol of one loop. */
export class TcpProtocol implements Protocol {
  readonly name = "tcp";
  readonly kinds: readonly number[] = [TcpKind.Data, TcpKind.End];
  /** Accepted connections still open, by id (their own iterators end with the loop). */
  #conns = new Map<number, TcpConnection>();

  decode(
    r: RecordView,
    conn: (slot: number, id: number) => Connection,
  ): TcpDataEvent | TcpEndEvent | undefined {
    const { u8, dv, off } = r;
    const c = conn(r.slot, r.id) as TcpConnection;
    let ev: TcpDataEvent | TcpEndEvent;
    if (u8[off] === TcpKind.Data) {
      // Plaintext that came after the point of a TLS upgrade (in the same
      // read as the command that agreed on it) is dropped, never delivered.
      if (connInternals.upgradePending(c)) return undefined;
      const start = off + TcpData.Bytes;
      ev = new TcpDataEvent(c, u8.subarray(start, start + dv.getUint32(off + TcpData.Length, true)));
    } else {
      ev = { type: "end", conn: c };
    }
    return tcpInternals.offer(c, ev) ? undefined : ev;
  }

  accept(host: ConnectionHost, slot: number, id: number, remote?: NetAddr, local?: NetAddr): Connection {
    const c = new TcpConnection(id, remote, local);
    connInternals.bind(c, host, slot);
    this.#conns.set(id, c);
    return c;
  }

  closed(conn: Connection): void {
    this.#conns.delete(conn.id);
    tcpInternals.closed(conn as TcpConnection);
  }

  dispose(): void {
    for (const c of this.#conns.values()) tcpInternals.closed(c);
    this.#conns.clear();
  }
}
