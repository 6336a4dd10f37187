/**
 * Streamed request bodies: with `new Manager({ streamBodiesOver })` a body
 * larger than that is not buffered; its request event arrives once the
 * head is in (`ev.bodyStreamed`), and the bytes follow through
 * `ev.bodyChunks()` as they arrive. Reading from the socket pauses while
 * more than 1 MiB waits unconsumed, so a slow consumer slows the client
 * down instead of growing memory. {@linkcode saveBodyToFile} writes such a
 * body straight to a file with a size limit.
 *
 * @module
 */

import { ConnectionClosedError, MgnetError } from "./errors.ts";
import type { HttpConnection, HttpRequestEvent } from "./http.ts";

/**
 * Receives the pieces of one streamed body from the manager and hands them
 * to a single consumer, acknowledging what was consumed.
 * @internal
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

  /** @internal The next piece arrived (a view that stays valid). */
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

  /** @internal The body is complete. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#waiter && this.#queue.length === 0) {
      this.#waiter.resolve({ value: undefined, done: true });
      this.#waiter = undefined;
    }
  }

  /** @internal The body failed (client left, or a limit was hit). */
  fail(error: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    this.#queue = [];
    this.#waiter?.reject(error);
    this.#waiter = undefined;
  }

  /** @internal Hands the iterator to its one consumer. */
  take(): AsyncIterableIterator<Uint8Array> {
    if (this.#taken) throw new MgnetError("this request's body is already being read", "State");
    this.#taken = true;
    this.#ack(0); // reading starts: a client waiting for 100 Continue gets it now
    return this;
  }

  #ack(n: number): void {
    const conn = this.#conn;
    if (conn.closed) return;
    const host = conn.host;
    const rc = host.sym.mgnet_body_ack(host.handle, conn.slot, conn.id, n);
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

/** A body that is not streamed, as a one-piece iterator. @internal */
export async function* wholeBody(body: Uint8Array): AsyncIterableIterator<Uint8Array> {
  if (body.length > 0) yield body;
}

/** @internal The error a streamed body fails with when mgnet answered the request itself (e.g. 413). */
export function bodyRefused(status: number): Error {
  return new MgnetError(`the request body was refused with ${status}`, "Invalid");
}

/** @internal The error a streamed body fails with when the client leaves. */
export function bodyCut(id: number): Error {
  return new ConnectionClosedError(`connection ${id} closed before the request body was complete`);
}

/** Options of {@linkcode saveBodyToFile}. */
export interface SaveBodyOptions {
  /** Most bytes accepted; a larger body gets 413 and nothing is kept. */
  limit: number;
  /** File mode of the new file (default 0o644, before the umask). */
  mode?: number;
}

/**
 * Writes a request's body to `path` as it arrives, through a temporary
 * file in the same directory that is renamed into place once the body is
 * complete. A body over `limit` (by its `content-length`, or once more
 * bytes than that arrived) is answered `413 Content Too Large` here and
 * the connection closes; a client that leaves midway leaves nothing
 * either: the temporary file is removed in every failure.
 *
 * Works with buffered bodies too; streamed ones (`streamBodiesOver`) never
 * sit in memory whole.
 *
 * @param ev The request.
 * @param path Where the body goes (replaced if it exists).
 * @param options The size limit.
 * @returns The bytes written, or `null` if the body was refused with 413.
 * @throws {ConnectionClosedError} if the client left before the body ended;
 *   file system errors as they come.
 * @example Accepting uploads of up to 1 GiB without holding them in memory
 * ```ts ignore
 * const mgr = new Manager({ streamBodiesOver: 1 << 20, maxBodySize: 2 ** 31 - 1 });
 * mgr.listen("http://127.0.0.1:8000", {
 *   async onRequest(ev) {
 *     const n = await saveBodyToFile(ev, "/srv/upload.bin", { limit: 1 << 30 });
 *     if (n !== null) ev.reply(201, `stored ${n} bytes`);
 *   },
 * });
 * ```
 */
export async function saveBodyToFile(
  ev: HttpRequestEvent,
  path: string,
  options: SaveBodyOptions,
): Promise<number | null> {
  const limit = options.limit;
  if (!(limit >= 0)) throw new RangeError("limit must be a non-negative number of bytes");
  const declared = Number(ev.header("content-length") ?? NaN);
  const refuse = () => {
    if (!ev.replied && !ev.conn.closed) {
      ev.reply(413, `the body is larger than ${limit} bytes`, { connection: "close" });
    }
    return null;
  };
  if (declared > limit) return refuse();
  const slash = path.lastIndexOf("/");
  const temp = `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.${crypto.randomUUID()}.partial`;
  const file = await Deno.open(temp, { write: true, createNew: true, mode: options.mode ?? 0o644 });
  let written = 0;
  let kept = false;
  try {
    for await (const chunk of ev.bodyChunks()) {
      written += chunk.length;
      if (written > limit) return refuse();
      for (let off = 0; off < chunk.length;) off += await file.write(chunk.subarray(off));
    }
    file.close();
    await Deno.rename(temp, path);
    kept = true;
    return written;
  } finally {
    if (!kept) {
      try {
        file.close();
      } catch { /* closed above */ }
      await Deno.remove(temp).catch(() => {});
    }
  }
}
