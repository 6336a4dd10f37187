/**
 * The events a `Manager` yields: a discriminated union on `type`.
 *
 * | type    | when                                   | payload                      |
 * |---------|----------------------------------------|------------------------------|
 * | `open`  | a listener accepted a connection       | `conn`, `listenerId`         |
 * | `http`  | a complete HTTP request arrived        | {@linkcode HttpRequestEvent} |
 * | `error` | a connection failed (it closes next)   | `conn`, `message`            |
 * | `close` | a connection closed                    | `conn`                       |
 * | `data`  | bytes (or a frame) arrived on TCP      | {@linkcode TcpDataEvent}     |
 * | `end`   | a TCP peer ended its side (half-close) | `conn`                       |
 * | `datagram` | a UDP socket received a datagram    | {@linkcode DatagramEvent}: `socket`, `bytes`, `from` |
 * | `datagram-oversized` | a datagram over the socket's `maxDatagram` was dropped | `socket`, `from`, `size`, `limit` |
 * | `timer` | a timer of the manager fired           | `timer` (no `conn`)          |
 * | `post`  | a message was posted into the manager  | {@linkcode PostEvent} (no `conn`) |
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
import type { TcpDataEvent, TcpEndEvent } from "./net/tcp.ts";
import type { DatagramEvent, OversizedDatagramEvent } from "./net/udp.ts";
import type { TimerEvent } from "./net/timer.ts";
import type { PostEvent } from "./net/post.ts";
import type { WsCloseEvent, WsMessageEvent, WsOpenEvent, WsPingEvent, WsPongEvent } from "./ws/socket.ts";

export type { ConnCloseEvent, ConnErrorEvent, OpenEvent, PostEvent, TimerEvent };

/** Every event a manager yields. Switch on `type`. */
export type MgEvent =
  | OpenEvent
  | HttpRequestEvent
  | ConnCloseEvent
  | ConnErrorEvent
  | TcpDataEvent
  | TcpEndEvent
  | DatagramEvent
  | OversizedDatagramEvent
  | TimerEvent
  | PostEvent
  | WsOpenEvent
  | WsMessageEvent
  | WsPingEvent
  | WsPongEvent
  | WsCloseEvent;
