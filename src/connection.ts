/**
 * Connections: the stable handle JS gets for one Mongoose connection.
 *
 * @module
 */

import { ConnectionClosedError } from "./errors.ts";
import type { Symbols } from "./ffi.ts";

/** An IP address and port, shaped like `Deno.NetAddr`. */
export interface NetAddr {
  /** Always `"tcp"` for now. */
  transport: "tcp";
  /** IPv4 dotted quad or IPv6 text. */
  hostname: string;
  /** Port number. */
  port: number;
}

/**
 * What a connection needs from the manager that owns it.
 * @internal
 */
export interface ConnectionHost {
  /** Native manager handle. */
  readonly handle: number;
  /** Native symbols. */
  readonly sym: Symbols;
  /** True once the manager is closed. */
  readonly isClosed: boolean;
  /** Called after output was queued, so it gets flushed. */
  queued(): void;
  /** Throws the error of a negative native status. */
  check(rc: number): number;
  /**
   * Resolves when the connection's DRAIN event arrives; rejects with
   * ConnectionClosedError when it closes first.
   */
  drained(conn: Connection): Promise<void>;
}

/**
 * Receives the events of an outbound connection (made by
 * `Manager.openClient`); they never reach the manager's iterator.
 * @internal
 */
export interface ClientSink {
  /** Connected (for TLS: the handshake is done). */
  onOpen(remoteAddr: NetAddr, localAddr: NetAddr): void;
  /** Bytes arrived (a view that stays valid). */
  onData(bytes: Uint8Array): void;
  /** The connection failed; `onClose` follows. */
  onError(message: string): void;
  /** The connection is gone. */
  onClose(): void;
}

/** TLS settings of an outbound connection. @internal */
export interface ClientTls {
  /** Server name: SNI and the name the certificate must carry. */
  name: string;
  /** Trusted CA certificates, PEM or DER. */
  ca?: Uint8Array;
  /** Skip certificate and name verification. */
  insecure?: boolean;
}

/**
 * One network connection of a {@linkcode Manager}. Connections are numbers
 * natively; this object is the JS handle for one, valid until its `close`
 * event. Using it after that throws {@linkcode ConnectionClosedError}.
 *
 * @example Closing a client's connection after answering it
 * ```ts ignore
 * for await (const ev of mgr) {
 *   if (ev.type === "http") {
 *     ev.reply(200, "bye");
 *     ev.conn.close();
 *   }
 * }
 * ```
 */
export class Connection {
  /** Mongoose's connection id: unique within the manager, never reused. */
  readonly id: number;
  /** The peer's address (set when the connection was accepted). */
  readonly remoteAddr: NetAddr | undefined;
  /** Our side's address. */
  readonly localAddr: NetAddr | undefined;
  /** @internal native slot */
  readonly slot: number;
  /** @internal */
  readonly host: ConnectionHost;
  #closed = false;

  /**
   * @internal Created by the manager when a connection appears.
   * @param host The owning manager.
   * @param slot The native slot.
   * @param id The connection id.
   * @param remoteAddr The peer's address.
   * @param localAddr The local address.
   */
  constructor(host: ConnectionHost, slot: number, id: number, remoteAddr?: NetAddr, localAddr?: NetAddr) {
    this.host = host;
    this.slot = slot;
    this.id = id;
    this.remoteAddr = remoteAddr;
    this.localAddr = localAddr;
  }

  /** True after the connection closed (its `close` event was delivered). */
  get closed(): boolean {
    return this.#closed || this.host.isClosed;
  }

  /** @internal Marks the connection closed. */
  markClosed(): void {
    this.#closed = true;
  }

  /**
   * Throws {@linkcode ConnectionClosedError} if the connection is closed.
   * @internal
   */
  assertOpen(): void {
    if (this.closed) throw new ConnectionClosedError(`connection ${this.id} is closed`);
  }

  /**
   * Closes the connection after sending what is already queued. Requests
   * not yet answered are dropped. Calling it again does nothing.
   *
   * @example
   * ```ts ignore
   * ev.conn.close();
   * ```
   */
  close(): void {
    if (this.closed) return;
    const rc = this.host.sym.mgnet_close(this.host.handle, this.slot, this.id, 1);
    if (rc === -2) return; // already gone natively: closing is idempotent
    this.host.check(rc);
    this.host.queued();
  }
}
