/**
 * Streamed request bodies: with `new Manager({ streamBodiesOver })` a body
 * larger than that is not buffered; its request event arrives once the
 * head is in (`ev.bodyStreamed`), and the bytes follow through
 * `ev.bodyChunks()` as they arrive. Reading from the socket pauses while
 * more than 1 MiB waits unconsumed, so a slow consumer slows the client
 * down instead of growing memory. `saveBodyToFile` (save_body.ts) writes such a
 * body straight to a file with a size limit.
 *
 * @module
 */

import { ConnectionClosedError, MgnetError } from "../core/errors.ts";
import { connInternals } from "../core/connection.ts";
import type { HttpConnection } from "./response.ts";

/**
 * Receives the pieces of one streamed body from the manager and hands them
 * to a single consumer, acknowledging what was consumed.
 */
export class BodySink implements AsyncIterableIterator<Uint8Array> {
  #conn: HttpConnection;
  #queue: Uint8Array[] = [];
  #ended = false;
  #error: Error | undefined;
  #waiter: PromiseWithResolvers<IteratorResult<Uint8Array>> | undefined;
  #taken = false;

  /**
   * @param conn The request's connection.
   */
  constructor(conn: HttpConnection) {
    this.#conn = conn;
  }

  /** The next piece arrived (a view that stays valid). */
  push(bytes: Uint8Array): void {
    if (this.#ended) return;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = undefined;
      this.#ack(bytes.length);
      w.resolve({ value: bytes, done: false });
    } else {
      this.#queue.push(bytes);
    }
  }

  /** The body is complete. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#waiter && this.#queue.length === 0) {
      this.#waiter.resolve({ value: undefined, done: true });
      this.#waiter = undefined;
    }
  }

  /** The body failed (client left, or a limit was hit). */
  fail(error: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    this.#queue = [];
    this.#waiter?.reject(error);
    this.#waiter = undefined;
  }

  /** Hands the iterator to its one consumer. */
  take(): AsyncIterableIterator<Uint8Array> {
    if (this.#taken) throw new MgnetError("this request's body is already being read", "State");
    this.#taken = true;
    this.#ack(0); // reading starts: a client waiting for 100 Continue gets it now
    return this;
  }

  #ack(n: number): void {
    const conn = this.#conn;
    if (conn.closed) return;
    const host = connInternals.host(conn);
    const rc = host.sym.mgnet_body_ack(host.handle, connInternals.slot(conn), conn.id, n);
    if (rc === 1) host.sym.mgnet_wake(host.handle); // the loop polls what follows
  }

  next(): Promise<IteratorResult<Uint8Array>> {
    const chunk = this.#queue.shift();
    if (chunk !== undefined) {
      this.#ack(chunk.length);
      return Promise.resolve({ value: chunk, done: false });
    }
    if (this.#error) return Promise.reject(this.#error);
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    this.#waiter = Promise.withResolvers();
    return this.#waiter.promise;
  }

  return(): Promise<IteratorResult<Uint8Array>> {
    // The consumer gave up: drop what is queued (acknowledging it, so the
    // connection is not left paused) and what still comes.
    for (const c of this.#queue) this.#ack(c.length);
    this.#queue = [];
    this.#ended = true;
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Uint8Array> {
    return this;
  }
}

/** A body that is not streamed, as a one-piece iterator. */
export async function* wholeBody(body: Uint8Array): AsyncIterableIterator<Uint8Array> {
  if (body.length > 0) yield body;
}

/** The error a streamed body fails with when mgnet answered the request itself (e.g. 413). */
export function bodyRefused(status: number): Error {
  return new MgnetError(`the request body was refused with ${status}`, "Invalid");
}

/** The error a streamed body fails with when the client leaves. */
export function bodyCut(id: number): Error {
  return new ConnectionClosedError(`connection ${id} closed before the request body was complete`);
}
