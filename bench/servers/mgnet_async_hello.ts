// mgnet's async-handler scenario of bench/http.ts: like examples/hello.ts,
// but each handler awaits a 0 ms timer before replying.
import { Manager } from "../../mod.ts";

const body = JSON.stringify({ message: "Hello, World!" });
const headers = Object.freeze({ "content-type": "application/json" });
const port = Number(Deno.env.get("PORT") ?? "8000");
const mgr = new Manager();
const listener = mgr.listen(`http://127.0.0.1:${port}`);
console.log(`Listening on http://127.0.0.1:${listener.port}/`);
for (const s of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(s, () => mgr.close());

for await (const ev of mgr) {
  if (ev.type !== "http") continue;
  (async () => {
    await new Promise((r) => setTimeout(r, 0));
    ev.reply(200, body, headers);
  })();
}
