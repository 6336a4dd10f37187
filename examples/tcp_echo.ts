/**
 * TCP echo server: every byte received is sent back; a peer's end of
 * writing is answered with ours. A connection that has over 1 MiB queued
 * (a peer that writes faster than it reads) waits for it to drain, and is
 * not read meanwhile.
 *
 *   PORT=7000 HOSTNAME=127.0.0.1 deno task serve:tcp-echo
 *   nc 127.0.0.1 7000
 *
 * Prints `Listening on tcp://HOST:PORT/` when ready and exits cleanly on
 * SIGINT or SIGTERM.
 */
import { Manager } from "../mod.ts";
import { announce, listenUrl, onStopSignal } from "./_server_env.ts";

const mgr = new Manager();
const listener = mgr.listen(listenUrl("tcp") as `tcp://${string}`);
announce(listener.port, "tcp");
onStopSignal(() => mgr.close());

for await (const ev of mgr) {
  if (ev.type === "data") {
    if (ev.conn.send(ev.bytes) > 1 << 20) await ev.conn.drain();
  } else if (ev.type === "end") {
    ev.conn.end();
  }
}
