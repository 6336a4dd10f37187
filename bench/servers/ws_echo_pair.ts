/**
 * The fetch-style servers of `bench/ws.ts`: the same WebSocket echo handler
 * on `Deno.upgradeWebSocket` under `Deno.serve` (SERVER=deno) or on mgnet's
 * `upgradeWebSocket` under `serve()` (SERVER=mgnet). Binary messages come
 * as ArrayBuffers on both and are sent back as they came. Reads PORT (0:
 * any); prints `Listening on ws://127.0.0.1:PORT/` when ready.
 */
import { serve, upgradeWebSocket } from "../../mod.ts";

const deno = Deno.env.get("SERVER") === "deno";
const upgrade = deno ? Deno.upgradeWebSocket : upgradeWebSocket;
const handler = (req: Request): Response => {
  const { socket, response } = upgrade(req);
  socket.binaryType = "arraybuffer";
  socket.onmessage = (e) => socket.send(e.data);
  return response;
};
const port = Number(Deno.env.get("PORT") ?? "0");
const onListen = ({ port }: { port: number }) => console.log(`Listening on ws://127.0.0.1:${port}/`);
if (deno) Deno.serve({ port, hostname: "127.0.0.1", onListen }, handler);
else serve({ port, hostname: "127.0.0.1", onListen }, handler);
