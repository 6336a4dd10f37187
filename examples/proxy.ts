/**
 * A reverse proxy written fetch-style: every request is forwarded to
 * `UPSTREAM` (default http://127.0.0.1:8080) with mgnet's `fetch`, which runs
 * on the server's own loop, and the upstream's answer streams back.
 *
 *   UPSTREAM=http://127.0.0.1:8080 PORT=8000 HOSTNAME=127.0.0.1 deno task serve:proxy
 */
import { fetch, serve } from "../mod.ts";
import { announce, hostname, onStopSignal, port } from "./_server_env.ts";

const upstream = new URL(Deno.env.get("UPSTREAM") ?? "http://127.0.0.1:8080");
/** Hop-by-hop fields (RFC 9110 7.6.1) and the framing, which each hop sets itself. */
const HOP = ["connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection", "host"];

function forwardable(headers: Headers): Headers {
  const out = new Headers(headers);
  for (const name of HOP) out.delete(name);
  return out;
}

const server = serve({ port, hostname, onListen: ({ port }) => announce(port) }, async (req) => {
  const { pathname, search } = new URL(req.url);
  try {
    const res = await fetch(new URL(`${pathname}${search}`, upstream), {
      method: req.method,
      headers: forwardable(req.headers),
      body: req.body, // streamed up as it arrives
      redirect: "manual", // redirects are the client's business
      signal: req.signal, // the client left: stop the upstream request
    });
    return new Response(res.body, {
      status: res.status,
      statusText: res.statusText,
      headers: forwardable(res.headers),
    });
  } catch (e) {
    return new Response(`upstream failed: ${e instanceof Error ? e.message : e}\n`, { status: 502 });
  }
});
onStopSignal(() => server.shutdown());
await server.finished;
