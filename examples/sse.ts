/**
 * Server-Sent Events: `/` is a page whose `EventSource` shows a clock that
 * `/events` pushes once a second (with an `id`, so a reconnecting browser
 * resumes its count).
 *
 *   PORT=8000 HOSTNAME=127.0.0.1 deno task serve:sse
 *
 * Or watch the raw stream: `curl -N http://127.0.0.1:8000/events`.
 */
import { ConnectionClosedError, Manager } from "../mod.ts";
import { startSse } from "../src/http/sse.ts";
import { announce, listenUrl, onStopSignal } from "./_server_env.ts";

const PAGE = `<!doctype html><meta charset="utf-8"><title>mgnet SSE</title>
<h1 id="clock">…</h1>
<script>
new EventSource("/events").addEventListener("time", (e) => {
  document.getElementById("clock").textContent = e.data + " (#" + e.lastEventId + ")";
});
</script>`;

const mgr = new Manager();
const listener = mgr.listen(listenUrl(), {
  async onRequest(ev) {
    if (ev.path !== "/events") {
      return void ev.reply(200, PAGE, { "content-type": "text/html; charset=utf-8" });
    }
    // A reconnecting browser sends the last id it saw.
    let n = Number(ev.header("last-event-id") ?? 0) || 0;
    const stream = startSse(ev);
    try {
      await stream.send({ retry: 2000, comment: "connected" });
      while (!mgr.closed) {
        n++;
        await stream.send({ event: "time", id: String(n), data: new Date().toISOString() });
        await new Promise((r) => setTimeout(r, 1000));
      }
    } catch (e) {
      if (!(e instanceof ConnectionClosedError)) throw e; // the browser went away: stop
    }
  },
});
announce(listener.port);
// Open streams never end by themselves: give them little time.
onStopSignal(() => mgr.shutdown({ timeout: 100 }));
await mgr.finished;
