/**
 * The showcase server: what mgnet serves today, on one port.
 *
 *   PORT=8000 HOSTNAME=127.0.0.1 deno task serve
 *
 * | route              | what it shows                                              |
 * |--------------------|------------------------------------------------------------|
 * | `GET /`            | a small page linking everything below                      |
 * | `GET /api/hello`   | JSON (`?name=` is echoed)                                  |
 * | `POST /api/echo`   | echoes the body with its content-type                      |
 * | `GET /api/time`    | answered by the native cache for 2 s at a time (`cached()`) |
 * | `GET /sse`         | Server-Sent Events, one tick a second, streamed            |
 * | `GET /stream`      | a 1 MiB body streamed with backpressure                    |
 *
 * Prints `Listening on http://HOST:PORT/` when ready; exits cleanly on
 * SIGINT or SIGTERM.
 */
import { cached, serve } from "../mod.ts";

const hostname = Deno.env.get("HOSTNAME") ?? "127.0.0.1";
const port = Number(Deno.env.get("PORT") ?? "8000");
const shownHost = hostname.includes(":") ? `[${hostname}]` : hostname;
const encoder = new TextEncoder();

const PAGE = `<!doctype html>
<html lang="en"><meta charset="utf-8"><title>mgnet showcase</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:2em auto}code{background:#eee;padding:0 .2em}</style>
<h1>mgnet</h1>
<p>Mongoose networking for Deno: this page is served by <code>serve()</code> on mgnet's engine.</p>
<ul>
<li><a href="/api/hello?name=Deno">/api/hello?name=Deno</a> — JSON</li>
<li><code>curl -d '{"a":1}' -H 'content-type: application/json' ${"http://"}HOST/api/echo</code> — echo</li>
<li><a href="/api/time">/api/time</a> — answered by the native cache for 2 s</li>
<li><a href="/sse">/sse</a> — Server-Sent Events, one tick a second</li>
<li><a href="/stream">/stream</a> — 1 MiB streamed with backpressure</li>
</ul>
<pre id="ticks"></pre>
<script>
const es = new EventSource("/sse");
es.addEventListener("tick", (e) => document.getElementById("ticks").textContent = "tick " + e.data);
</script>
</html>`;

function sse(signal: AbortSignal): Response {
  let n = 0;
  let timer: ReturnType<typeof setInterval> | undefined;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(": connected\n\nretry: 2000\n\n"));
      timer = setInterval(() => {
        n++;
        controller.enqueue(encoder.encode(`id: ${n}\nevent: tick\ndata: ${n}\n\n`));
      }, 1000);
      signal.addEventListener("abort", () => {
        clearInterval(timer);
        controller.close();
      });
    },
    cancel() {
      clearInterval(timer);
    },
  });
  return new Response(body, {
    headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
  });
}

function stream(): Response {
  const chunk = new Uint8Array(64 * 1024).fill(0x6d);
  let sent = 0;
  return new Response(
    new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 1 << 20) return controller.close();
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    }),
    { headers: { "content-type": "application/octet-stream" } },
  );
}

const server = serve({
  port,
  hostname,
  // Open event streams never finish on their own: do not wait for them.
  shutdownTimeout: 50,
  onListen: ({ port }) => console.log(`Listening on http://${shownHost}:${port}/`),
}, async (req) => {
  const url = new URL(req.url);
  switch (`${req.method} ${url.pathname}`) {
    case "GET /":
      return new Response(PAGE.replace("HOST", url.host), {
        headers: { "content-type": "text/html; charset=utf-8" },
      });
    case "GET /api/hello":
      return Response.json({ message: `Hello, ${url.searchParams.get("name") ?? "World"}!` });
    case "POST /api/echo":
      return new Response(await req.arrayBuffer(), {
        headers: { "content-type": req.headers.get("content-type") ?? "application/octet-stream" },
      });
    case "GET /api/time":
      return cached(Response.json({ time: new Date().toISOString() }), { ttl: 2000 });
    case "GET /sse":
      return sse(req.signal);
    case "GET /stream":
      return stream();
    default:
      return new Response("Not Found\n", { status: 404 });
  }
});

for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, () => server.shutdown());
await server.finished;
