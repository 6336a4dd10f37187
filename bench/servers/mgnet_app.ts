// mgnet (Manager API) servers of bench/http.ts other than the plain hello
// (that one is examples/hello.ts). MODE picks what every request gets:
//   async   the hello answer after awaiting a 0 ms timer
//   echo    the request body back, with its content-type
//   static  files under STATIC_ROOT at /static/ (serveDir: validators, ranges)
// METRICS=1 turns metrics on and reads them once a second (a scrape).
import { Manager } from "../../mod.ts";
import { serveDir } from "../../src/http/static_files.ts";

const mode = Deno.env.get("MODE") ?? "async";
const root = Deno.env.get("STATIC_ROOT") ?? ".";
const body = JSON.stringify({ message: "Hello, World!" });
const headers = Object.freeze({ "content-type": "application/json" });
const port = Number(Deno.env.get("PORT") ?? "8000");
const mgr = new Manager({ metrics: Deno.env.get("METRICS") === "1" });
const scrape = Deno.env.get("METRICS") === "1" ? setInterval(() => mgr.metrics(), 1000) : undefined;
const listener = mgr.listen(`http://127.0.0.1:${port}`);
console.log(`Listening on http://127.0.0.1:${listener.port}/`);
for (const s of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(s, () => {
    clearInterval(scrape);
    mgr.close();
  });
}

for await (const ev of mgr) {
  if (ev.type !== "http") continue;
  if (mode === "echo") {
    ev.reply(200, ev.body, { "content-type": ev.header("content-type") ?? "application/octet-stream" });
  } else if (mode === "static") {
    serveDir(ev, root, { prefix: "/static" });
  } else {
    (async () => {
      await new Promise((r) => setTimeout(r, 0));
      // The load tool may close the connection meanwhile (at the end of a run).
      if (!ev.conn.closed) ev.reply(200, body, headers);
    })();
  }
}
