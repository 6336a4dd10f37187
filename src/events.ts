/**
 * The events a {@linkcode Manager} yields: a discriminated union on `type`.
 *
 * | type    | when                                   | payload                      |
 * |---------|----------------------------------------|------------------------------|
 * | `open`  | a listener accepted a connection       | `conn`, `listenerId`         |
 * | `http`  | a complete HTTP request arrived        | {@linkcode HttpRequestEvent} |
 * | `error` | a connection failed (it closes next)   | `conn`, `message`            |
 * | `close` | a connection closed                    | `conn`                       |
 *
 * @module
 */

import type { Connection } from "./connection.ts";
import type { HttpRequestEvent } from "./http.ts";

/** Record kinds of the native batch (rust/src/event.rs). */
export const Kind = { Open: 1, Http: 2, Close: 3, Error: 4, Drain: 5, Data: 6, Body: 7 } as const;

/**
 * A listener accepted a connection.
 *
 * @example
 * ```ts ignore
 * if (ev.type === "open") console.log("client", ev.conn.remoteAddr?.hostname);
 * ```
 */
export interface OpenEvent {
  /** Discriminant. */
  readonly type: "open";
  /** The new connection. */
  readonly conn: Connection;
  /** Id of the listener that accepted it. */
  readonly listenerId: number;
}

/**
 * A connection (or a listener) closed; its `Connection` is unusable now.
 *
 * @example
 * ```ts ignore
 * if (ev.type === "close") sessions.delete(ev.conn.id);
 * ```
 */
export interface CloseEvent {
  /** Discriminant. */
  readonly type: "close";
  /** The closed connection. */
  readonly conn: Connection;
}

/**
 * A connection failed; a `close` event follows.
 *
 * @example
 * ```ts ignore
 * if (ev.type === "error") console.error(ev.conn.id, ev.message);
 * ```
 */
export interface ErrorEvent {
  /** Discriminant. */
  readonly type: "error";
  /** The failing connection. */
  readonly conn: Connection;
  /** Mongoose's description of the failure. */
  readonly message: string;
}

/** Every event a manager yields. Switch on `type`. */
export type MgEvent = OpenEvent | HttpRequestEvent | CloseEvent | ErrorEvent;
