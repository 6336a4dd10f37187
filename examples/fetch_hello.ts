/**
 * The hello server written fetch-style, as for Deno.serve:
 * every path answers `{"message":"Hello, World!"}`.
 *
 *   PORT=8000 HOSTNAME=127.0.0.1 deno task serve:fetch
 */
import { serve } from "../mod.ts";
import { announce, hostname, onStopSignal, port } from "./_server_env.ts";

const body = JSON.stringify({ message: "Hello, World!" });

const server = serve({
  port,
  hostname,
  onListen: ({ port }) => announce(port),
}, () => new Response(body, { headers: { "content-type": "application/json" } }));
onStopSignal(() => server.shutdown());
await server.finished;
