/**
 * The HTTP server protocol as the loop sees it: it decodes request and
 * body records, gives accepted connections their {@linkcode HttpConnection}
 * and fails a streamed body whose connection closes.
 *
 * @module
 */

import { type Connection, type ConnectionHost, connInternals, type NetAddr } from "../core/connection.ts";
import type { Protocol, RecordView } from "../core/protocol.ts";
import { Body, HttpKind, ReqFlag } from "./abi.ts";
import { bodyCut, bodyRefused, BodySink } from "./request_body.ts";
import { HttpRequestEvent, requestInternals } from "./request_event.ts";
import { HttpConnection } from "./response.ts";

/** The URL schemes HTTP listeners take. */
export const HTTP_SCHEMES: readonly string[] = ["http"];

/** The HTTP server protocol of one loop. */
export class HttpProtocol implements Protocol {
  readonly name = "http";
  readonly kinds: readonly number[] = [HttpKind.Request, HttpKind.Body];
  /** Streaming request bodies, by connection id (one at a time per connection). */
  #bodies = new Map<number, BodySink>();

  decode(r: RecordView, conn: (slot: number, id: number) => Connection): HttpRequestEvent | undefined {
    const { u8, dv, off, id } = r;
    if (u8[off] === HttpKind.Request) {
      const c = conn(r.slot, id) as HttpConnection;
      const ev = new HttpRequestEvent(c, u8, dv, off);
      if (u8[off + 1] & ReqFlag.Streamed) {
        const sink = new BodySink(c);
        requestInternals.attachBody(ev, sink);
        this.#bodies.set(id, sink);
      }
      return ev;
    }
    const sink = this.#bodies.get(id);
    if (!sink) return undefined;
    const flags = u8[off + 1];
    if (flags & Body.FlagEnd) {
      this.#bodies.delete(id);
      sink.end();
    } else if (flags & Body.FlagError) {
      this.#bodies.delete(id);
      sink.fail(bodyRefused(dv.getUint16(off + Body.Status, true)));
    } else {
      const len = dv.getUint32(off + Body.Length, true);
      sink.push(u8.subarray(off + Body.Bytes, off + Body.Bytes + len));
    }
    return undefined;
  }

  accept(host: ConnectionHost, slot: number, id: number, remote?: NetAddr, local?: NetAddr): Connection {
    const conn = new HttpConnection(id, remote, local);
    connInternals.bind(conn, host, slot);
    return conn;
  }

  closed(conn: Connection): void {
    const body = this.#bodies.get(conn.id);
    if (body) {
      this.#bodies.delete(conn.id);
      body.fail(bodyCut(conn.id));
    }
  }

  dispose(): void {
    for (const [id, body] of this.#bodies) body.fail(bodyCut(id));
    this.#bodies.clear();
  }
}
