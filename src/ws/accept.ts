/**
 * Server-side WebSockets: accepting an upgrade from a request event
 * ({@linkcode acceptWebSocket}), the fetch-style {@linkcode upgradeWebSocket}
 * for `serve()`, and {@linkcode broadcast}.
 *
 * @module
 */

import { connInternals } from "../core/connection.ts";
import { MgnetError } from "../core/errors.ts";
import { utf8Encoder } from "../core/bytes.ts";
import { encodedLen, encodeHead, encodeString, type ReplyHeaders } from "../http/headers.ts";
import { type HttpRequestEvent, requestInternals } from "../http/request_event.ts";
import { Opcode, WsOpt } from "./abi.ts";
import { wsProtocolOf } from "./protocol.ts";
import {
  type MgWebSocket,
  socketInternals,
  type WebSocketData,
  type WebSocketOptions,
  type WsTuning,
  wsTuning,
} from "./socket.ts";

/** How to accept a WebSocket upgrade. */
export interface WebSocketAcceptOptions extends WebSocketOptions {
  /**
   * The subprotocol chosen; it must be one the client offered in
   * `sec-websocket-protocol`. Only it is echoed; none: no header.
   */
  protocol?: string;
  /** Extra response headers for the 101 (e.g. `set-cookie`). */
  headers?: ReplyHeaders;
  /**
   * `Deno.upgradeWebSocket`'s keep-alive, in seconds: after half of it
   * without a frame from the peer a ping is sent, and if nothing arrives in
   * the other half the socket is closed with 1001 "No response from ping
   * frame." (see `pingInterval`, which this sets to `idleTimeout / 2` s,
   * and `pongTimeout`, likewise). So a silent peer is closed
   * `idleTimeout` seconds after its last frame. Default: 30 for
   * {@linkcode upgradeWebSocket} (Deno's), none for
   * {@linkcode acceptWebSocket}; 0 turns it off. Give it or
   * `pingInterval`, not both.
   */
  idleTimeout?: number;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function hasToken(value: string | undefined, token: string): boolean {
  return value !== undefined && value.split(",").some((t) => t.trim().toLowerCase() === token);
}

/**
 * Why `ev` is not a WebSocket handshake we can accept, or `undefined` when
 * it is one.
 *
 * @param ev A request event.
 * @returns The reason, or undefined.
 */
export function webSocketRequestProblem(ev: HttpRequestEvent): string | undefined {
  if (!hasToken(ev.header("upgrade"), "websocket")) return "not a WebSocket upgrade request";
  if (ev.method !== "GET") return "a WebSocket upgrade must be a GET";
  if (ev.httpVersion !== "HTTP/1.1") return "a WebSocket upgrade must be HTTP/1.1";
  if (!hasToken(ev.header("connection"), "upgrade")) return "the upgrade request lacks `connection: upgrade`";
  if (ev.header("sec-websocket-version") !== "13") return "unsupported sec-websocket-version (13 expected)";
  if (ev.header("sec-websocket-key") === undefined) return "the upgrade request lacks sec-websocket-key";
  return undefined;
}

/**
 * The subprotocols a handshake request offers, in its order.
 *
 * @param ev A request event.
 * @returns The offered subprotocols.
 */
export function offeredProtocols(ev: HttpRequestEvent): string[] {
  const v = ev.header("sec-websocket-protocol");
  return v === undefined ? [] : v.split(",").map((p) => p.trim()).filter((p) => p !== "");
}

/** Native accept of `ev` for `socket`. */
function nativeAccept(
  ev: HttpRequestEvent,
  socket: MgWebSocket,
  options: WebSocketAcceptOptions,
  tuning: WsTuning | undefined,
): void {
  const conn = ev.conn;
  const host = connInternals.host(conn);
  const key = utf8Encoder.encode(ev.header("sec-websocket-key") ?? "");
  const proto = utf8Encoder.encode(options.protocol ?? "");
  const offer = utf8Encoder.encode(options.deflate ? ev.header("sec-websocket-extensions") ?? "" : "");
  const head = encodeHead(options.headers);
  const d = options.deflate;
  const flags = (options.autoPong === false ? WsOpt.NoAutoPong : 0) | (d ? WsOpt.Deflate : 0) |
    (typeof d === "object" && d.clientNoContextTakeover ? WsOpt.DeflateClientReset : 0);
  const rc = host.sym.mgnet_ws_accept(
    host.handle,
    connInternals.slot(conn),
    conn.id,
    requestInternals.seq(ev),
    key,
    key.length,
    proto,
    proto.length,
    offer,
    offer.length,
    head.bytes,
    head.bytes.length,
    options.maxMessageSize ?? 0,
    options.closeTimeout ?? 0,
    flags,
  );
  host.check(rc);
  if (tuning) {
    host.check(host.sym.mgnet_ws_tune(
      host.handle,
      connInternals.slot(conn),
      conn.id,
      tuning.ping,
      tuning.pong,
      tuning.maxBuffered,
    ));
  }
  requestInternals.markReplied(ev);
  socketInternals.accepted(socket, options.protocol ?? "");
  host.queued();
}

function checkOptions(
  ev: HttpRequestEvent,
  options: WebSocketAcceptOptions,
  idleDefault: number,
): WsTuning | undefined {
  const problem = webSocketRequestProblem(ev);
  if (problem) throw new TypeError(problem);
  if (ev.replied) throw new MgnetError("this request was already answered", "State");
  const p = options.protocol;
  if (p !== undefined) {
    if (!TOKEN.test(p)) throw new TypeError(`invalid subprotocol ${JSON.stringify(p)}`);
    if (!offeredProtocols(ev).includes(p)) {
      throw new TypeError(`subprotocol ${JSON.stringify(p)} was not offered by the client`);
    }
  }
  const m = options.maxMessageSize;
  if (m !== undefined && !(Number.isSafeInteger(m) && m > 0 && m <= 0xffffffff)) {
    throw new RangeError("maxMessageSize must be a positive integer up to 4 GiB");
  }
  const t = options.closeTimeout;
  if (t !== undefined && !(Number.isInteger(t) && t > 0 && t <= 0x7fffffff)) {
    throw new RangeError("closeTimeout must be a positive number of ms");
  }
  return wsTuning(options, idleDefault);
}

/**
 * Accepts a WebSocket upgrade request: answers `101 Switching Protocols`
 * and turns the connection into a WebSocket. To refuse, answer the request
 * instead (`ev.reply(403, "...")`): the connection closes after that
 * response.
 *
 * @param ev A request whose headers ask for a WebSocket.
 * @param options Subprotocol, extra headers, limits.
 * @returns The socket (open: it may send at once).
 * @throws {TypeError} if the request is not a valid WebSocket handshake
 *   (answer it yourself, e.g. 400 or 426) or the subprotocol was not offered.
 * @example Choosing a subprotocol
 * ```ts
 * import assert from "node:assert/strict";
 * import { acceptWebSocket, Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const { port } = mgr.listen("http://127.0.0.1:0", {
 *   onRequest(ev) {
 *     const socket = acceptWebSocket(ev, { protocol: "chat.v2" });
 *     socket.send(`welcome, ${socket.protocol}`);
 *   },
 * });
 * const ws = new WebSocket(`ws://127.0.0.1:${port}/`, ["chat.v1", "chat.v2"]);
 * const first = await new Promise((r) => ws.onmessage = (e) => r(e.data));
 * assert.equal(ws.protocol, "chat.v2");
 * assert.equal(first, "welcome, chat.v2");
 * ws.close();
 * await new Promise((r) => ws.onclose = r);
 * ```
 * @example Keep-alive: a ping after 50 ms of silence; Deno's WebSocket answers each one
 * ```ts
 * import assert from "node:assert/strict";
 * import { acceptWebSocket, Manager } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const { port } = mgr.listen("http://127.0.0.1:0");
 * const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
 * let pongs = 0;
 * for await (const ev of mgr) {
 *   if (ev.type === "http") acceptWebSocket(ev, { pingInterval: 50 });
 *   if (ev.type === "ws-pong" && ++pongs === 2) break; // still open after two intervals
 * }
 * assert.equal(pongs, 2);
 * ws.close();
 * ```
 */
export function acceptWebSocket(ev: HttpRequestEvent, options: WebSocketAcceptOptions = {}): MgWebSocket {
  const tuning = checkOptions(ev, options, 0);
  connInternals.assertOpen(ev.conn);
  const ws = wsProtocolOf(connInternals.host(ev.conn));
  if (!ws) throw new MgnetError("this manager has no WebSocket protocol", "State");
  const socket = socketInternals.create(ev.conn, ws.loop, false, "");
  nativeAccept(ev, socket, options, tuning);
  ws.add(socket);
  ws.loop.setProtocol(ev.conn, ws);
  return socket;
}

/** `Deno.upgradeWebSocket`'s default `idleTimeout`, in seconds. */
const DENO_IDLE_TIMEOUT_S = 30;

/** Responses returned by `upgradeWebSocket`, and their sockets. */
const upgrades = new WeakMap<Response, MgWebSocket>();

/**
 * Runs the upgrade behind a response made by {@linkcode upgradeWebSocket},
 * if it is one (for `serve()`).
 *
 * @param res The handler's response.
 * @returns Whether it was an upgrade response (then it needs no answer).
 */
export function completeUpgrade(res: Response): boolean {
  const socket = upgrades.get(res);
  if (!socket) return false;
  upgrades.delete(res);
  socketInternals.runPending(socket);
  return true;
}

/**
 * The fetch-style upgrade, like `Deno.upgradeWebSocket`: for a request
 * handed to a `serve()` handler, returns the socket and the response to
 * return from the handler. The socket opens once that response is
 * returned (`onopen`); until then it is `CONNECTING`.
 *
 * @param req A request from mgnet's `serve()` (its `MgRequest`).
 * @param options Subprotocol, extra headers, limits; `protocol` and `idleTimeout` (seconds,
 *   default 30: a ping after 15 s without a frame from the peer, the close with 1001 after 15 more)
 *   as in `Deno.upgradeWebSocket`. Unlike Deno, unsent output is limited (`maxBufferedAmount`,
 *   default 16 MiB: a send past it closes the socket with 1006).
 * @returns `{ socket, response }`.
 * @throws {TypeError} if the request is not a WebSocket handshake or not from mgnet's `serve()`.
 * @example An echo server under serve()
 * ```ts
 * import assert from "node:assert/strict";
 * import { serve, upgradeWebSocket } from "../../mod.ts";
 *
 * await using server = serve({ port: 0, onListen() {} }, (req) => {
 *   const { socket, response } = upgradeWebSocket(req);
 *   socket.onmessage = (e) => socket.send(e.data);
 *   return response;
 * });
 * const ws = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`);
 * ws.onopen = () => ws.send("ping");
 * assert.equal(await new Promise((r) => ws.onmessage = (e) => r(e.data)), "ping");
 * ws.close();
 * await new Promise((r) => ws.onclose = r);
 * ```
 * @example idleTimeout: a peer that answers nothing is closed with 1001
 * ```ts
 * import assert from "node:assert/strict";
 * import { serve, upgradeWebSocket } from "../../mod.ts";
 *
 * const closed = Promise.withResolvers<CloseEvent>();
 * await using server = serve({ port: 0, onListen() {} }, (req) => {
 *   const { socket, response } = upgradeWebSocket(req, { idleTimeout: 0.2 });
 *   socket.onclose = closed.resolve;
 *   return response;
 * });
 * // A raw peer that upgrades, then never reads nor answers:
 * const conn = await Deno.connect({ port: server.addr.port });
 * await conn.write(new TextEncoder().encode(
 *   "GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n" +
 *     "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
 * ));
 * const ev = await closed.promise; // 0.1 s to the ping, 0.1 s more to the close
 * assert.deepEqual([ev.code, ev.reason, ev.wasClean], [1001, "No response from ping frame.", false]);
 * conn.close();
 * ```
 */
export function upgradeWebSocket(
  req: Request,
  options: WebSocketAcceptOptions = {},
): { socket: MgWebSocket; response: Response } {
  const ev = (req as unknown as { event?: HttpRequestEvent }).event;
  if (ev === undefined || typeof ev.header !== "function") {
    throw new TypeError("upgradeWebSocket() takes a request from mgnet's serve()");
  }
  const tuning = checkOptions(ev, options, DENO_IDLE_TIMEOUT_S);
  connInternals.assertOpen(ev.conn);
  const ws = wsProtocolOf(connInternals.host(ev.conn));
  if (!ws) throw new MgnetError("this manager has no WebSocket protocol", "State");
  const socket = socketInternals.create(ev.conn, ws.loop, false, "");
  socketInternals.setPending(socket, () => {
    if (socket.readyState !== 0 || ev.conn.closed) return; // closed before the handler returned
    nativeAccept(ev, socket, options, tuning);
    ws.add(socket);
    ws.loop.setProtocol(ev.conn, ws);
  });
  const response = new Response(null, { status: 200, headers: { "x-mgnet-upgrade": "websocket" } });
  upgrades.set(response, socket);
  return { socket, response };
}

/**
 * Sends one message to many sockets: framed once in native code, no copy
 * per socket. Sockets that are closed, closing or client-side are skipped.
 * Compressed sockets get it compressed (once). All sockets must belong to
 * one manager.
 *
 * @param sockets The recipients.
 * @param data A string (text) or bytes (binary).
 * @returns How many sockets it was queued on.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { acceptWebSocket, broadcast, Manager, type MgWebSocket } from "../../mod.ts";
 *
 * await using mgr = new Manager();
 * const room = new Set<MgWebSocket>();
 * const { port } = mgr.listen("http://127.0.0.1:0", {
 *   onRequest(ev) {
 *     room.add(acceptWebSocket(ev));
 *     if (room.size === 2) broadcast(room, "everyone's here");
 *   },
 * });
 * const got = [1, 2].map(() => {
 *   const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
 *   return new Promise((r) => ws.onmessage = (e) => { r(e.data); ws.close(); });
 * });
 * assert.deepEqual(await Promise.all(got), ["everyone's here", "everyone's here"]);
 * ```
 */
export function broadcast(sockets: Iterable<MgWebSocket>, data: WebSocketData): number {
  const list = [...sockets].filter((s) => s.readyState === 1 && !s.conn.closed);
  if (list.length === 0) return 0;
  const host = connInternals.host(list[0].conn);
  const targets = new Float64Array(list.length * 2);
  let n = 0;
  for (const s of list) {
    if (connInternals.host(s.conn) !== host) throw new TypeError("broadcast() takes sockets of one manager");
    targets[n++] = connInternals.slot(s.conn);
    targets[n++] = s.conn.id;
  }
  let buf: Uint8Array;
  let len: number;
  let opcode: number = Opcode.Binary;
  if (typeof data === "string") {
    buf = encodeString(data);
    len = encodedLen;
    opcode = Opcode.Text;
  } else if (ArrayBuffer.isView(data)) {
    buf = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    len = buf.length;
  } else {
    buf = new Uint8Array(data);
    len = buf.length;
  }
  const rc = host.sym.mgnet_ws_broadcast(
    host.handle,
    new Uint8Array(targets.buffer),
    list.length,
    opcode,
    buf,
    0,
    len,
  );
  host.check(rc);
  host.queued();
  return rc;
}
