/**
 * mgnet: Mongoose networking for Deno.
 *
 * A Rust core drives the Mongoose C library and hands events to JavaScript
 * in batches; this module is the TypeScript API over it.
 *
 * @example Hello server
 * ```ts
 * import { Manager } from "./mod.ts";
 *
 * await using mgr = new Manager();
 * const { port } = mgr.listen("http://127.0.0.1:0");
 * const loop = (async () => {
 *   for await (const ev of mgr) {
 *     if (ev.type === "http") ev.reply(200, '{"hello":"world"}', { "content-type": "application/json" });
 *   }
 * })();
 * console.log(await (await fetch(`http://127.0.0.1:${port}/`)).json());
 * await mgr.close();
 * await loop;
 * ```
 *
 * @module
 */

export {
  type CachedResponse,
  type CacheOptions,
  Listener,
  type ListenHandlers,
  Manager,
  type ManagerOptions,
  type ManagerStats,
  SYNC_WAIT_MS,
  YIELD_MS,
} from "./src/manager.ts";
export { Connection, type NetAddr } from "./src/connection.ts";
export {
  type BodyInit,
  type HeadersInit,
  HttpConnection,
  HttpRequestEvent,
  ResponseWriter,
  STREAM_HIGH_WATER,
} from "./src/http.ts";
export type { CloseEvent, ErrorEvent, MgEvent, OpenEvent } from "./src/events.ts";
export { ConnectionClosedError, ManagerClosedError, MgnetError } from "./src/errors.ts";
export { mongooseVersion } from "./src/ffi.ts";
export {
  cached,
  type HttpServer,
  serve,
  type ServeHandler,
  type ServeHandlerInfo,
  type ServeInit,
  type ServeOptions,
} from "./src/serve.ts";
export { MgRequest } from "./src/fetch_bridge.ts";
export {
  serveDir,
  type ServeDirOptions,
  serveDirResponse,
  serveFile,
  serveFileResponse,
  type StaticOptions,
} from "./src/static_files.ts";
export {
  type ClientConnectOptions,
  ClientError,
  type ClientErrorKind,
  type ClientRequestInit,
  type ClientRequestOptions,
  ClientResponse,
  HttpClientConnection,
} from "./src/http_client.ts";
export { type SaveBodyOptions, saveBodyToFile } from "./src/request_body.ts";
export { formatSse, SSE_HEADERS, type SseMessage, sseResponse, SseStream, startSse } from "./src/sse.ts";
export {
  basicChallenge,
  type BasicCredentials,
  bearerChallenge,
  type BearerCredentials,
  type Credentials,
  parseAuthorization,
  timingSafeEqual,
} from "./src/auth.ts";
export {
  type FormPart,
  multipartBoundary,
  MultipartError,
  type MultipartLimits,
  parseMultipart,
  sanitizeFilename,
} from "./src/multipart.ts";
