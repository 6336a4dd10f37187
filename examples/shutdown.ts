/**
 * Graceful shutdown: on SIGINT/SIGTERM the server stops accepting, closes
 * idle keep-alive connections, lets requests in progress finish (here
 * `/slow`, which answers after 2 s) and exits; after 5 s it stops anyway.
 *
 *   PORT=8000 HOSTNAME=127.0.0.1 deno task serve:shutdown
 *
 * Try `curl http://127.0.0.1:8000/slow & sleep 0.5; kill -INT <pid>`: the
 * slow request still gets its answer.
 */
import { Manager } from "../mod.ts";
import { announce, listenUrl, onStopSignal } from "./_server_env.ts";

const controller = new AbortController();
const mgr = new Manager({ signal: controller.signal, shutdownTimeout: 5000 });
const listener = mgr.listen(listenUrl(), {
  async onRequest(ev) {
    if (ev.path === "/slow") {
      console.log("slow request: answering in 2 s");
      await new Promise((r) => setTimeout(r, 2000));
    }
    ev.reply(200, `answered ${ev.path}\n`);
  },
});
announce(listener.port);
onStopSignal(() => {
  console.log("shutting down: finishing requests in progress");
  controller.abort();
});
await mgr.finished;
console.log("stopped");
