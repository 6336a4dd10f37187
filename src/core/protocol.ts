/**
 * The seam between the loop and the protocols above it. A protocol (HTTP
 * today; WebSocket, TCP, MQTT later) registers one {@linkcode Protocol}
 * with a loop: the record kinds it decodes, the connection object its
 * listeners' connections get, and what to release when one closes. The
 * loop knows nothing else about it.
 *
 * @module
 */

import type { Connection, ConnectionHost, NetAddr } from "./connection.ts";

/**
 * An event the loop hands upward. Every event has a type; an event about
 * a connection carries it, others (a timer's fire, a posted message) have
 * none.
 */
export interface LoopEvent {
  /** Discriminant. */
  readonly type: string;
  /** The connection it concerns, if it concerns one. */
  readonly conn?: Connection;
}

/** Where a record sits in the current batch. */
export interface RecordView {
  /** The batch bytes. */
  readonly u8: Uint8Array;
  /** A view of the same bytes. */
  readonly dv: DataView;
  /** The record's first byte. */
  readonly off: number;
  /** Its connection's native slot. */
  readonly slot: number;
  /** Its connection's id. */
  readonly id: number;
}

/** What a protocol registers with a loop. */
export interface Protocol {
  /** A short name, for messages (`"http"`). */
  readonly name: string;
  /** The record kinds it decodes (unique across a loop's protocols). */
  readonly kinds: readonly number[];
  /**
   * Decodes one of its records. Returns the event the user receives, or
   * `undefined` when the record was consumed internally.
   */
  decode(record: RecordView, conn: (slot: number, id: number) => Connection): LoopEvent | undefined;
  /**
   * The connection object of a connection one of its listeners accepted
   * (protocols without listeners or connections leave it out).
   */
  accept?(host: ConnectionHost, slot: number, id: number, remote?: NetAddr, local?: NetAddr): Connection;
  /**
   * Whether one of its events decoded earlier is still to be handed out
   * (false: drop it, e.g. it concerns something cancelled since). Asked
   * for events that waited in the loop's backlog.
   */
  live?(ev: LoopEvent): boolean;
  /** One of its connections closed (before the close event is handed on). */
  closed?(conn: Connection): void;
  /** The loop is closed: fail whatever still waits. */
  dispose?(): void;
}
