/**
 * WebSocket clients: `Manager.connect("ws://...")`. The handshake request
 * is written and the server's 101 checked in Rust (status, `upgrade`,
 * `connection`, `sec-websocket-accept`, a subprotocol among those offered,
 * extensions); frames are masked there. Reconnecting is the caller's
 * choice: a closed socket stays closed.
 *
 * @module
 */

import type { Loop } from "../core/loop.ts";
import { ConnectFlag } from "../core/abi.ts";
import { encodeClientTls } from "../core/tls.ts";
import { check } from "../core/ffi.ts";
import { utf8Encoder } from "../core/bytes.ts";
import { ClientError, resolveAddr, systemCa } from "../http/client.ts";
import { WsOpt } from "./abi.ts";
import type { WsProtocol } from "./protocol.ts";
import { type MgWebSocket, socketInternals, type WebSocketOptions, wsTuning } from "./socket.ts";

/** Options of a WebSocket client connection. */
export interface WebSocketConnectOptions extends WebSocketOptions {
  /** Subprotocols to offer; the server may pick one (`socket.protocol`). */
  protocols?: string | string[];
  /** Extra request headers (e.g. `authorization`, `origin`, `cookie`). */
  headers?: HeadersInit;
  /** Trusted CA certificates for `wss:` (default: the system bundle). */
  ca?: string | Uint8Array;
  /** `wss:` without verifying the server's certificate (the name is still sent as SNI). */
  insecure?: boolean;
  /** Client certificate chain (PEM) for `wss:` servers that ask for one (mutual TLS), with `key`. */
  cert?: string | Uint8Array;
  /** Private key (PEM) of `cert`. */
  key?: string | Uint8Array;
  /** Longest wait for the connection and the handshake (ms, default 10 000). */
  connectTimeout?: number;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const MANAGED = new Set([
  "host",
  "upgrade",
  "connection",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-extensions",
  "sec-websocket-protocol",
]);

/**
 * Opens a WebSocket to `url`: the work behind `Manager.connect("ws://...")`.
 *
 * @param loop The manager's loop.
 * @param ws Its WebSocket protocol.
 * @param url `ws://` or `wss://` URL.
 * @param options Subprotocols, headers, TLS trust, limits.
 * @returns The socket, once the handshake succeeded.
 */
export async function connectWebSocket(
  loop: Loop,
  ws: WsProtocol,
  url: string | URL,
  options: WebSocketConnectOptions = {},
): Promise<MgWebSocket> {
  const u = new URL(url);
  if (u.protocol !== "ws:" && u.protocol !== "wss:") {
    throw new TypeError(`unsupported URL scheme ${u.protocol} (ws: or wss:)`);
  }
  if (u.hash !== "") throw new TypeError("a WebSocket URL has no fragment");
  const protocols = typeof options.protocols === "string" ? [options.protocols] : options.protocols ?? [];
  for (const p of protocols) {
    if (!TOKEN.test(p)) throw new TypeError(`invalid subprotocol ${JSON.stringify(p)}`);
  }
  if (new Set(protocols).size !== protocols.length) throw new TypeError("a subprotocol is offered twice");
  const tuning = wsTuning(options, 0);
  const tls = u.protocol === "wss:";
  const port = Number(u.port || (tls ? 443 : 80));
  const name = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
  let head = `GET ${u.pathname}${u.search} HTTP/1.1\r\nhost: ${u.host}\r\nupgrade: websocket\r\n` +
    "connection: Upgrade\r\n";
  if (protocols.length > 0) head += `sec-websocket-protocol: ${protocols.join(", ")}\r\n`;
  for (const [k, v] of new Headers(options.headers)) {
    if (MANAGED.has(k)) throw new TypeError(`header ${k} is managed by mgnet`);
    head += `${k}: ${v}\r\n`;
  }
  const addr = await resolveAddr(name, port);
  const ca = tls
    ? encodeClientTls({
      ca: options.ca ?? (options.insecure ? undefined : systemCa()),
      cert: options.cert,
      key: options.key,
      insecure: options.insecure,
    }, ["http/1.1"])
    : new Uint8Array(0);
  const tlsName = utf8Encoder.encode(tls ? name : "");
  const a = utf8Encoder.encode(addr);
  const h = utf8Encoder.encode(head);
  const p = utf8Encoder.encode(protocols.join("\n"));
  const out = new Uint8Array(8);
  const flags = tls
    ? ConnectFlag.Tls | ConnectFlag.TlsSpec | (options.insecure ? ConnectFlag.Insecure : 0)
    : 0;
  const wsFlags = (options.autoPong === false ? WsOpt.NoAutoPong : 0) | (options.deflate ? WsOpt.Deflate : 0);
  const rc = loop.sym.mgnet_ws_connect(
    loop.handle,
    a,
    a.length,
    flags,
    tlsName,
    tlsName.length,
    ca,
    ca.length,
    h,
    h.length,
    p,
    p.length,
    options.maxMessageSize ?? 0,
    options.closeTimeout ?? 0,
    wsFlags,
    out,
  );
  let slot: number;
  try {
    slot = check(rc);
  } catch (e) {
    const msg = (e as Error).message;
    const kind = /^TLS: /.test(msg) ? "tls" : /refused/i.test(msg) ? "refused" : "connect";
    throw new ClientError(kind, `${u.origin}: ${msg}`, { cause: e });
  }
  const id = new DataView(out.buffer).getFloat64(0, true);
  if (tuning) {
    // Right after the connect: the socket exists (its keep-alive starts once open).
    check(loop.sym.mgnet_ws_tune(loop.handle, slot, id, tuning.ping, tuning.pong, tuning.maxBuffered));
  }
  const holder: { socket?: MgWebSocket } = {};
  let error: string | undefined;
  const conn = loop.attachClient(slot, id, {
    onOpen() {},
    onData() {},
    onError(message) {
      error = message;
    },
    onClose() {
      const socket = holder.socket;
      if (!socket) return;
      if (socket.readyState === 0) {
        const msg = error ?? "the connection closed before the handshake completed";
        const kind = /^TLS\b|certificate/.test(msg)
          ? "tls"
          : /handshake|the server|subprotocol|extensions/.test(msg)
          ? "protocol"
          : /refused/i.test(msg)
          ? "refused"
          : /tls/i.test(msg)
          ? "tls"
          : "connect";
        socketInternals.failed(socket, new ClientError(kind, `${u.origin}: ${msg}`));
      }
      ws.gone(socket);
    },
  });
  const socket = holder.socket = socketInternals.create(conn, loop, true, u.href);
  ws.add(socket);
  const timeout = options.connectTimeout ?? 10_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      socketInternals.whenOpen(socket),
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => {
          reject(new ClientError("timeout", `connecting to ${u.origin} timed out`));
          if (!conn.closed) conn.close();
        }, timeout)
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
  return socket;
}
