/**
 * Errors thrown by mgnet. Every native failure becomes an {@linkcode MgnetError}
 * (or one of its subclasses) carrying the native status code and message.
 *
 * @module
 */

import { Status, type StatusName } from "./abi.ts";

export type { StatusName };

/**
 * Base class of mgnet's errors. `code` names the failure kind, one of the
 * native status names: `BadHandle` (the manager is closed), `Closed` (the
 * connection is), `Invalid` (a bad argument), `State` (a call that does not
 * fit, e.g. answering twice), `Io`, `Panic` (a bug caught at the native
 * boundary), `NoMem`.
 *
 * @example Telling mgnet's errors apart
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager, MgnetError } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const listener = mgr.listen("http://127.0.0.1:0");
 * listener.close();
 * assert.throws(() => mgr.listen("http://127.0.0.1:70000"), (e) => e instanceof MgnetError && e.code === "Invalid");
 * ```
 */
export class MgnetError extends Error {
  /** Which kind of failure: `Closed`, `Invalid`, `State`, `Io`, ... */
  readonly code: StatusName;
  /**
   * Creates an error.
   *
   * @param message What went wrong.
   * @param code The failure kind (a native status name).
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, code: StatusName, options?: ErrorOptions) {
    super(message, options);
    this.name = "MgnetError";
    this.code = code;
  }
}

/**
 * Thrown when a closed connection (or listener) is used, e.g. replying to a
 * request whose client has gone away.
 *
 * @example Answering a request whose client has left
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConnectionClosedError, type HttpRequestEvent, Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const { port } = mgr.listen("http://127.0.0.1:0");
 * const client = await Deno.connect({ port });
 * await client.write(new TextEncoder().encode("GET / HTTP/1.1\r\nhost: x\r\n\r\n"));
 * let request: HttpRequestEvent | undefined;
 * for await (const ev of mgr) {
 *   if (ev.type === "http") {
 *     request = ev;
 *     client.close();
 *   }
 *   if (ev.type === "close") break;
 * }
 * assert.throws(() => request!.reply(200, "too late"), ConnectionClosedError);
 * ```
 */
export class ConnectionClosedError extends MgnetError {
  /**
   * Creates the error.
   *
   * @param message What was closed.
   */
  constructor(message: string) {
    super(message, "Closed");
    this.name = "ConnectionClosedError";
  }
}

/**
 * Thrown when a closed `Manager` is used.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager, ManagerClosedError } from "../../mod.ts";
 *
 * const mgr = new Manager();
 * await mgr.close();
 * assert.throws(() => mgr.listen("http://127.0.0.1:0"), ManagerClosedError);
 * ```
 */
export class ManagerClosedError extends MgnetError {
  /**
   * Creates the error.
   *
   * @param message Defaults to "the manager is closed".
   */
  constructor(message = "the manager is closed") {
    super(message, "BadHandle");
    this.name = "ManagerClosedError";
  }
}

const codeNames = Object.fromEntries(
  Object.entries(Status).map(([k, v]) => [v, k]),
) as Record<number, StatusName>;

/**
 * Builds the error for a negative native status.
 *
 * @param status The negative status returned by a native call.
 * @param message The native last-error message.
 * @returns The matching error instance.
 */
export function errorFromStatus(status: number, message: string): MgnetError {
  if (status === Status.Closed) return new ConnectionClosedError(message);
  if (status === Status.BadHandle) return new ManagerClosedError(message);
  return new MgnetError(message, codeNames[status] ?? "Panic");
}
