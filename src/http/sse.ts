/**
 * Server-Sent Events (the WHATWG `text/event-stream` format): message
 * formatting with multi-line data, `id`, `event`, `retry` and comments, a
 * writer over a streamed response ({@linkcode startSse}), and a `Response`
 * for fetch-style handlers ({@linkcode sseResponse}).
 *
 * @module
 */

import type { HttpRequestEvent } from "./request_event.ts";
import type { ResponseWriter } from "./response.ts";
import { streamFrom, utf8Encoder } from "../core/bytes.ts";

/** One event of an event stream. */
export interface SseMessage {
  /** The payload; line breaks (`\n`, `\r\n`, `\r`) become separate `data:` lines. */
  data?: string;
  /** The event type (`addEventListener(type)` on the client); no line breaks. */
  event?: string;
  /** The last-event id the client reports when it reconnects; no line breaks or NUL. */
  id?: string;
  /** The client's reconnection delay in milliseconds. */
  retry?: number;
  /** A comment line (ignored by clients; keeps proxies from timing out). */
  comment?: string;
}

const LINE_BREAK = /\r\n|\r|\n/;

function singleLine(field: string, value: string): string {
  if (/[\r\n]/.test(value)) throw new TypeError(`SSE ${field} must not contain a line break`);
  return value;
}

/**
 * Formats one message in the event-stream format, ending with the blank
 * line that dispatches it.
 *
 * @param message The fields to send.
 * @returns The text to write.
 * @throws {TypeError} for an `event` or `id` with a line break (or an `id`
 *   with NUL), {RangeError} for a `retry` that is not a non-negative integer.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatSse } from "./sse.ts";
 *
 * assert.equal(formatSse({ event: "tick", data: "a\nb" }), "event: tick\ndata: a\ndata: b\n\n");
 * assert.equal(formatSse({ comment: "keep-alive" }), ": keep-alive\n\n");
 * assert.throws(() => formatSse({ id: "1\n2" }), TypeError);
 * ```
 */
export function formatSse(message: SseMessage): string {
  let out = "";
  if (message.comment !== undefined) {
    for (const line of message.comment.split(LINE_BREAK)) out += `: ${line}\n`;
  }
  if (message.event !== undefined) out += `event: ${singleLine("event", message.event)}\n`;
  if (message.id !== undefined) {
    if (message.id.includes("\0")) throw new TypeError("SSE id must not contain NUL");
    out += `id: ${singleLine("id", message.id)}\n`;
  }
  if (message.retry !== undefined) {
    if (!Number.isSafeInteger(message.retry) || message.retry < 0) {
      throw new RangeError(`SSE retry must be a non-negative integer, got ${message.retry}`);
    }
    out += `retry: ${message.retry}\n`;
  }
  if (message.data !== undefined) {
    for (const line of message.data.split(LINE_BREAK)) out += `data: ${line}\n`;
  }
  return out === "" ? "" : `${out}\n`;
}

/** Response headers of an event stream. */
export const SSE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
});

/**
 * An event stream being sent on a streamed response, from
 * {@linkcode startSse}. `send()` awaits the connection's backpressure, so a
 * client that stops reading holds the producer instead of growing memory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 * import { startSse } from "./sse.ts";
 *
 * await using mgr = new Manager();
 * const { port } = mgr.listen("http://127.0.0.1:0", {
 *   async onRequest(ev) {
 *     const stream = startSse(ev);
 *     await stream.send({ event: "greeting", data: "hello" });
 *     await stream.send("plain data");
 *     stream.close();
 *   },
 * });
 * const res = await fetch(`http://127.0.0.1:${port}/`);
 * assert.equal(await res.text(), "event: greeting\ndata: hello\n\ndata: plain data\n\n");
 * ```
 */
export class SseStream {
  #out: ResponseWriter;

  /**
   * Made by {@linkcode startSse}; not constructed by users.
   * @param out The streamed response.
   */
  constructor(out: ResponseWriter) {
    this.#out = out;
  }

  /** True once {@linkcode close} was called. */
  get closed(): boolean {
    return this.#out.ended;
  }

  /**
   * Sends one message.
   *
   * @param message The message, or a string sent as its `data`.
   * @returns A promise that resolves when more may be sent.
   * @throws {ConnectionClosedError} once the client went away.
   */
  send(message: SseMessage | string): Promise<void> {
    return this.#out.write(formatSse(typeof message === "string" ? { data: message } : message));
  }

  /**
   * Sends a comment line, e.g. as a keep-alive.
   *
   * @param text The comment.
   * @returns A promise that resolves when more may be sent.
   */
  comment(text = ""): Promise<void> {
    return this.send({ comment: text });
  }

  /** Ends the stream (the client's `EventSource` will reconnect unless closed there). */
  close(): void {
    this.#out.end();
  }
}

/**
 * Starts an event stream as the response to `ev`.
 *
 * @param ev The request (typically `GET` with `accept: text/event-stream`).
 * @param headers Extra response headers.
 * @returns The stream to send messages on.
 * @example Sending numbered events, with an extra header
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 * import { startSse } from "./sse.ts";
 *
 * await using mgr = new Manager();
 * const { port } = mgr.listen("http://127.0.0.1:0", {
 *   async onRequest(ev) {
 *     const stream = startSse(ev, { "x-accel-buffering": "no" });
 *     for (let i = 0; i < 3; i++) await stream.send({ id: String(i), data: `tick ${i}` });
 *     stream.close();
 *   },
 * });
 * const res = await fetch(`http://127.0.0.1:${port}/`, { headers: { accept: "text/event-stream" } });
 * assert.equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
 * assert.equal(res.headers.get("x-accel-buffering"), "no");
 * assert.match(await res.text(), /^id: 0\ndata: tick 0\n\n.*id: 2\ndata: tick 2\n\n$/s);
 * ```
 */
export function startSse(ev: HttpRequestEvent, headers: Record<string, string> = {}): SseStream {
  return new SseStream(ev.respond(200, { ...SSE_HEADERS, ...headers }));
}

/**
 * An event-stream `Response` fed by an async iterable of messages, for
 * `serve()` handlers. The stream ends when the iterable does; when the
 * client goes away the iterable's `return()` runs (its `finally` blocks).
 *
 * @param messages Messages (or strings sent as `data`).
 * @param init Extra response headers.
 * @returns The response.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sseResponse } from "./sse.ts";
 *
 * async function* ticks() {
 *   for (let i = 0; i < 2; i++) yield { id: String(i), data: `tick ${i}` };
 * }
 * const res = sseResponse(ticks());
 * assert.equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
 * assert.equal(await res.text(), "id: 0\ndata: tick 0\n\nid: 1\ndata: tick 1\n\n");
 * ```
 */
export function sseResponse(
  messages: AsyncIterable<SseMessage | string>,
  init: { headers?: Record<string, string> } = {},
): Response {
  // Ending this generator (a cancelled stream) ends `messages` too.
  const encoded = (async function* () {
    for await (const m of messages) {
      yield utf8Encoder.encode(formatSse(typeof m === "string" ? { data: m } : m));
    }
  })();
  return new Response(streamFrom(encoded), { headers: { ...SSE_HEADERS, ...init.headers } });
}
