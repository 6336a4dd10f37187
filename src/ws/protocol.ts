/**
 * The WebSocket protocol as the loop sees it: it decodes the `ws-*`
 * records into events and routes each to its socket or upward. Sockets
 * come from HTTP upgrades and from client connections, never from a
 * listener of their own.
 *
 * @module
 */

import type { Connection, ConnectionHost } from "../core/connection.ts";
import type { Loop } from "../core/loop.ts";
import type { Protocol, RecordView } from "../core/protocol.ts";
import { utf8Decoder } from "../core/bytes.ts";
import { WsFlag, WsKind, WsRec } from "./abi.ts";
import { type MgWebSocket, socketInternals, type WsEvent, WsMessageEvent } from "./socket.ts";

/** The WebSocket protocol of each loop, by the loop's connection host. */
const byHost = new WeakMap<ConnectionHost, WsProtocol>();

/**
 * The WebSocket protocol of the loop a connection belongs to.
 *
 * @param host A connection's host.
 * @returns The protocol, if the loop registered one.
 */
export function wsProtocolOf(host: ConnectionHost): WsProtocol | undefined {
  return byHost.get(host);
}

/** The WebSocket protocol of one loop. */
export class WsProtocol implements Protocol {
  readonly name = "ws";
  readonly kinds: readonly number[] = [WsKind.Open, WsKind.Message, WsKind.Control, WsKind.Close];
  /** The loop. */
  readonly loop: Loop;
  #sockets = new Map<number, MgWebSocket>();

  /**
   * Makes the protocol of `loop` (register it with the loop too).
   *
   * @param loop The loop.
   */
  constructor(loop: Loop) {
    this.loop = loop;
    byHost.set(loop.host, this);
  }

  /**
   * Tracks a new socket.
   *
   * @param socket The socket.
   */
  add(socket: MgWebSocket): void {
    this.#sockets.set(socket.conn.id, socket);
  }

  /**
   * Forgets a client socket whose connection closed (its close was reported).
   *
   * @param socket The socket.
   */
  gone(socket: MgWebSocket): void {
    if (this.#sockets.get(socket.conn.id) === socket) this.#sockets.delete(socket.conn.id);
    this.#abnormal(socket);
  }

  decode(r: RecordView): WsEvent | undefined {
    const { u8, dv, off, id } = r;
    const s = this.#sockets.get(id);
    if (s === undefined) return undefined;
    const conn = s.conn;
    const kind = u8[off];
    const len = dv.getUint32(off + WsRec.Length, true);
    const start = off + WsRec.Bytes;
    let ev: WsEvent;
    switch (kind) {
      case WsKind.Message:
        ev = new WsMessageEvent(s, (u8[off + 1] & WsFlag.Binary) !== 0, u8, start, start + len);
        break;
      case WsKind.Control:
        ev = {
          type: u8[off + 1] & WsFlag.Ping ? "ws-ping" : "ws-pong",
          socket: s,
          conn,
          data: u8.subarray(start, start + len),
        } as WsEvent;
        break;
      case WsKind.Open: {
        const pl = dv.getUint32(off + WsRec.OpenProtoLen, true);
        const el = dv.getUint32(off + WsRec.OpenExtLen, true);
        const at = off + WsRec.OpenStrings;
        socketInternals.opened(
          s,
          utf8Decoder.decode(u8.subarray(at, at + pl)),
          utf8Decoder.decode(u8.subarray(at + pl, at + pl + el)),
        );
        ev = { type: "ws-open", socket: s, conn };
        break;
      }
      default: {
        const code = dv.getUint16(off + WsRec.CloseCode, true);
        const reason = utf8Decoder.decode(u8.subarray(start, start + len));
        const wasClean = (u8[off + 1] & WsFlag.Clean) !== 0;
        socketInternals.closed(s, code, reason, wasClean);
        ev = { type: "ws-close", socket: s, conn, code, reason, wasClean };
      }
    }
    return socketInternals.route(s, ev);
  }

  accept(): Connection {
    throw new Error("WebSockets are made by upgrades and clients, not listeners");
  }

  /** A server socket's connection closed. */
  closed(conn: Connection): void {
    const s = this.#sockets.get(conn.id);
    if (s === undefined) return;
    this.#sockets.delete(conn.id);
    this.#abnormal(s);
  }

  /** A socket whose connection ended without a reported close. */
  #abnormal(s: MgWebSocket): void {
    if (socketInternals.isClosed(s)) return;
    socketInternals.closed(s, 1006, "", false);
    socketInternals.route(s, {
      type: "ws-close",
      socket: s,
      conn: s.conn,
      code: 1006,
      reason: "",
      wasClean: false,
    });
  }

  dispose(): void {
    for (const s of this.#sockets.values()) this.#abnormal(s);
    this.#sockets.clear();
  }
}
