/**
 * Hono's WebSocket helper on mgnet: `defineWebSocketHelper` wired to
 * mgnet's `upgradeWebSocket` (the same dozen lines as Hono's Deno adapter,
 * with mgnet's function in place of `Deno.upgradeWebSocket`).
 *
 *   PORT=8000 HOSTNAME=127.0.0.1 deno task serve:ws-hono
 *
 * Routes: GET / (text), GET /ws (a WebSocket answering `echo: <message>`).
 */
import { Hono } from "hono";
import { defineWebSocketHelper, WSContext } from "hono/ws";
import { serve, upgradeWebSocket as mgUpgrade } from "../mod.ts";
import { announce, hostname, onStopSignal, port } from "./_server_env.ts";

/** Hono's `upgradeWebSocket` for apps served by mgnet's `serve()`. */
export const upgradeWebSocket = defineWebSocketHelper((c, events, options) => {
  if (c.req.header("upgrade") !== "websocket") return;
  const protocol = c.req.header("sec-websocket-protocol")?.split(",")[0]?.trim();
  const { response, socket } = mgUpgrade(c.req.raw, { ...(protocol ? { protocol } : {}), ...options });
  const ctx = new WSContext({
    close: (code, reason) => socket.close(code, reason),
    get protocol() {
      return socket.protocol;
    },
    raw: socket,
    get readyState() {
      return socket.readyState as 0 | 1 | 2 | 3;
    },
    url: null,
    send: (source) => void socket.send(source),
  });
  socket.onopen = (evt) => events.onOpen?.(evt, ctx);
  socket.onmessage = (evt) => events.onMessage?.(evt, ctx);
  socket.onclose = (evt) => events.onClose?.(evt, ctx);
  socket.onerror = (evt) => events.onError?.(evt, ctx);
  return response;
});

export const app = new Hono();
app.get("/", (c) => c.text("Hono + mgnet WebSockets: connect to /ws"));
app.get(
  "/ws",
  upgradeWebSocket(() => ({
    onMessage(event, ws) {
      ws.send(`echo: ${event.data}`);
    },
  })),
);

if (import.meta.main) {
  const server = serve({ port, hostname, onListen: ({ port }) => announce(port) }, app.fetch);
  onStopSignal(() => server.shutdown());
  await server.finished;
}
