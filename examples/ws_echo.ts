/**
 * A WebSocket echo server with the event API: every upgrade request is
 * accepted (permessage-deflate when offered, messages up to 16 MiB), every
 * message is sent back as it came. The Autobahn|Testsuite run in
 * tests/autobahn_test.ts fuzzes this server.
 *
 *   PORT=9001 HOSTNAME=127.0.0.1 deno task serve:ws-echo
 *
 * A plain HTTP request gets a short text answer.
 */
import { acceptWebSocket, Manager } from "../mod.ts";
import { onStopSignal, port, urlHost } from "./_server_env.ts";

const mgr = new Manager();
const listener = mgr.listen(`http://${urlHost}:${port}`);
console.log(`Listening on ws://${urlHost}:${listener.port}/`);
onStopSignal(() => mgr.close());

for await (const ev of mgr) {
  if (ev.type === "http") {
    if (ev.header("upgrade") === undefined) ev.reply(200, "mgnet WebSocket echo: connect with ws://\n");
    else {
      try {
        acceptWebSocket(ev, { deflate: true });
      } catch (e) {
        ev.reply(400, `${(e as Error).message}\n`);
      }
    }
  } else if (ev.type === "ws-message") {
    ev.socket.send(ev.data);
  }
}
