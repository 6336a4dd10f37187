/**
 * Posting into a manager from another thread. The manager hands out a
 * {@linkcode PostPort} (a plain, structured-cloneable value); a Worker (or
 * any code, on any thread) opens it with {@linkcode openPoster} and posts
 * bytes or strings, which the manager receives as `post` events on its
 * loop, in order.
 *
 * Natively each manager has one mailbox (a mutex and a queue, found by the
 * port's token in a process-wide registry: no pointer crosses threads). A
 * post appends to it with a synchronous FFI call and wakes the manager's
 * loop through its wake-up socket; the loop drains the mailbox after each
 * poll. The mailbox holds at most {@linkcode POST_MAX_COUNT} messages and
 * {@linkcode POST_MAX_BYTES} bytes: a post that does not fit is refused
 * (`post()` returns false; `send()` waits for room). Posting to a closed
 * manager throws `ManagerClosedError`.
 *
 * @module
 */

import type { Loop } from "../core/loop.ts";
import type { Protocol, RecordView } from "../core/protocol.ts";
import { ConnectionClosedError, ManagerClosedError, MgnetError } from "../core/errors.ts";
import { check, lib, type Symbols } from "../core/ffi.ts";
import { Status } from "../core/abi.ts";
import { utf8Decoder, utf8Encoder } from "../core/bytes.ts";
import { NetKind, Post } from "./abi.ts";

/** Most messages waiting in a manager's mailbox. */
export const POST_MAX_COUNT: number = Post.MaxCount;
/** Most bytes waiting in a manager's mailbox (and the largest message). */
export const POST_MAX_BYTES: number = Post.MaxBytes;

/**
 * Where to post into a manager: a plain object, safe to send to a Worker
 * with `postMessage`. Made by `Manager.postPort()`.
 */
export interface PostPort {
  /** Marks the object as an mgnet post port. */
  readonly kind: "mgnet-post-port";
  /** The manager's mailbox in this process (not a pointer). */
  readonly token: number;
}

/**
 * A message posted into the manager. `bytes` is a view that stays valid
 * for as long as it is held.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager, openPoster } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * using poster = openPoster(mgr.postPort()); // usually inside a Worker
 * assert.equal(poster.post("hello"), true);
 * for await (const ev of mgr) {
 *   if (ev.type === "post") {
 *     assert.equal(ev.text(), "hello");
 *     assert.equal(ev.isText, true);
 *     break;
 *   }
 * }
 * ```
 */
export class PostEvent {
  /** Discriminant. */
  readonly type = "post" as const;
  /** Not about a connection. */
  readonly conn?: undefined;
  /** The message's bytes (a string arrives UTF-8 encoded). */
  readonly bytes: Uint8Array;
  /** Whether it was posted as a string. */
  readonly isText: boolean;

  /**
   * Made by the manager's loop; not constructed by users.
   *
   * @param bytes The message.
   * @param isText Posted as a string.
   */
  constructor(bytes: Uint8Array, isText: boolean) {
    this.bytes = bytes;
    this.isText = isText;
  }

  /**
   * The message decoded as UTF-8.
   *
   * @returns The text.
   */
  text(): string {
    return utf8Decoder.decode(this.bytes);
  }
}

/** The posts of one loop, as a protocol: it decodes POST records. */
export class PostProtocol implements Protocol {
  readonly name = "post";
  readonly kinds: readonly number[] = [NetKind.Post];
  #port: PostPort | undefined;

  /**
   * The loop's port (its mailbox is opened on first call).
   *
   * @param loop The loop.
   * @returns The port.
   */
  port(loop: Loop): PostPort {
    if (this.#port) return this.#port;
    const out = new Uint8Array(8);
    loop.check(loop.sym.mgnet_post_open(loop.handle, out));
    this.#port = Object.freeze({
      kind: "mgnet-post-port",
      token: new DataView(out.buffer).getFloat64(0, true),
    });
    loop.kick(); // an open mailbox keeps the loop waiting natively
    return this.#port;
  }

  decode(r: RecordView): PostEvent {
    const { u8, dv, off } = r;
    const len = dv.getUint32(off + Post.Length, true);
    const start = off + Post.Bytes;
    return new PostEvent(u8.subarray(start, start + len), (u8[off + 1] & Post.FlagText) !== 0);
  }
}

/**
 * Posts into a manager, from any thread: made by {@linkcode openPoster}.
 * Close it (or `using`) when done: the mailbox is freed once the manager
 * and every poster are gone.
 */
export class Poster implements Disposable {
  #sym: Symbols;
  #h: number;
  #closed = false;
  #scratch = new Uint8Array(4096);

  /**
   * Made by {@linkcode openPoster}; not constructed by users (a handle that
   * is not one from `openPoster` is refused by every call).
   *
   * @param h The native poster handle.
   */
  constructor(h: number) {
    this.#sym = lib();
    this.#h = h;
  }

  /** True once {@linkcode close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  #bytes(data: string | Uint8Array): [Uint8Array, number] {
    if (typeof data !== "string") return [data, 0];
    if (data.length * 3 <= this.#scratch.length) {
      const { written } = utf8Encoder.encodeInto(data, this.#scratch);
      return [this.#scratch.subarray(0, written), Post.FlagText];
    }
    return [utf8Encoder.encode(data), Post.FlagText];
  }

  #post(bytes: Uint8Array, flags: number): boolean {
    if (this.#closed) throw new ConnectionClosedError("the poster is closed");
    const rc = this.#sym.mgnet_post(this.#h, bytes, 0, bytes.length, flags);
    if (rc === Status.BadHandle) throw new ManagerClosedError();
    return check(rc) === 1;
  }

  /**
   * Posts a message if the mailbox has room.
   *
   * @param data Bytes (copied) or a string (sent as UTF-8).
   * @returns True if queued; false if the mailbox is full (nothing was queued).
   * @throws {ManagerClosedError} if the manager is closed.
   * @throws {MgnetError} (`Invalid`) for a message over {@linkcode POST_MAX_BYTES}.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager, ManagerClosedError, openPoster } from "../../mod.ts";
   *
   * const mgr = new Manager();
   * using poster = openPoster(mgr.postPort());
   * assert.equal(poster.post(new Uint8Array([1, 2, 3])), true);
   * await mgr.close();
   * assert.throws(() => poster.post("late"), ManagerClosedError);
   * ```
   */
  post(data: string | Uint8Array): boolean {
    const [bytes, flags] = this.#bytes(data);
    return this.#post(bytes, flags);
  }

  /**
   * Posts a message, waiting (off this thread) while the mailbox is full.
   *
   * @param data Bytes (copied) or a string (sent as UTF-8).
   * @returns Resolves once queued.
   * @throws {ManagerClosedError} if the manager is closed, also while waiting.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager, openPoster } from "../../mod.ts";
   *
   * await using mgr = new Manager();
   * using poster = openPoster(mgr.postPort());
   * await poster.send("queued");
   * for await (const ev of mgr) {
   *   if (ev.type === "post") {
   *     assert.equal(ev.text(), "queued");
   *     break;
   *   }
   * }
   * ```
   */
  async send(data: string | Uint8Array): Promise<void> {
    let [bytes, flags] = this.#bytes(data);
    if (this.#post(bytes, flags)) return;
    if (bytes.buffer === this.#scratch.buffer) bytes = bytes.slice(); // the scratch is reused
    for (;;) {
      const rc = await this.#sym.mgnet_poster_wait(this.#h, bytes.length, 100);
      if (rc === Status.BadHandle) throw new ManagerClosedError();
      if (this.#closed) throw new ConnectionClosedError("the poster is closed");
      check(rc);
      if (this.#post(bytes, flags)) return;
    }
  }

  /** Closes the poster (idempotent). Messages already posted still arrive. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sym.mgnet_poster_close(this.#h);
  }

  /** Same as {@linkcode close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Opens a poster on a manager's port. Works on any thread (a Worker loads
 * the native library itself; it needs `--allow-ffi`).
 *
 * @param port From `Manager.postPort()`, e.g. received with `postMessage`.
 * @returns The poster.
 * @throws {ManagerClosedError} if the manager is closed.
 * @example In a Worker
 * ```ts ignore
 * import { openPoster } from "jsr:@mgnet/mgnet";
 *
 * self.onmessage = async (e) => {
 *   using poster = openPoster(e.data);
 *   for (let i = 0; i < 1000; i++) await poster.send(`message ${i}`);
 * };
 * ```
 */
export function openPoster(port: PostPort): Poster {
  if (port?.kind !== "mgnet-post-port" || typeof port.token !== "number") {
    throw new MgnetError("not a post port (use Manager.postPort())", "Invalid");
  }
  const h = lib().mgnet_poster_open(port.token);
  if (h === Status.BadHandle) throw new ManagerClosedError();
  return new Poster(check(h));
}
