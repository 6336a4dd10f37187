/**
 * How an idle loop waits for its epoll fd without blocking the JS thread:
 * the wake paths measured in docs/architecture.md section 29.
 *
 * - `nonblocking` (the default): a `nonblocking` FFI call that `poll(2)`s
 *   the fd on Deno's blocking pool; Deno owns the call, so a Worker
 *   terminated mid-wait or a test module torn down is safe.
 * - `callback`: a native watcher thread (`rust/src/core/watcher.rs`) reports
 *   through a `Deno.UnsafeCallback.threadSafe`. The cheapest under a handler
 *   awaiting the global `fetch`, and **not safe**: when an isolate is torn
 *   down while the watcher is armed (`Worker.terminate()`, a `deno test
 *   --parallel` module ending), Deno frees the callback and the watcher's
 *   next report crashes the process (seen in this suite). Kept to measure.
 * - `doorbell`: the same watcher writes a byte to a socket pair whose other
 *   end a `node:net` socket reads on Deno's reactor. Safe, but no cheaper
 *   than `nonblocking`.
 *
 * `MGNET_WAKE` picks one for the benches (read only when the env permission
 * for it is already granted).
 *
 * @module
 */

import { check, type Symbols } from "./ffi.ts";

/** The wake path names `MGNET_WAKE` takes. */
export type WakePath = "callback" | "nonblocking" | "doorbell";

let chosen: WakePath | undefined;

/** The wake path of this process (`MGNET_WAKE`), read on first use. */
export function wakePath(): WakePath {
  if (chosen !== undefined) return chosen;
  chosen = "nonblocking";
  try {
    const name = "MGNET_WAKE";
    if (Deno.permissions.querySync({ name: "env", variable: name }).state === "granted") {
      const v = Deno.env.get(name);
      if (v === "callback" || v === "doorbell") chosen = v;
    }
  } catch { /* no permission API: the default */ }
  return chosen;
}

/** Waits for a manager's epoll fd off the JS thread. */
export interface IdleWait {
  /**
   * Resolves 1 once the fd is ready, 0 after `ms` (-1: no limit). Keeps the
   * process alive until it resolves. One wait at a time; `mgnet_wake` ends
   * it early.
   */
  wait(ms: number): Promise<number>;
  /** Releases what the waits used; the manager is still open. */
  close(): void;
}

/** Makes the idle wait of manager `handle` (whose epoll fd is `epfd`). */
export function idleWait(sym: Symbols, handle: number, epfd: number, path = wakePath()): IdleWait {
  if (path === "nonblocking") return { wait: (ms) => sym.mgnet_wait(epfd, ms), close() {} };
  return path === "doorbell" ? new DoorbellWait(sym, handle) : new CallbackWait(sym, handle);
}

type WatchDef = { readonly parameters: readonly ["i32"]; readonly result: "void" };

/** A watcher thread reporting through a thread-safe callback. */
class CallbackWait implements IdleWait {
  #sym: Symbols;
  #handle: number;
  #watcher = 0;
  #cb: Deno.UnsafeCallback<WatchDef> | undefined;
  #resolve: ((n: number) => void) | undefined;
  /** The callback keeps the event loop alive only while a wait is armed. */
  #refd = false;

  constructor(sym: Symbols, handle: number) {
    this.#sym = sym;
    this.#handle = handle;
  }

  wait(ms: number): Promise<number> {
    if (this.#watcher === 0) {
      // Made on first use: a manager that never idles has no thread.
      const cb = Deno.UnsafeCallback.threadSafe({ parameters: ["i32"], result: "void" } as const, (n) => {
        this.#unref();
        const resolve = this.#resolve;
        this.#resolve = undefined;
        resolve?.(n);
      });
      cb.unref(); // threadSafe() starts ref'd
      this.#cb = cb;
      this.#watcher = check(this.#sym.mgnet_watcher_new(this.#handle, cb.pointer, null));
    }
    const { promise, resolve } = Promise.withResolvers<number>();
    this.#resolve = resolve;
    if (!this.#refd) this.#cb!.ref();
    this.#refd = true;
    check(this.#sym.mgnet_watcher_arm(this.#watcher, ms));
    return promise;
  }

  #unref(): void {
    if (this.#refd) this.#cb!.unref();
    this.#refd = false;
  }

  close(): void {
    // The watcher may be inside a call of the callback that Deno has yet to
    // run (the call blocks its thread until then); it is left to finish
    // that call and exit, so the callback is never closed here.
    if (this.#watcher) this.#sym.mgnet_watcher_free(this.#watcher);
    this.#watcher = 0;
    this.#unref();
  }
}

/** The part of a `node:net` socket the doorbell uses. */
interface BellSocket {
  on(ev: "data", f: (b: Uint8Array) => void): unknown;
  ref(): unknown;
  unref(): unknown;
  destroy(): unknown;
}

/**
 * A watcher thread ringing a socket pair whose end here is read by Deno's
 * own reactor (a `node:net` socket made from the fd: no permission needed).
 */
class DoorbellWait implements IdleWait {
  #sym: Symbols;
  #handle: number;
  #watcher = 0;
  #sock: BellSocket | undefined;
  #resolve: ((n: number) => void) | undefined;

  constructor(sym: Symbols, handle: number) {
    this.#sym = sym;
    this.#handle = handle;
  }

  async wait(ms: number): Promise<number> {
    if (this.#watcher === 0) {
      const { Socket } = await import("node:net");
      const out = new Int32Array(1);
      this.#watcher = check(this.#sym.mgnet_watcher_new(this.#handle, null, new Uint8Array(out.buffer)));
      const sock = new Socket({ fd: out[0], readable: true, writable: false }) as unknown as BellSocket;
      sock.on("data", (b) => {
        sock.unref();
        const resolve = this.#resolve;
        this.#resolve = undefined;
        resolve?.(b[b.length - 1]);
      });
      this.#sock = sock;
    }
    const { promise, resolve } = Promise.withResolvers<number>();
    this.#resolve = resolve;
    this.#sock!.ref();
    check(this.#sym.mgnet_watcher_arm(this.#watcher, ms));
    return await promise;
  }

  close(): void {
    if (this.#watcher) this.#sym.mgnet_watcher_free(this.#watcher);
    this.#watcher = 0;
    this.#sock?.destroy();
  }
}
