/**
 * Deno.listenDatagram UDP echo server for bench/net_udp.ts: every datagram
 * is sent back to its sender. PORT from the environment; prints "ready".
 * `--no-await` does not wait for each send before the next receive.
 */
const sock = Deno.listenDatagram({
  transport: "udp",
  hostname: "127.0.0.1",
  port: Number(Deno.env.get("PORT")),
});
console.log("ready");
if (Deno.args.includes("--no-await")) {
  for (;;) {
    const [bytes, from] = await sock.receive();
    sock.send(bytes, from).catch(() => {});
  }
} else {
  for (;;) {
    const [bytes, from] = await sock.receive();
    await sock.send(bytes, from);
  }
}
