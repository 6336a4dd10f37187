/**
 * UDP echo server: every datagram goes back to its sender.
 *
 *   PORT=7000 HOSTNAME=127.0.0.1 deno task serve:udp-echo
 *
 * Prints `Listening on udp://HOST:PORT/` when ready and exits cleanly on
 * SIGINT or SIGTERM. Try it with `nc -u 127.0.0.1 7000`.
 */
import { Manager } from "../mod.ts";
import { onStopSignal, port, urlHost } from "./_server_env.ts";

const mgr = new Manager();
const sock = mgr.listen(`udp://${urlHost}:${port}`);
console.log(`Listening on udp://${urlHost}:${sock.port}/`);
onStopSignal(() => mgr.close());

for await (const ev of mgr) {
  if (ev.type === "datagram") ev.socket.send(ev.bytes, ev.from);
  else if (ev.type === "datagram-oversized") {
    console.error(`dropped a ${ev.size}-byte datagram from ${ev.from.hostname}`);
  }
}
