/**
 * Timers owned by a manager. They run natively inside Mongoose's poll (one
 * TIMER record in the batch of the poll that finds a timer due), so a
 * busy loop delivers them with the rest of its events and an idle loop
 * wakes for them; see docs/architecture.md, "Timers, posting and native
 * utilities", for the measurements behind that choice.
 *
 * @module
 */

import type { Loop } from "../core/loop.ts";
import type { LoopEvent, Protocol, RecordView } from "../core/protocol.ts";
import { MgnetError } from "../core/errors.ts";
import { NetKind, TimerFlag } from "./abi.ts";

/** Options of `Manager.setTimer`. */
export interface TimerOptions {
  /** Fire every `ms` until cancelled (default: once). */
  repeat?: boolean;
  /**
   * Keep the manager's loop, and so the process, running while the timer
   * is active (default false: like `Deno.unrefTimer`, a manager whose only
   * pending work is unref'd timers lets the process exit).
   */
  ref?: boolean;
  /**
   * Handle fires with this callback instead of receiving them from
   * `for await` (the manager then runs handlers, as with `listen` handlers).
   */
  onFire?: (ev: TimerEvent) => void;
}

/**
 * A timer fired. A repeating timer fires at most once per poll: a loop
 * that was late by several periods delivers one event, not a burst.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const timer = mgr.setTimer(5, { ref: true }); // ref: the example's only pending work
 * for await (const ev of mgr) {
 *   if (ev.type === "timer") {
 *     assert.equal(ev.timer, timer);
 *     break;
 *   }
 * }
 * ```
 */
export interface TimerEvent {
  /** Discriminant. */
  readonly type: "timer";
  /** The timer that fired. */
  readonly timer: Timer;
  /** Not about a connection. */
  readonly conn?: undefined;
}

/** Private timer state, for code inside `src/` (not re-exported by `mod.ts`). */
export let timerInternals: {
  /** Makes a timer of `loop` (natively added already). */
  make(loop: Loop, id: number, ms: number, opts: TimerOptions, forget: () => void): Timer;
  /** A one-shot timer fired: it is done. */
  finish(t: Timer): void;
  /** True once cancelled (its pending fires are dropped). */
  cancelled(t: Timer): boolean;
  /** The fire callback, if any. */
  onFire(t: Timer): ((ev: TimerEvent) => void) | undefined;
};

/**
 * A timer made by `Manager.setTimer`. It never fires after
 * {@linkcode cancel} (not even a fire already gathered in the current
 * batch) nor after its manager closes.
 *
 * @example A repeating timer cancelled from its own event
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const timer = mgr.setTimer(2, { repeat: true, ref: true });
 * let fires = 0;
 * for await (const ev of mgr) {
 *   if (ev.type === "timer" && ++fires === 3) {
 *     assert.equal(ev.timer.cancel(), true);
 *     break;
 *   }
 * }
 * assert.equal(timer.active, false);
 * ```
 */
export class Timer {
  /** Unique within its manager. */
  readonly id: number;
  /** The delay (and, for a repeating timer, the period) in ms. */
  readonly ms: number;
  /** Whether it fires every `ms`. */
  readonly repeat: boolean;
  #loop: Loop;
  #cancelled = false;
  #done = false;
  #ref: boolean;
  #onFire: ((ev: TimerEvent) => void) | undefined;
  #forget: () => void;

  static {
    timerInternals = {
      make: (loop, id, ms, opts, forget) => new Timer(loop, id, ms, opts, forget),
      finish: (t) => void (t.#done = true),
      cancelled: (t) => t.#cancelled,
      onFire: (t) => t.#onFire,
    };
  }

  private constructor(loop: Loop, id: number, ms: number, opts: TimerOptions, forget: () => void) {
    this.#loop = loop;
    this.#forget = forget;
    this.id = id;
    this.ms = ms;
    this.repeat = opts.repeat === true;
    this.#ref = opts.ref === true;
    this.#onFire = opts.onFire;
  }

  /** True until it is cancelled, has fired (one-shot) or its manager closed. */
  get active(): boolean {
    return !this.#cancelled && !this.#done && !this.#loop.closed;
  }

  /** Whether it keeps the loop (and the process) running. */
  get hasRef(): boolean {
    return this.#ref && this.active;
  }

  /**
   * Stops the timer. Idempotent; fine after the manager closed.
   *
   * @returns Whether it was active.
   */
  cancel(): boolean {
    const was = this.active;
    this.#cancelled = true;
    this.#forget();
    if (!this.#loop.closed) this.#loop.sym.mgnet_timer_cancel(this.#loop.handle, this.id);
    return was;
  }

  /** Makes the timer keep the loop (and the process) running while active. */
  ref(): void {
    this.#setRef(true);
  }

  /** Lets the process exit even while the timer is active. */
  unref(): void {
    this.#setRef(false);
  }

  #setRef(on: boolean): void {
    if (this.#ref === on || !this.active) return;
    this.#ref = on;
    this.#loop.sym.mgnet_timer_ref(this.#loop.handle, this.id, on ? 1 : 0);
    this.#loop.kick();
  }
}

/** The timers of one loop, as a protocol: it decodes TIMER records. */
export class TimerProtocol implements Protocol {
  readonly name = "timer";
  readonly kinds: readonly number[] = [NetKind.Timer];
  #timers = new Map<number, Timer>();
  #out = new Uint8Array(8);

  /**
   * Adds a timer to `loop`.
   *
   * @param loop The loop.
   * @param ms Delay (period) in ms.
   * @param opts Options.
   * @returns The timer.
   */
  add(loop: Loop, ms: number, opts: TimerOptions): Timer {
    if (!(ms >= 0 && ms <= TimerFlag.MaxMs)) {
      throw new MgnetError(`timer delay must be 0..${TimerFlag.MaxMs} ms, got ${ms}`, "Invalid");
    }
    if (opts.onFire !== undefined && typeof opts.onFire !== "function") {
      throw new TypeError("onFire must be a function");
    }
    const flags = (opts.repeat ? TimerFlag.Repeat : 0) | (opts.ref ? TimerFlag.Ref : 0);
    loop.check(loop.sym.mgnet_timer_add(loop.handle, ms, flags, this.#out));
    const id = new DataView(this.#out.buffer).getFloat64(0, true);
    const timer = timerInternals.make(loop, id, ms, opts, () => this.#timers.delete(id));
    this.#timers.set(id, timer);
    loop.kick();
    return timer;
  }

  decode(r: RecordView): TimerEvent | undefined {
    const t = this.#timers.get(r.id);
    if (t === undefined || timerInternals.cancelled(t)) {
      this.#timers.delete(r.id);
      return undefined;
    }
    if (!t.repeat) {
      this.#timers.delete(r.id);
      timerInternals.finish(t);
    }
    return { type: "timer", timer: t };
  }

  live(ev: LoopEvent): boolean {
    return ev.type !== "timer" || !timerInternals.cancelled((ev as TimerEvent).timer);
  }

  dispose(): void {
    this.#timers.clear();
  }
}
