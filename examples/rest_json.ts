/**
 * A REST/JSON API over an in-memory list of notes, on the Manager API:
 *
 * | request                 | answer                                      |
 * |-------------------------|---------------------------------------------|
 * | `GET /notes`            | 200, every note                             |
 * | `POST /notes`           | 201 + `location`, from `{"text": "..."}`    |
 * | `GET /notes/:id`        | 200, or 404                                 |
 * | `PUT /notes/:id`        | 200, replaces the text                      |
 * | `DELETE /notes/:id`     | 204                                         |
 *
 * Bodies that are not JSON objects with a string `text` get 400; bodies
 * that are not `application/json` get 415; other methods get 405.
 *
 *   PORT=8000 HOSTNAME=127.0.0.1 deno task serve:rest
 */
import { type HttpRequestEvent, Manager } from "../mod.ts";
import { announce, listenUrl, onStopSignal } from "./_server_env.ts";

interface Note {
  id: number;
  text: string;
}

const notes = new Map<number, Note>();
let nextId = 1;
const JSON_TYPE = Object.freeze({ "content-type": "application/json" });

function send(
  ev: HttpRequestEvent,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  ev.reply(status, JSON.stringify(value), { ...JSON_TYPE, ...headers });
}

/** The request's note text, or undefined after answering 400/415. */
function noteText(ev: HttpRequestEvent): string | undefined {
  if (!/^application\/json\b/i.test(ev.header("content-type") ?? "")) {
    send(ev, 415, { error: "send application/json" });
    return undefined;
  }
  let body: unknown;
  try {
    body = ev.json();
  } catch {
    send(ev, 400, { error: "the body is not valid JSON" });
    return undefined;
  }
  const text = (body as { text?: unknown } | null)?.text;
  if (typeof text !== "string") {
    send(ev, 400, { error: 'expected {"text": string}' });
    return undefined;
  }
  return text;
}

function route(ev: HttpRequestEvent): void {
  const path = ev.path;
  if (path === "/notes") {
    if (ev.method === "GET") return send(ev, 200, [...notes.values()]);
    if (ev.method === "POST") {
      const text = noteText(ev);
      if (text === undefined) return;
      const note = { id: nextId++, text };
      notes.set(note.id, note);
      return send(ev, 201, note, { location: `/notes/${note.id}` });
    }
    return send(ev, 405, { error: "use GET or POST" }, { allow: "GET, POST" });
  }
  const m = /^\/notes\/(\d+)$/.exec(path);
  const note = m ? notes.get(Number(m[1])) : undefined;
  if (!m || !note) return send(ev, 404, { error: "no such note" });
  switch (ev.method) {
    case "GET":
      return send(ev, 200, note);
    case "PUT": {
      const text = noteText(ev);
      if (text === undefined) return;
      note.text = text;
      return send(ev, 200, note);
    }
    case "DELETE":
      notes.delete(note.id);
      return void ev.reply(204);
    default:
      return send(ev, 405, { error: "use GET, PUT or DELETE" }, { allow: "GET, PUT, DELETE" });
  }
}

const mgr = new Manager({ maxBodySize: 64 * 1024 });
const listener = mgr.listen(listenUrl(), { onRequest: route });
announce(listener.port);
onStopSignal(() => mgr.shutdown({ timeout: 1000 }));
await mgr.finished;
