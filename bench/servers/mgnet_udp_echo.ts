/**
 * mgnet UDP echo server for bench/net_udp.ts: every datagram is sent back
 * to its sender (the shape in the README). PORT from the environment;
 * prints "ready" once bound. `--reply` uses `ev.reply(bytes)` instead.
 */
import { Manager } from "../../mod.ts";

const mgr = new Manager();
mgr.listen(`udp://127.0.0.1:${Deno.env.get("PORT")}`); // the default receive buffer, as Deno's
console.log("ready");
if (Deno.args.includes("--reply")) {
  for await (const ev of mgr) if (ev.type === "datagram") ev.reply(ev.bytes);
} else {
  for await (const ev of mgr) if (ev.type === "datagram") ev.socket.send(ev.bytes, ev.from);
}
