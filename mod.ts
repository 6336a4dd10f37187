/**
 * mgnet: Mongoose networking for Deno.
 *
 * A Rust core drives the Mongoose C library and hands events to JavaScript
 * in batches; this module is the TypeScript API over it.
 *
 * Optional parts have entry points of their own: `./static` (static
 * files), `./sse` (Server-Sent Events), `./auth` (credentials), `./multipart`
 * (form uploads) and `./serve` (the `deno serve` runner).
 *
 * @example Hello server
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "./mod.ts";
 *
 * await using mgr = new Manager();
 * const { port } = mgr.listen("http://127.0.0.1:0");
 * const loop = (async () => {
 *   for await (const ev of mgr) {
 *     if (ev.type === "http") ev.reply(200, '{"hello":"world"}', { "content-type": "application/json" });
 *   }
 * })();
 * assert.deepEqual(await (await fetch(`http://127.0.0.1:${port}/`)).json(), { hello: "world" });
 * await mgr.close();
 * await loop;
 * ```
 *
 * @module
 */

export {
  Listener,
  type ListenHandlers,
  Manager,
  type ManagerOptions,
  type ManagerStats,
} from "./src/manager.ts";
export type { CachedResponse, CacheOptions } from "./src/http/cache.ts";
export type { HttpLimits } from "./src/http/limits.ts";
export { Connection, type NetAddr, type TlsInfo } from "./src/core/connection.ts";
export type { ReplyBody, ReplyHeaders } from "./src/http/headers.ts";
export { HttpConnection, ResponseWriter } from "./src/http/response.ts";
export { HttpRequestEvent } from "./src/http/request_event.ts";
export type { BasicCredentials, BearerCredentials, Credentials } from "./src/http/auth.ts";
export type { ConnCloseEvent, ConnErrorEvent, MgEvent, OpenEvent } from "./src/events.ts";
export { ConnectionClosedError, ManagerClosedError, MgnetError, type StatusName } from "./src/core/errors.ts";
export { mongooseVersion } from "./src/core/ffi.ts";
export {
  type Pem,
  selfSignedCert,
  type TlsClientOptions,
  type TlsKeyPair,
  type TlsListenOptions,
} from "./src/core/tls.ts";
export {
  cached,
  type HttpServer,
  serve,
  type ServeHandler,
  type ServeHandlerInfo,
  type ServeInit,
  type ServeOptions,
} from "./src/serve/serve.ts";
export { MgRequest } from "./src/serve/fetch_bridge.ts";
export {
  type ClientConnectOptions,
  ClientError,
  type ClientErrorKind,
  type ClientRequestInit,
  type ClientRequestOptions,
  ClientResponse,
  HttpClientConnection,
} from "./src/http/client.ts";
export { createFetch, fetch, type MgFetch, type MgFetchInit } from "./src/http/fetch.ts";
export { type SaveBodyOptions, saveBodyToFile } from "./src/http/save_body.ts";
export {
  type StartTlsOptions,
  TcpConnection,
  type TcpConnectOptions,
  type TcpConnEvent,
  TcpDataEvent,
  type TcpEndEvent,
  type TcpFraming,
  type TcpFramingOptions,
  type TcpHandlers,
  type TcpListenOptions,
} from "./src/net/tcp.ts";
export {
  DatagramEvent,
  DatagramTooLargeError,
  type OversizedDatagramEvent,
  type UdpHandlers,
  type UdpListenOptions,
  type UdpOptions,
  UdpSocket,
  type UdpTarget,
} from "./src/net/udp.ts";
export { DnsError, type DnsErrorKind, type ResolveOptions } from "./src/net/dns.ts";
export { SntpError, type SntpErrorKind, type SntpOptions, type SntpResult } from "./src/net/sntp.ts";
// net: timers and posting into a manager
export { Timer, type TimerEvent, type TimerOptions } from "./src/net/timer.ts";
export {
  openPoster,
  POST_MAX_BYTES,
  POST_MAX_COUNT,
  Poster,
  PostEvent,
  type PostPort,
} from "./src/net/post.ts";
// util: JSON lookup by path (native; measured faster than JSON.parse, see docs/architecture.md)
export { jsonGet, jsonGetRaw } from "./src/util/json.ts";
export {
  MgWebSocket,
  type WebSocketData,
  type WebSocketOptions,
  type WsCloseEvent,
  type WsControlEvent,
  type WsEvent,
  WsMessageEvent,
  type WsOpenEvent,
  type WsPingEvent,
  type WsPongEvent,
} from "./src/ws/socket.ts";
export {
  acceptWebSocket,
  broadcast,
  upgradeWebSocket,
  type WebSocketAcceptOptions,
} from "./src/ws/accept.ts";
export type { WebSocketConnectOptions } from "./src/ws/client.ts";
