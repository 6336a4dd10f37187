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
 * | `GET /static/*`    | files from `examples/web_root/` (ETag, 304, Range, HEAD)   |
 * | `GET /upload`      | an upload form; `POST /upload` saves multipart files       |
 * | `GET /metrics`     | the server's metrics, Prometheus text (`metrics` option)   |
 *
 * Uploads go to a fresh temporary directory (or `UPLOAD_DIR`), under
 * sanitised unique names; bodies over 16 MiB get 413.
 *
 * Prints `Listening on http://HOST:PORT/` when ready; exits cleanly on
 * SIGINT or SIGTERM.
 */
import { cached, serve } from "../mod.ts";
import { MultipartError } from "../src/http/multipart.ts";
import { serveDirResponse } from "../src/http/static_files.ts";
import { sseResponse } from "../src/http/sse.ts";
import { announce, hostname, onStopSignal, port } from "./_server_env.ts";
import { saveUploads } from "./_uploads.ts";

const webRoot = new URL("./web_root/", import.meta.url).pathname;
const uploadDir = Deno.env.get("UPLOAD_DIR") ?? await Deno.makeTempDir({ prefix: "mgnet-uploads-" });

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
<li><a href="/static/">/static/</a> — static files with ETag, 304 and ranges</li>
<li><a href="/upload">/upload</a> — multipart file upload</li>
<li><a href="/metrics">/metrics</a> — the server's metrics (Prometheus text)</li>
</ul>
<pre id="ticks"></pre>
<script>
const es = new EventSource("/sse");
es.addEventListener("tick", (e) => document.getElementById("ticks").textContent = "tick " + e.data);
</script>
</html>`;

const UPLOAD_FORM = `<!doctype html><meta charset="utf-8"><title>mgnet upload</title>
<form method="post" action="/upload" enctype="multipart/form-data">
<input name="note" placeholder="a note"> <input type="file" name="file" multiple> <button>Upload</button>
</form>`;

/** One tick a second until the client goes away (the generator then returns). */
async function* ticks(signal: AbortSignal) {
  yield { comment: "connected", retry: 2000 };
  for (let n = 1; !signal.aborted; n++) {
    await new Promise((r) => setTimeout(r, 1000));
    yield { id: String(n), event: "tick", data: String(n) };
  }
}

async function upload(req: Request): Promise<Response> {
  try {
    return Response.json(
      await saveUploads(uploadDir, await req.bytes(), req.headers.get("content-type") ?? ""),
    );
  } catch (e) {
    if (!(e instanceof MultipartError)) throw e;
    return new Response(`bad upload: ${e.message}\n`, { status: 400 });
  }
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
  maxBodySize: 16 << 20,
  metrics: "/metrics",
  // Open event streams never finish on their own: do not wait for them.
  shutdownTimeout: 50,
  onListen: ({ port }) => {
    announce(port);
    console.log(`Uploads are saved in ${uploadDir}`);
  },
}, async (req) => {
  const url = new URL(req.url);
  if (url.pathname.startsWith("/static/") || url.pathname === "/static") {
    return serveDirResponse(req, webRoot, { prefix: "/static", maxAge: 60 });
  }
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
      return sseResponse(ticks(req.signal));
    case "GET /stream":
      return stream();
    case "GET /upload":
      return new Response(UPLOAD_FORM, { headers: { "content-type": "text/html; charset=utf-8" } });
    case "POST /upload":
      return upload(req);
    default:
      return new Response("Not Found\n", { status: 404 });
  }
});

onStopSignal(() => server.shutdown());
await server.finished;
