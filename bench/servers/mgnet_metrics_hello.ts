// examples/hello.ts with metrics on, read once a second (a scrape): the
// "mgnet metrics" server of bench/http.ts for the hello scenarios. The
// request loop is the example's, unchanged.
import { Manager } from "../../mod.ts";
import { announce, listenUrl, onStopSignal } from "../../examples/_server_env.ts";

const body = JSON.stringify({ message: "Hello, World!" });
const headers = Object.freeze({ "content-type": "application/json" });

const mgr = new Manager({ metrics: true });
const listener = mgr.listen(listenUrl());
announce(listener.port);
const scrape = setInterval(() => mgr.metrics(), 1000);
onStopSignal(() => {
  clearInterval(scrape);
  mgr.close();
});

for await (const ev of mgr) {
  if (ev.type === "http") ev.reply(200, body, headers);
}
