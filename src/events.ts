/**
 * The events a `Manager` yields: a discriminated union on `type`.
 *
 * | type    | when                                   | payload                      |
 * |---------|----------------------------------------|------------------------------|
 * | `open`  | a listener accepted a connection       | `conn`, `listenerId`         |
 * | `http`  | a complete HTTP request arrived        | {@linkcode HttpRequestEvent} |
 * | `error` | a connection failed (it closes next)   | `conn`, `message`            |
 * | `close` | a connection closed                    | `conn`                       |
 * | `ws-open` | a WebSocket opened                   | `socket`, `conn`             |
 * | `ws-message` | a WebSocket message arrived       | {@linkcode WsMessageEvent}   |
 * | `ws-ping`, `ws-pong` | a ping or pong arrived    | `socket`, `data`             |
 * | `ws-close` | a WebSocket closed (a `close` of its connection follows) | `code`, `reason`, `wasClean` |
 *
 * Each protocol adds its own members; the core's are in `core/events.ts`.
 *
 * @module
 */

import type { ConnCloseEvent, ConnErrorEvent, OpenEvent } from "./core/events.ts";
import type { HttpRequestEvent } from "./http/request_event.ts";
import type { WsCloseEvent, WsMessageEvent, WsOpenEvent, WsPingEvent, WsPongEvent } from "./ws/socket.ts";

export type { ConnCloseEvent, ConnErrorEvent, OpenEvent };

/** Every event a manager yields. Switch on `type`. */
export type MgEvent =
  | OpenEvent
  | HttpRequestEvent
  | ConnCloseEvent
  | ConnErrorEvent
  | WsOpenEvent
  | WsMessageEvent
  | WsPingEvent
  | WsPongEvent
  | WsCloseEvent;
