/**
 * The events the core itself produces, for connections of any protocol.
 *
 * @module
 */

import type { Connection } from "./connection.ts";

/**
 * A listener accepted a connection.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const listener = mgr.listen("http://127.0.0.1:0");
 * using client = await Deno.connect({ port: listener.port });
 * for await (const ev of mgr) {
 *   if (ev.type === "open") {
 *     assert.equal(ev.listenerId, listener.id);
 *     assert.equal(ev.conn.remoteAddr?.port, (client.localAddr as Deno.NetAddr).port);
 *     break;
 *   }
 * }
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
 * A connection closed; its `Connection` is unusable now. Listeners have no
 * close event.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const { port } = mgr.listen("http://127.0.0.1:0");
 * const client = await Deno.connect({ port });
 * for await (const ev of mgr) {
 *   if (ev.type === "open") client.close();
 *   if (ev.type === "close") {
 *     assert.equal(ev.conn.closed, true);
 *     break;
 *   }
 * }
 * ```
 */
export interface ConnCloseEvent {
  /** Discriminant. */
  readonly type: "close";
  /** The closed connection. */
  readonly conn: Connection;
}

/**
 * A connection failed; a `close` event follows. (Not a DOM `ErrorEvent`.)
 *
 * @example A client that resets the connection
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const { port } = mgr.listen("http://127.0.0.1:0");
 * const client = await Deno.connect({ port });
 * await client.write(new TextEncoder().encode("GET / HTTP/1.1\r\nhost: x\r\n\r\n"));
 * let message: string | undefined;
 * for await (const ev of mgr) {
 *   if (ev.type === "http") {
 *     ev.reply(200, "hello");
 *     await client.read(new Uint8Array(1));
 *     client.close(); // with the rest of the response unread: the server gets a reset
 *   }
 *   if (ev.type === "error") message = ev.message; // a close event follows
 *   if (ev.type === "close") break;
 * }
 * assert.equal(message, "socket error");
 * ```
 */
export interface ConnErrorEvent {
  /** Discriminant. */
  readonly type: "error";
  /** The failing connection. */
  readonly conn: Connection;
  /** Mongoose's description of the failure. */
  readonly message: string;
}
