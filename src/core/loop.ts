/**
 * The loop: owns one native manager, runs Mongoose's poll and hands event
 * batches upward. It knows no protocol: the records of a protocol are
 * decoded by the {@linkcode Protocol} registered for their kind.
 *
 * How the loop runs (see docs/architecture.md for the measurements):
 * - while there is work, one synchronous FFI call sends queued replies,
 *   polls Mongoose without blocking and copies a whole batch of events;
 * - when idle, it waits in a `nonblocking` FFI call that only `poll(2)`s
 *   the epoll fd (src/core/idle_wait.ts), so the JS thread is free for
 *   timers, fetch and other I/O;
 * - but when every request handed out has been answered (no handler is
 *   awaiting anything), a gap in the traffic is first bridged by a short
 *   synchronous wait of at most {@linkcode SYNC_WAIT_MS} on the JS thread:
 *   it saves the two thread hand-offs of a native wait, the largest
 *   cost of a busy server's idle moments;
 * - replies made while a batch is being consumed are sent when the batch
 *   ends (one `send()` per connection per batch); replies made later
 *   (after an `await`) are sent at the end of the current microtask
 *   checkpoint, even while the loop waits;
 * - a busy loop gives the event loop a turn at least every {@linkcode YIELD_MS}.
 *
 * @module
 */

import {
  type ClientSink,
  type ClientTls,
  Connection,
  type ConnectionHost,
  connInternals,
  type NetAddr,
} from "./connection.ts";
import { ConnectionClosedError, ManagerClosedError } from "./errors.ts";
import { check, lib, type Symbols } from "./ffi.ts";
import { type IdleWait, idleWait } from "./idle_wait.ts";
import { ConnectFlag, Header, Kind, ListenOut, Open, Payload, SECURE_FAILED, Status } from "./abi.ts";
import { decodeAddr, parseListenUrl } from "./address.ts";
import { utf8Decoder, utf8Encoder } from "./bytes.ts";
import type { LoopEvent, Protocol, RecordView } from "./protocol.ts";
import type { ConnCloseEvent, ConnErrorEvent, OpenEvent } from "./events.ts";

/** Longest time a busy loop runs before letting other async work run (ms). */
export const YIELD_MS = 2;
/** Longest synchronous wait for traffic on the JS thread (ms). */
export const SYNC_WAIT_MS = 1;

/**
 * Size of the buffers event batches are copied into. Small on purpose: an
 * arena must die young. A 1 MiB arena lived through several scavenges at
 * 100 k requests/s, was promoted, and its external bytes drove V8 to a
 * mark-compact every ~0.8 s (p99 2.9–3.9 ms at keep-alive 100); at 128 KiB
 * none ran in 5 s and p99 was 2.0–2.4 ms (docs/architecture.md, section 2).
 */
const ARENA_SIZE = 128 << 10;
/** A fresh arena is taken when less than this is left in the current one. */
const ARENA_MIN_FREE = 32 * 1024;

/** A bound listening socket, as the loop reports it. */
export interface Bound {
  /** Native slot. */
  slot: number;
  /** Connection id of the listening socket. */
  id: number;
  /** The port actually bound. */
  port: number;
}

/** The records of an outbound connection go to its sink, not upward. */
interface Client {
  conn: Connection;
  sink: ClientSink;
}

/** The UTF-8 text of an ERROR or SECURE record (length u32, then the bytes). */
function payloadText(u8: Uint8Array, dv: DataView, off: number): string {
  const len = dv.getUint32(off + Payload.Length, true);
  return utf8Decoder.decode(u8.subarray(off + Payload.Bytes, off + Payload.Bytes + len));
}

/**
 * One native manager and its loop. Internal to `src/`: the user-facing
 * `Manager` wraps one.
 */
export class Loop {
  /** The native symbols. */
  readonly sym: Symbols;
  /** The native manager handle. */
  readonly handle: number;
  /** What connections need from this loop. */
  readonly host: ConnectionHost;
  #epfd: number;
  /** How idle waits leave the JS thread free (src/core/idle_wait.ts). */
  #idle: IdleWait;
  #closed = false;
  #closing: Promise<void> | undefined;

  #arena = new Uint8Array(ARENA_SIZE);
  #arenaView = new DataView(this.#arena.buffer);
  #arenaOff = 0;
  #batch: Uint8Array = this.#arena;
  #batchView: DataView = this.#arenaView;
  #pos = 0;
  #end = 0;

  /** Protocols by record kind, and by listener id. */
  #byKind: (Protocol | undefined)[] = [];
  #protocols: Protocol[] = [];
  /** Protocols that may drop their events from the backlog ({@linkcode Protocol.live}). */
  #filters: Protocol[] = [];
  #byListener = new Map<number, Protocol>();
  /** Connections by slot, with the protocol each belongs to. */
  #conns: (Connection | undefined)[] = [];
  #connProto: (Protocol | undefined)[] = [];
  #drainWaiters = new Map<Connection, PromiseWithResolvers<void>>();
  /** Consumers of single connections waiting for events (see `ConnectionHost.hold`). */
  #holds = 0;
  #backlog: LoopEvent[] = [];
  #backlogPos = 0;
  #filling: Promise<boolean> | undefined;
  #driving = false;
  #waiting: Promise<number> | undefined;
  /** Ends a wait that does not keep the process alive ({@linkcode kick}). */
  #endSleep: (() => void) | undefined;
  #lastYield = 0;
  #delivered = 0;
  #flushMark = 0;
  #flushQueued = false;
  #unflushed = false;
  /** Set while something else (a handler pump) consumes every batch. */
  pumping = false;
  /**
   * Outbound connections and the receivers of their events, by connection
   * id (not by slot: a slot can be reused natively before JS has decoded
   * its previous occupant's close).
   */
  #clients = new Map<number, Client>();
  /** Ids of outbound connections parked in a pool: they do not keep the loop running. */
  #idleClients = new Set<number>();
  /** Settled by a `close` event while a shutdown waits for connections. */
  #connClosed: PromiseWithResolvers<void> | undefined;
  /** Called once the native manager is freed. */
  #onClosed: (() => void)[] = [];

  /**
   * Wraps a native manager.
   *
   * @param handle A handle from `mgnet_manager_new`.
   */
  constructor(handle: number) {
    this.sym = lib();
    this.handle = handle;
    this.#epfd = check(this.sym.mgnet_wait_fd(handle));
    this.#idle = idleWait(this.sym, handle, this.#epfd);
    // deno-lint-ignore no-this-alias
    const self = this;
    this.host = {
      handle,
      sym: this.sym,
      get isClosed() {
        return self.#closed;
      },
      queued: () => this.#queued(),
      check: (rc: number) => this.check(rc),
      drained: (conn: Connection) => {
        let w = this.#drainWaiters.get(conn);
        if (!w) {
          w = Promise.withResolvers<void>();
          this.#drainWaiters.set(conn, w);
          this.#drive().catch(() => {}); // a failing poll surfaces in the loop itself
        }
        return w.promise;
      },
      hold: () => {
        this.#holds++;
        this.#drive().catch(() => {});
        let held = true;
        return () => {
          if (held) this.#holds--;
          held = false;
        };
      },
      wake: () => {
        if (!this.#closed) this.sym.mgnet_wake(handle);
      },
    };
  }

  /** True once {@linkcode close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Throws the error of a negative status (ManagerClosedError once closed). */
  check(rc: number): number {
    if (rc === Status.BadHandle || (rc < 0 && this.#closed)) throw new ManagerClosedError();
    return check(rc);
  }

  /**
   * Registers a protocol: its record kinds are decoded by it from now on.
   *
   * @param protocol The protocol.
   * @throws {Error} if one of its kinds is taken.
   */
  register(protocol: Protocol): void {
    for (const k of protocol.kinds) {
      if (this.#byKind[k] !== undefined || (Object.values(Kind) as number[]).includes(k)) {
        throw new Error(`record kind ${k} of ${protocol.name} is already registered`);
      }
    }
    for (const k of protocol.kinds) this.#byKind[k] = protocol;
    this.#protocols.push(protocol);
    if (protocol.live) this.#filters.push(protocol);
  }

  /** Registers a callback run once the native manager is freed. */
  onClosed(f: () => void): void {
    this.#onClosed.push(f);
  }

  /**
   * Binds a listening socket whose connections belong to `protocol`.
   *
   * @param url `scheme://host:port`; checked before it reaches native code.
   * @param schemes The schemes `protocol` serves (the URL's must be one).
   * @param protocol The protocol of accepted connections.
   * @param tls TLS settings (`tls.ts`) for a TLS listener (`https://`, `tls://`).
   * @returns Where it is bound.
   */
  listen(url: string, schemes: readonly string[], protocol: Protocol, tls?: Uint8Array): Bound {
    if (this.#closed) throw new ManagerClosedError();
    const a = parseListenUrl(url, schemes);
    const bytes = utf8Encoder.encode(`${a.scheme}://${a.host}:${a.port}`);
    const out = new Uint8Array(ListenOut.Size);
    const slot = check(
      tls
        ? this.sym.mgnet_tls_listen(this.handle, bytes, bytes.length, tls, tls.length, out)
        : this.sym.mgnet_listen(this.handle, bytes, bytes.length, out),
    );
    const dv = new DataView(out.buffer);
    const id = dv.getFloat64(ListenOut.Id, true);
    this.#byListener.set(id, protocol);
    this.#endSleep?.(); // a loop waiting without refs must now watch the listener
    return { slot, id, port: dv.getUint16(ListenOut.Port, true) };
  }

  /**
   * Replaces a TLS listener's settings; new handshakes use them.
   *
   * @param bound What {@linkcode listen} returned.
   * @param tls The new settings (`tls.ts`).
   */
  reloadTls(bound: Bound, tls: Uint8Array): void {
    if (this.#closed) throw new ManagerClosedError();
    check(this.sym.mgnet_tls_reload(this.handle, bound.slot, bound.id, tls, tls.length));
  }

  /**
   * Stops a listener (`mgnet_close` without draining).
   *
   * @param bound What {@linkcode listen} returned.
   */
  unlisten(bound: Bound): void {
    if (this.#closed) return;
    const rc = this.sym.mgnet_close(this.handle, bound.slot, bound.id, 0);
    if (rc !== Status.Closed) this.check(rc);
  }

  /**
   * Opens an outbound TCP (or TLS) connection to a resolved address; its
   * OPEN, DATA, ERROR and CLOSE events go to `sink`, not upward (records of
   * a protocol's own kinds go to that protocol, which finds the connection
   * by its id). The loop is driven while such connections are open.
   *
   * @param addr `tcp://IP:port` or `tcp://[IPv6]:port`.
   * @param tls TLS settings, for an encrypted connection.
   * @param sink The receiver of the connection's events.
   * @param native A protocol's own connect call (`connect`: writes the id
   *   as f64 to `out`, returns the slot) and connection object (`make`);
   *   by default `mgnet_connect` and a plain `Connection`.
   * @returns The connection.
   */
  openClient(
    addr: string,
    tls: ClientTls | undefined,
    sink: ClientSink,
    native?: { connect(addr: Uint8Array, out: Uint8Array): number; make(id: number): Connection },
  ): Connection {
    if (this.#closed) throw new ManagerClosedError();
    const a = utf8Encoder.encode(addr);
    const out = new Uint8Array(8);
    let slot: number;
    if (native) {
      slot = check(native.connect(a, out));
    } else {
      const name = utf8Encoder.encode(tls?.name ?? "");
      const ca = tls?.spec ?? tls?.ca ?? new Uint8Array(0);
      const flags = tls
        ? ConnectFlag.Tls | (tls.insecure ? ConnectFlag.Insecure : 0) | (tls.spec ? ConnectFlag.TlsSpec : 0)
        : 0;
      slot = check(
        this.sym.mgnet_connect(this.handle, a, a.length, flags, name, name.length, ca, ca.length, out),
      );
    }
    const id = new DataView(out.buffer).getFloat64(0, true);
    const conn = native ? native.make(id) : new Connection(id);
    connInternals.bind(conn, this.host, slot);
    this.#clients.set(conn.id, { conn, sink });
    this.kick(); // a waiting loop must add the new socket
    this.#drive().catch(() => {}); // a failing poll surfaces in the loop itself
    return conn;
  }

  /**
   * Registers a connection a protocol created with its own native call
   * (e.g. a bound datagram socket), in `slot`: its records decode through
   * `protocol`, and its ERROR and CLOSE records reach the consumer as for
   * an accepted connection.
   *
   * @param conn The connection object (not yet bound).
   * @param slot Its native slot.
   * @param protocol The protocol its records belong to.
   */
  adopt(conn: Connection, slot: number, protocol: Protocol): void {
    connInternals.bind(conn, this.host, slot);
    this.#conns[slot] = conn;
    this.#connProto[slot] = protocol;
  }

  /**
   * Registers an outbound connection a protocol created with its own
   * native call, in `slot`: as for {@linkcode openClient}, its core records
   * go to `sink` (never upward) and the loop is driven while it is open;
   * records of the protocol's own kinds still go to that protocol.
   *
   * @param conn The connection object (not yet bound).
   * @param slot Its native slot.
   * @param sink The receiver of its core events.
   */
  adoptClient(conn: Connection, slot: number, sink: ClientSink): void {
    connInternals.bind(conn, this.host, slot);
    this.#clients.set(conn.id, { conn, sink });
    this.sym.mgnet_wake(this.handle); // a waiting loop must see the new socket
    this.#drive().catch(() => {}); // a failing poll surfaces in the loop itself
  }

  /**
   * Registers an outbound connection made by a protocol's own native
   * connect call (its slot and id): its core events go to `sink`, its
   * protocol records to the protocol registered for their kinds. The loop
   * is driven while it is open, as for {@linkcode openClient}.
   *
   * @param slot The native slot.
   * @param id The connection id.
   * @param sink The receiver of the connection's core events.
   * @returns The connection.
   */
  attachClient(slot: number, id: number, sink: ClientSink): Connection {
    const conn = new Connection(id);
    connInternals.bind(conn, this.host, slot);
    this.#clients.set(conn.id, { conn, sink });
    this.sym.mgnet_wake(this.handle); // a waiting loop must add the new socket
    this.#drive().catch(() => {});
    return conn;
  }

  /**
   * Hands a connection to another protocol (an upgrade): its close is
   * reported to that protocol from now on.
   *
   * @param conn A connection accepted by one of this loop's listeners.
   * @param protocol Its new protocol.
   */
  setProtocol(conn: Connection, protocol: Protocol): void {
    const slot = connInternals.slot(conn);
    if (this.#conns[slot] === conn) this.#connProto[slot] = protocol;
  }

  /**
   * Keeps the loop driven while something outside the manager's iterator
   * waits for events (a per-connection iterator): events that arrive
   * meanwhile for the iterator wait in its backlog.
   *
   * @returns Ends the hold (call once).
   */
  hold(): () => void {
    this.#holds++;
    this.#drive().catch(() => {});
    let held = true;
    return () => {
      if (held) {
        held = false;
        this.#holds--;
      }
    };
  }

  /**
   * Marks an outbound connection idle (parked in a pool: it no longer
   * keeps the loop running) or busy.
   *
   * @param conn The connection from {@linkcode openClient}.
   * @param idle Idle or busy.
   */
  setClientIdle(conn: Connection, idle: boolean): void {
    if (!this.#clients.has(conn.id)) return;
    if (idle) this.#idleClients.add(conn.id);
    else if (this.#idleClients.delete(conn.id)) this.#drive().catch(() => {});
  }

  /**
   * Queues bytes on an outbound connection.
   *
   * @param conn The connection from {@linkcode openClient}.
   * @param data The bytes.
   * @returns The bytes queued and not yet sent.
   */
  sendClient(conn: Connection, data: Uint8Array): number {
    connInternals.assertOpen(conn);
    const rc = this.sym.mgnet_send(this.handle, connInternals.slot(conn), conn.id, data, 0, data.length);
    if (rc < 0) this.check(rc);
    this.#queued();
    return rc;
  }

  /**
   * Resolves once at most `mark` bytes remain unsent on an outbound
   * connection (at once if that is already so); rejects with
   * `ConnectionClosedError` if it closes first.
   *
   * @param conn The connection from {@linkcode openClient}.
   * @param mark The level to wait for (bytes).
   * @returns The wait.
   */
  clientDrained(conn: Connection, mark: number): Promise<void> {
    connInternals.assertOpen(conn);
    const rc = this.sym.mgnet_client_want_drain(this.handle, connInternals.slot(conn), conn.id, mark);
    if (rc < 0) this.check(rc);
    return rc === 0 ? Promise.resolve() : this.host.drained(conn);
  }

  /**
   * Tells the core that bytes received on an outbound connection were
   * consumed (reading pauses while over 1 MiB is not).
   *
   * @param conn The connection from {@linkcode openClient}.
   * @param n Bytes consumed since the last call.
   */
  ackClient(conn: Connection, n: number): void {
    if (conn.closed || this.#closed) return;
    if (this.sym.mgnet_client_ack(this.handle, connInternals.slot(conn), conn.id, n) === 1) {
      this.sym.mgnet_wake(this.handle);
    }
  }

  /** The connection in `slot` if it still has id `id`, else one made by `protocol`. */
  #conn(slot: number, id: number, protocol: Protocol | undefined): Connection {
    const c = this.#conns[slot];
    if (c !== undefined && c.id === id) return c;
    const made = this.#accept(protocol, slot, id);
    this.#conns[slot] = made;
    this.#connProto[slot] = protocol;
    return made;
  }

  /** The connection object of a new connection: its protocol's, or a plain one. */
  #accept(
    protocol: Protocol | undefined,
    slot: number,
    id: number,
    remote?: NetAddr,
    local?: NetAddr,
  ): Connection {
    if (protocol?.accept) return protocol.accept(this.host, slot, id, remote, local);
    const conn = new Connection(id, remote, local);
    connInternals.bind(conn, this.host, slot);
    return conn;
  }

  #view: { u8: Uint8Array; dv: DataView; off: number; slot: number; id: number } = {
    u8: this.#arena,
    dv: this.#arenaView,
    off: 0,
    slot: 0,
    id: 0,
  };

  #connOf = (slot: number, id: number): Connection => {
    const c = this.#conns[slot];
    if (c !== undefined && c.id === id) return c;
    return this.#clients.get(id)?.conn ?? this.#conn(slot, id, this.#connProto[slot]);
  };

  /** Decodes the next event of the current batch, or undefined. */
  #decode(): LoopEvent | undefined {
    const u8 = this.#batch;
    const dv = this.#batchView;
    while (this.#pos < this.#end) {
      const off = this.#pos;
      this.#pos += dv.getUint32(off + Header.Length, true);
      const id = dv.getUint32(off + Header.IdLow, true) +
        dv.getUint32(off + Header.IdHigh, true) * 0x1_0000_0000;
      const slot = dv.getUint32(off + Header.Slot, true);
      const kind = u8[off + Header.Kind];
      switch (kind) {
        case Kind.Data: {
          const len = dv.getUint32(off + Payload.Length, true);
          this.#clients.get(id)?.sink.onData(u8.subarray(off + Payload.Bytes, off + Payload.Bytes + len));
          continue;
        }
        case Kind.Open: {
          const ipv6 = (u8[off + Header.Flags] & Open.FlagIpv6) !== 0;
          const remote = decodeAddr(
            u8,
            off + Open.RemoteAddr,
            dv.getUint16(off + Open.RemotePort, true),
            ipv6,
          );
          const local = decodeAddr(u8, off + Open.LocalAddr, dv.getUint16(off + Open.LocalPort, true), ipv6);
          const client = this.#clients.get(id);
          if (client) {
            client.sink.onOpen(remote, local);
            continue;
          }
          const listenerId = dv.getUint32(off + Open.ListenerLow, true) +
            dv.getUint32(off + Open.ListenerHigh, true) * 0x1_0000_0000;
          const protocol = this.#byListener.get(listenerId);
          const conn = this.#accept(protocol, slot, id, remote, local);
          this.#conns[slot] = conn;
          this.#connProto[slot] = protocol;
          return { type: "open", conn, listenerId } as OpenEvent;
        }
        case Kind.Close: {
          const client = this.#clients.get(id);
          if (client) {
            connInternals.markClosed(client.conn);
            this.#clients.delete(id);
            this.#idleClients.delete(id);
            this.#rejectDrain(client.conn);
            client.sink.onClose();
            this.#connClosed?.resolve(); // a graceful shutdown counts outbound connections too
            continue;
          }
          const protocol = this.#connProto[slot];
          const conn = this.#conn(slot, id, protocol);
          connInternals.markClosed(conn);
          this.#conns[slot] = undefined;
          this.#connProto[slot] = undefined;
          protocol?.closed?.(conn);
          this.#connClosed?.resolve();
          this.#rejectDrain(conn);
          return { type: "close", conn } as ConnCloseEvent;
        }
        case Kind.Drain: {
          // Internal: a streamed response (or a client's request body) has room again.
          const conn = this.#liveConn(slot, id);
          const w = conn && this.#drainWaiters.get(conn);
          if (w) {
            this.#drainWaiters.delete(conn!);
            w.resolve();
          }
          continue;
        }
        case Kind.Secure: {
          // Internal: the end of a connection's TLS upgrade (its startTls() promise).
          const conn = this.#liveConn(slot, id);
          const failed = (u8[off + Header.Flags] & SECURE_FAILED) !== 0;
          if (conn) connInternals.secured(conn, failed ? payloadText(u8, dv, off) : undefined);
          continue;
        }
        case Kind.Error: {
          const message = payloadText(u8, dv, off);
          const client = this.#clients.get(id);
          if (client) {
            client.sink.onError(message);
            continue;
          }
          return {
            type: "error",
            conn: this.#conn(slot, id, this.#connProto[slot]),
            message,
          } as ConnErrorEvent;
        }
        default: {
          const protocol = this.#byKind[kind];
          if (protocol === undefined) continue; // a kind nobody registered: skip it
          const v = this.#view;
          v.u8 = u8;
          v.dv = dv;
          v.off = off;
          v.slot = slot;
          v.id = id;
          const ev = protocol.decode(v as RecordView, this.#connOf);
          if (ev !== undefined) return ev;
          continue;
        }
      }
    }
    return undefined;
  }

  /** The open connection (accepted or outbound) a record names, if JS still has it. */
  #liveConn(slot: number, id: number): Connection | undefined {
    const own = this.#conns[slot];
    return own?.id === id ? own : this.#clients.get(id)?.conn;
  }

  #rejectDrain(conn: Connection): void {
    const w = this.#drainWaiters.get(conn);
    if (w) {
      this.#drainWaiters.delete(conn);
      w.reject(new ConnectionClosedError(`connection ${conn.id} closed`));
    }
  }

  #wait(ms: number): Promise<number> {
    const p = this.#idle.wait(ms);
    this.#waiting = p;
    return p.finally(() => {
      if (this.#waiting === p) this.#waiting = undefined;
      this.#lastYield = performance.now();
    });
  }

  /** Waits on the JS thread for traffic, briefly. */
  #bridgeGap(ms: number): boolean {
    return this.sym.mgnet_wait_sync(this.#epfd, Math.min(ms, SYNC_WAIT_MS)) > 0;
  }

  /** Starts the busy-time clock (a consumer begins iterating). */
  startClock(): void {
    this.#lastYield = performance.now();
  }

  /**
   * Makes a new batch current, shared by whoever needs the loop to run
   * right now. Resolves false once the loop is closed.
   */
  fill(): Promise<boolean> {
    this.#filling ??= this.#fill().finally(() => this.#filling = undefined);
    return this.#filling;
  }

  /** Makes a new batch current: polls, or waits when idle. False once closed. */
  async #fill(): Promise<boolean> {
    for (;;) {
      if (this.#closed) return false;
      if (performance.now() - this.#lastYield >= YIELD_MS) {
        // Busy for a while: let timers and other I/O of this process run.
        await this.#wait(0);
        continue;
      }
      if (this.#pos < this.#end) this.#toBacklog();
      if (this.#pollOnce() > 0) return true;
      const ms = this.sym.mgnet_next_timeout(this.handle);
      if (ms < 0) this.check(ms);
      if (ms === 0) continue;
      // Bridging a gap blocks this thread: only when no JS code can be about
      // to add work (no request awaits its handler, no outbound connection is
      // busy: its owner's next step runs in a microtask after this one).
      if (
        this.sym.mgnet_awaiting(this.handle) === 0 && this.#clients.size === this.#idleClients.size &&
        this.#bridgeGap(ms)
      ) continue;
      // Nothing that keeps the process alive (no listener, connection,
      // ref'd timer or mailbox): wait on an unref'd JS timer instead of a
      // native wait, so the process may exit. `kick()` ends it early.
      if (this.sym.mgnet_refs(this.handle) > 0) await this.#wait(ms);
      else await this.#sleep(ms);
    }
  }

  /** A wait that does not keep the process alive; ends after `ms` or at {@linkcode kick}. */
  #sleep(ms: number): Promise<number> {
    const { promise, resolve } = Promise.withResolvers<number>();
    const timer = setTimeout(resolve, ms, 0);
    Deno.unrefTimer(timer);
    this.#endSleep = () => {
      clearTimeout(timer);
      resolve(1);
    };
    this.#waiting = promise;
    return promise.finally(() => {
      if (this.#waiting === promise) this.#waiting = undefined;
      this.#endSleep = undefined;
      this.#lastYield = performance.now();
    });
  }

  /**
   * Ends the current wait (native or not) at once: new work appeared (a
   * listener, a connection, a timer, a mailbox) and the loop must look.
   */
  kick(): void {
    if (!this.#closed) this.sym.mgnet_wake(this.handle);
    this.#endSleep?.();
  }

  /** Counts an event handed to a consumer (for the flush heuristic). */
  delivered(): void {
    this.#delivered++;
  }

  /** True if an event is ready without polling. */
  hasEvents(): boolean {
    return this.#backlogPos < this.#backlog.length || this.#pos < this.#end;
  }

  /** The next event: from the backlog first, then the current batch. */
  next(): LoopEvent | undefined {
    while (this.#backlogPos < this.#backlog.length) {
      const ev = this.#backlog[this.#backlogPos++];
      if (this.#backlogPos === this.#backlog.length) {
        this.#backlog = [];
        this.#backlogPos = 0;
      }
      if (this.#filters.length === 0 || this.#live(ev)) return ev;
    }
    return this.#decode();
  }

  #live(ev: LoopEvent): boolean {
    for (const p of this.#filters) if (!p.live!(ev)) return false;
    return true;
  }

  /** Decodes the rest of the current batch into the backlog (before a new poll replaces it). */
  #toBacklog(): void {
    for (let ev = this.#decode(); ev !== undefined; ev = this.#decode()) this.#backlog.push(ev);
  }

  /**
   * Drives the loop while a streamed response waits for room or an
   * outbound connection is open, and nobody else polls (no handlers, or a
   * `for await` body awaiting `write()` or a client request): events that
   * arrive meanwhile wait in the backlog for the iterator.
   */
  async #drive(): Promise<void> {
    if (this.#driving || this.pumping) return;
    this.#driving = true;
    try {
      while (
        (this.#drainWaiters.size > 0 || this.#holds > 0 || this.#clients.size > this.#idleClients.size) &&
        !this.#closed
      ) {
        this.#toBacklog();
        if (!(await this.fill())) break;
        this.#toBacklog();
      }
    } finally {
      this.#driving = false;
    }
  }

  /** Replies were queued: make sure they are sent soon (see module docs). */
  #queued(): void {
    this.#unflushed = true;
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      this.#flushMark = this.#delivered;
      queueMicrotask(this.#flushTask);
    }
  }

  #flushTask = (): void => {
    if (this.#closed || !this.#unflushed) {
      this.#flushQueued = false;
      return;
    }
    // The consumer went on to the next event of the same batch without
    // awaiting: the batch's end sends everything in one go.
    if (this.#delivered !== this.#flushMark && this.hasEvents()) {
      this.#flushMark = this.#delivered;
      queueMicrotask(this.#flushTask);
      return;
    }
    this.#flushQueued = false;
    this.#unflushed = false;
    this.sym.mgnet_flush(this.handle);
  };

  /** Flushes, polls once and makes the next batch current. Returns its length. */
  #pollOnce(): number {
    this.#unflushed = false;
    const free = this.#arena.length - this.#arenaOff;
    let n = this.sym.mgnet_poll(this.handle, this.#arena, this.#arenaOff, free);
    if (n <= 0) {
      if (n < 0) this.check(n);
      return 0;
    }
    if (n > free) {
      this.#newArena(n);
      n = check(this.sym.mgnet_take(this.handle, this.#arena, this.#arena.length));
    }
    this.#batch = this.#arena;
    this.#batchView = this.#arenaView;
    this.#pos = this.#arenaOff;
    this.#end = this.#arenaOff + n;
    this.#arenaOff = (this.#end + 7) & ~7;
    if (this.#arena.length - this.#arenaOff < ARENA_MIN_FREE) this.#newArena(0);
    return n;
  }

  #newArena(min: number): void {
    // Earlier batches stay alive for as long as events reference them.
    this.#arena = new Uint8Array(Math.max(ARENA_SIZE, min));
    this.#arenaView = new DataView(this.#arena.buffer);
    this.#arenaOff = 0;
  }

  /**
   * One step of a graceful shutdown (`mgnet_shutdown`): returns how many
   * connections are still open, and a promise settled by the next close.
   */
  shutdownStep(): { open: number; closedOne: Promise<void> } {
    this.#connClosed = Promise.withResolvers<void>();
    const open = this.check(this.sym.mgnet_shutdown(this.handle));
    this.sym.mgnet_wake(this.handle); // the loop runs and closes what is done
    return { open, closedOne: this.#connClosed.promise };
  }

  /**
   * Closes the loop: sends queued output, waits for a pending wait to
   * return and for `stopped` (a consumer finishing its batch), frees the
   * native manager and fails whatever still waits. Idempotent.
   *
   * @param stopped Settles once the consumer of batches has stopped.
   * @returns A promise that settles once everything is freed.
   */
  close(stopped?: Promise<void>): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    this.#closing = (async () => {
      this.sym.mgnet_flush(this.handle);
      this.sym.mgnet_wake(this.handle);
      this.#endSleep?.();
      while (this.#waiting) await this.#waiting.catch(() => {});
      await stopped;
      this.#idle.close();
      this.sym.mgnet_manager_free(this.handle);
      for (const c of this.#conns) if (c) connInternals.markClosed(c);
      const clients = [...this.#clients.values()];
      this.#clients.clear();
      this.#idleClients.clear();
      for (const { conn, sink } of clients) {
        connInternals.markClosed(conn);
        sink.onClose();
      }
      for (const f of this.#onClosed) f();
      for (const p of this.#protocols) p.dispose?.();
      for (const [conn, w] of this.#drainWaiters) {
        w.reject(new ConnectionClosedError(`connection ${conn.id} closed`));
      }
      this.#drainWaiters.clear();
      this.#conns = [];
      this.#connProto = [];
      this.#connClosed = undefined;
    })();
    return this.#closing;
  }
}
