/**
 * Connections: the stable handle JS gets for one Mongoose connection. The
 * native slot and the manager's plumbing are private fields; code inside
 * `src/` reaches them through {@linkcode connInternals}, which `mod.ts`
 * does not re-export, so no handle reaches user code.
 *
 * @module
 */

import { ConnectionClosedError, MgnetError } from "./errors.ts";
import { utf8Decoder } from "./bytes.ts";
import { Status } from "./abi.ts";
import type { Symbols } from "./ffi.ts";

/** An IP address and port, shaped like `Deno.NetAddr`. */
export interface NetAddr {
  /** `"tcp"` for connections, `"udp"` for datagram sockets and their peers. */
  transport: "tcp" | "udp";
  /** IPv4 dotted quad or IPv6 text. */
  hostname: string;
  /** Port number. */
  port: number;
}

/** What a connection needs from the loop that owns it (inside `src/` only). */
export interface ConnectionHost {
  /** Native manager handle. */
  readonly handle: number;
  /** Native symbols. */
  readonly sym: Symbols;
  /** True once the manager is closed. */
  readonly isClosed: boolean;
  /** Called after output was queued, so it gets flushed. */
  queued(): void;
  /** Throws the error of a negative native status. */
  check(rc: number): number;
  /**
   * Resolves when the connection's DRAIN event arrives; rejects with
   * ConnectionClosedError when it closes first.
   */
  drained(conn: Connection): Promise<void>;
  /**
   * Keeps the loop running (polling) until the returned function is called,
   * even when nobody iterates the manager: for a consumer waiting on one
   * connection's own events.
   */
  hold(): () => void;
  /** Makes a waiting loop poll again (after reading resumed). */
  wake(): void;
}

/**
 * Receives the events of an outbound connection (made by the loop's
 * `openClient`); they never reach the manager's iterator.
 */
export interface ClientSink {
  /** Connected (for TLS: the handshake is done). */
  onOpen(remoteAddr: NetAddr, localAddr: NetAddr): void;
  /** Bytes arrived (a view that stays valid). */
  onData(bytes: Uint8Array): void;
  /** The connection failed; `onClose` follows. */
  onError(message: string): void;
  /** The connection is gone. */
  onClose(): void;
}

/** TLS settings of an outbound connection. */
export interface ClientTls {
  /** Server name: SNI and the name the certificate must carry. */
  name: string;
  /** Trusted CA certificates, PEM or DER. */
  ca?: Uint8Array;
  /** Skip certificate and name verification. */
  insecure?: boolean;
  /** A full settings buffer (`tls.ts`: CA, client certificate, ALPN), instead of `ca`. */
  spec?: Uint8Array;
}

/** The private parts of a connection, for code inside `src/`. */
export interface ConnInternals {
  /** Ties a new connection to its loop and native slot. */
  bind(conn: Connection, host: ConnectionHost, slot: number): void;
  /** The native slot. */
  slot(conn: Connection): number;
  /** The owning loop. */
  host(conn: Connection): ConnectionHost;
  /** Marks the connection closed (its close event was decoded). */
  markClosed(conn: Connection): void;
  /** Throws ConnectionClosedError if the connection is closed. */
  assertOpen(conn: Connection): void;
  /** Sets the addresses of an outbound connection once it is connected. */
  setAddrs(conn: Connection, remote: NetAddr, local: NetAddr): void;
  /** Waits for the end of a TLS upgrade started natively (a SECURE record). */
  upgrading(conn: Connection): Promise<void>;
  /** The SECURE record of an upgrade: done, or failed with `failure`. */
  secured(conn: Connection, failure?: string): void;
  /** True while a TLS upgrade is under way. */
  upgradePending(conn: Connection): boolean;
}

/** Accessors of private connection state; not re-exported by `mod.ts`. */
export let connInternals: ConnInternals;

/** What a connection's TLS handshake agreed: see {@linkcode Connection.tlsInfo}. */
export interface TlsInfo {
  /** `"TLSv1.3"` or `"TLSv1.2"`. */
  protocol: string;
  /** The cipher suite, as rustls names it (`"TLS13_AES_256_GCM_SHA384"`). */
  cipherSuite: string;
  /** The application protocol agreed with ALPN (`"http/1.1"`), or `""`. */
  alpnProtocol: string;
  /** The host name the client sent with SNI, seen by a server; `""` otherwise. */
  serverName: string;
  /**
   * The peer's certificate chain as it was sent, DER, leaf first: the
   * server's for a client connection; a client's for a server that asked
   * for one (`requestCert`). Empty when the peer sent none.
   */
  peerCertificates: Uint8Array[];
}

/**
 * One network connection of a `Manager`. Connections are numbers natively;
 * this object is the JS handle for one, valid until its `close` event.
 * Using it after that throws {@linkcode ConnectionClosedError}.
 *
 * @example Closing a client's connection after answering it
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const { port } = mgr.listen("http://127.0.0.1:0");
 * const res = fetch(`http://127.0.0.1:${port}/`).then((r) => r.text());
 * for await (const ev of mgr) {
 *   if (ev.type === "http") {
 *     ev.reply(200, "bye");
 *     ev.conn.close();
 *   }
 *   if (ev.type === "close") {
 *     assert.equal(ev.conn.closed, true);
 *     break;
 *   }
 * }
 * assert.equal(await res, "bye");
 * ```
 */
export class Connection {
  /** Mongoose's connection id: unique within the manager, never reused. */
  readonly id: number;
  /** The peer's address (set when the connection was accepted). */
  readonly remoteAddr: NetAddr | undefined;
  /** Our side's address. */
  readonly localAddr: NetAddr | undefined;
  /**
   * Whatever the application wants to keep with this connection (a user
   * name, a session, a parser): mgnet never reads it. `undefined` at first.
   */
  data: unknown = undefined;
  #slot = -1;
  #host: ConnectionHost | undefined;
  #closed = false;
  /** A TLS upgrade under way (startTls). */
  #upgrade: PromiseWithResolvers<void> | undefined;

  static {
    connInternals = {
      bind: (c, host, slot) => {
        c.#host = host;
        c.#slot = slot;
      },
      slot: (c) => c.#slot,
      host: (c) => c.#host!,
      markClosed: (c) => {
        c.#closed = true;
        const u = c.#upgrade;
        c.#upgrade = undefined;
        u?.reject(new ConnectionClosedError(`connection ${c.id} closed during its TLS handshake`));
      },
      assertOpen: (c) => {
        if (c.closed) throw new ConnectionClosedError(`connection ${c.id} is closed`);
      },
      setAddrs: (c, remote, local) => {
        const w = c as { remoteAddr: NetAddr | undefined; localAddr: NetAddr | undefined };
        w.remoteAddr = remote;
        w.localAddr = local;
      },
      upgrading: (c) => {
        c.#upgrade = Promise.withResolvers<void>();
        return c.#upgrade.promise;
      },
      upgradePending: (c) => c.#upgrade !== undefined,
      secured: (c, failure) => {
        const u = c.#upgrade;
        c.#upgrade = undefined;
        if (failure === undefined) u?.resolve();
        else u?.reject(new MgnetError(failure, "Io"));
      },
    };
  }

  /**
   * Made by mgnet when a connection appears; user code receives connections
   * from events. One constructed by hand belongs to no manager and counts
   * as closed.
   *
   * @param id The connection id.
   * @param remoteAddr The peer's address.
   * @param localAddr The local address.
   */
  constructor(id: number, remoteAddr?: NetAddr, localAddr?: NetAddr) {
    this.id = id;
    this.remoteAddr = remoteAddr;
    this.localAddr = localAddr;
  }

  /** True after the connection closed (its `close` event was delivered). */
  get closed(): boolean {
    return this.#closed || this.#host === undefined || this.#host.isClosed;
  }

  /**
   * What this connection's TLS handshake agreed: protocol, cipher suite,
   * ALPN, SNI and the peer's certificates (with mutual TLS, the client's:
   * who connected). `undefined` for a connection without TLS, or while its
   * handshake runs.
   *
   * @returns The handshake's results, or `undefined`.
   * @throws {ConnectionClosedError} once the connection is closed (an event
   *   handled after its connection closed natively may already find it so).
   *
   * @example What an HTTPS server sees
   * ```ts
   * import assert from "node:assert/strict";
   * import { Manager, selfSignedCert } from "../../mod.ts";
   *
   * await using mgr = new Manager();
   * const tls = selfSignedCert(["localhost"]);
   * let seen: string | undefined;
   * const l = mgr.listen("https://127.0.0.1:0", {
   *   ...tls,
   *   onRequest: (ev) => {
   *     seen = ev.conn.tlsInfo()?.protocol;
   *     ev.reply(200, "hi");
   *   },
   * });
   * const res = await mgr.request(`https://localhost:${l.port}/`, { ca: tls.cert });
   * assert.equal(await res.text(), "hi");
   * assert.equal(seen, "TLSv1.3");
   * ```
   */
  tlsInfo(): TlsInfo | undefined {
    const host = this.#host;
    if (this.closed || host === undefined) throw new ConnectionClosedError(`connection ${this.id} is closed`);
    let out = new Uint8Array(4096);
    for (;;) {
      const n = host.check(host.sym.mgnet_tls_info(host.handle, this.#slot, this.id, out, out.length));
      if (n === 0) return undefined;
      if (n <= out.length) return decodeTlsInfo(out.subarray(0, n));
      out = new Uint8Array(n);
    }
  }

  /**
   * Closes the connection after sending what is already queued. Requests
   * not yet answered are dropped. Calling it again does nothing.
   */
  close(): void {
    const host = this.#host;
    if (this.closed || host === undefined) return;
    const rc = host.sym.mgnet_close(host.handle, this.#slot, this.id, 1);
    if (rc === Status.Closed) return; // already gone natively: closing is idempotent
    host.check(rc);
    host.queued();
  }
}

/** Decodes `mgnet_tls_info`'s encoding (rust/src/tls/conn.rs, `info`). */
function decodeTlsInfo(b: Uint8Array): TlsInfo {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let at = 0;
  const short = (): string => {
    const n = b[at];
    const s = utf8Decoder.decode(b.subarray(at + 1, at + 1 + n));
    at += 1 + n;
    return s;
  };
  const protocol = short(), cipherSuite = short(), alpnProtocol = short(), serverName = short();
  const count = dv.getUint16(at, true);
  at += 2;
  const peerCertificates: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const n = dv.getUint32(at, true);
    peerCertificates.push(b.slice(at + 4, at + 4 + n));
    at += 4 + n;
  }
  return { protocol, cipherSuite, alpnProtocol, serverName, peerCertificates };
}
