/**
 * The hello server written fetch-style, as for Deno.serve:
 * every path answers `{"message":"Hello, World!"}`.
 *
 *   PORT=8000 HOSTNAME=127.0.0.1 deno task serve:fetch
 */
import { serve } from "../mod.ts";

const hostname = Deno.env.get("HOSTNAME") ?? "127.0.0.1";
const port = Number(Deno.env.get("PORT") ?? "8000");
const body = JSON.stringify({ message: "Hello, World!" });

const server = serve({
  port,
  hostname,
  onListen: ({ port }) =>
    console.log(`Listening on http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}/`),
}, () => new Response(body, { headers: { "content-type": "application/json" } }));
for (const s of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(s, () => server.shutdown());
await server.finished;
