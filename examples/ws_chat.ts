/**
 * A chat room: the page at `/` opens a WebSocket; every message typed is
 * broadcast to everyone connected (framed once natively with
 * `broadcast()`), with join and leave notices.
 *
 *   PORT=8000 HOSTNAME=127.0.0.1 deno task serve:ws-chat
 *
 * Then open http://127.0.0.1:8000/ in two browser windows.
 */
import { broadcast, type MgWebSocket, serve, upgradeWebSocket } from "../mod.ts";
import { announce, hostname, onStopSignal, port } from "./_server_env.ts";

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>mgnet chat</title>
<style>body{font:16px system-ui;margin:2em}#log{height:60vh;overflow:auto;border:1px solid #ccc;padding:.5em}</style>
<h1>mgnet chat</h1>
<div id="log"></div>
<form id="f"><input id="msg" autocomplete="off" autofocus placeholder="say something"> <button>Send</button></form>
<script>
  const log = document.getElementById("log");
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  const show = (text) => {
    const p = document.createElement("div");
    p.textContent = text;
    log.append(p);
    log.scrollTop = log.scrollHeight;
  };
  ws.onopen = () => document.body.dataset.state = "open";
  ws.onmessage = (e) => show(e.data);
  ws.onclose = () => { document.body.dataset.state = "closed"; show("(disconnected)"); };
  document.getElementById("f").onsubmit = (e) => {
    e.preventDefault();
    const input = document.getElementById("msg");
    if (input.value) ws.send(input.value);
    input.value = "";
  };
</script>
`;

const room = new Set<MgWebSocket>();
let next = 1;

const server = serve({ port, hostname, onListen: ({ port }) => announce(port) }, (req) => {
  const url = new URL(req.url);
  if (url.pathname === "/ws") {
    const { socket, response } = upgradeWebSocket(req);
    const name = `guest${next++}`;
    socket.onopen = () => {
      room.add(socket);
      broadcast(room, `${name} joined`);
    };
    socket.onmessage = (e) => broadcast(room, `${name}: ${String(e.data).slice(0, 1000)}`);
    socket.onclose = () => {
      room.delete(socket);
      broadcast(room, `${name} left`);
    };
    return response;
  }
  if (url.pathname === "/") {
    return new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } });
  }
  return new Response("not found", { status: 404 });
});
onStopSignal(() => server.shutdown());
await server.finished;
