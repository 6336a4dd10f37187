/**
 * Hello server: every path answers `{"message":"Hello, World!"}`.
 *
 *   PORT=8000 HOSTNAME=127.0.0.1 deno task serve:hello
 *
 * Prints `Listening on http://HOST:PORT/` when ready and exits cleanly on
 * SIGINT or SIGTERM.
 */
import { Manager } from "../mod.ts";
import { announce, listenUrl, onStopSignal } from "./_server_env.ts";

const body = JSON.stringify({ message: "Hello, World!" });
// A frozen headers object is serialised once and reused.
const headers = Object.freeze({ "content-type": "application/json" });

const mgr = new Manager();
const listener = mgr.listen(listenUrl());
announce(listener.port);
onStopSignal(() => mgr.close());

for await (const ev of mgr) {
  if (ev.type === "http") ev.reply(200, body, headers);
}
