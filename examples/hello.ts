/**
 * Hello server: every path answers `{"message":"Hello, World!"}`.
 *
 *   PORT=8000 HOSTNAME=127.0.0.1 deno task serve:hello
 *
 * Prints `Listening on http://HOST:PORT/` when ready and exits cleanly on
 * SIGINT or SIGTERM.
 */
import { Manager } from "../mod.ts";

const hostname = Deno.env.get("HOSTNAME") ?? "127.0.0.1";
const port = Number(Deno.env.get("PORT") ?? "8000");
const body = JSON.stringify({ message: "Hello, World!" });
// A frozen headers object is serialised once and reused.
const headers = Object.freeze({ "content-type": "application/json" });

const mgr = new Manager();
const host = hostname.includes(":") ? `[${hostname}]` : hostname;
const listener = mgr.listen(`http://${host}:${port}`);
console.log(`Listening on http://${host}:${listener.port}/`);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => mgr.close());
}

for await (const ev of mgr) {
  if (ev.type === "http") ev.reply(200, body, headers);
}
