/**
 * The server of `bench/serve_bench.ts`: the same fetch-style handler on
 * mgnet's `serve()` (SERVER=mgnet) or on `Deno.serve` (SERVER=deno).
 * `/64k` answers 64 KiB of "a", `/ws` upgrades to a WebSocket that echoes
 * every message (mgnet's `upgradeWebSocket` or `Deno.upgradeWebSocket`,
 * the same code), anything else "Hello, World!". Reads PORT
 * (0: any); prints `Listening on http://127.0.0.1:PORT/` when ready.
 */
import { serve, upgradeWebSocket } from "../../mod.ts";

const deno = Deno.env.get("SERVER") === "deno";
const upgrade = deno ? Deno.upgradeWebSocket : upgradeWebSocket;
const big = new Uint8Array(64 * 1024).fill(0x61);
const handler = (req: Request): Response => {
  const path = new URL(req.url).pathname;
  if (path === "/64k") return new Response(big);
  if (path === "/ws") {
    const { socket, response } = upgrade(req);
    socket.onmessage = (e) => socket.send(e.data);
    return response;
  }
  return new Response("Hello, World!");
};
const port = Number(Deno.env.get("PORT") ?? "0");
const onListen = ({ port }: { port: number }) => console.log(`Listening on http://127.0.0.1:${port}/`);
if (deno) {
  Deno.serve({ port, hostname: "127.0.0.1", onListen }, handler);
} else {
  serve({ port, hostname: "127.0.0.1", onListen }, handler);
}
