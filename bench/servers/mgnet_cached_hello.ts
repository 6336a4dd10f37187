// The cached native route of bench/http.ts: the hello answer registered with
// Manager.cache(), so requests for "/" are answered by the Rust core alone.
import { Manager } from "../../mod.ts";

const port = Number(Deno.env.get("PORT") ?? "8000");
const mgr = new Manager();
const listener = mgr.listen(`http://127.0.0.1:${port}`);
mgr.cache("/", {
  body: JSON.stringify({ message: "Hello, World!" }),
  headers: { "content-type": "application/json" },
});
console.log(`Listening on http://127.0.0.1:${listener.port}/`);
for (const s of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(s, () => mgr.close());
for await (const ev of mgr) {
  if (ev.type === "http") ev.reply(404, "not cached");
}
