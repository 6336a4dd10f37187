/**
 * Errors thrown by mgnet. Every native failure becomes an {@linkcode MgnetError}
 * (or one of its subclasses) carrying the native status code and message.
 *
 * @module
 */

/** Native status codes (mirrors `rust/src/error.rs`). */
export const Status = {
  BadHandle: -1,
  Closed: -2,
  Invalid: -3,
  State: -4,
  Io: -5,
  Panic: -6,
  NoMem: -7,
} as const;

/**
 * Base class of mgnet's errors.
 *
 * @example Telling mgnet's errors apart
 * ```ts
 * import { MgnetError } from "./errors.ts";
 * const e = new MgnetError("boom", "Io");
 * console.log(e instanceof Error, e.code); // true "Io"
 * ```
 */
export class MgnetError extends Error {
  /** Which kind of failure: `Closed`, `Invalid`, `State`, `Io`, ... */
  readonly code: string;
  /**
   * Creates an error.
   *
   * @param message What went wrong.
   * @param code The failure kind (a key of {@linkcode Status}).
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, code: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "MgnetError";
    this.code = code;
  }
}

/**
 * Thrown when a closed connection (or listener) is used, e.g. replying to a
 * request whose client has gone away.
 *
 * @example
 * ```ts
 * import { ConnectionClosedError, MgnetError } from "./errors.ts";
 * const e = new ConnectionClosedError("connection 7 is closed");
 * console.log(e instanceof MgnetError, e.name); // true "ConnectionClosedError"
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
 * Thrown when a closed {@linkcode Manager} is used.
 *
 * @example
 * ```ts
 * import { ManagerClosedError } from "./errors.ts";
 * console.log(new ManagerClosedError().message); // "the manager is closed"
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

const codeNames: Record<number, string> = Object.fromEntries(
  Object.entries(Status).map(([k, v]) => [v, k]),
);

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
  return new MgnetError(message, codeNames[status] ?? `Status${status}`);
}
