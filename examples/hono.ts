/**
 * A Hono app, unchanged, on mgnet's engine: `serve(app.fetch)`.
 *
 *   PORT=8000 HOSTNAME=127.0.0.1 deno task serve:hono
 *
 * Routes: GET / (text), GET /hello/:name (JSON), POST /echo (JSON echo),
 * and a middleware adding `x-powered-by`.
 */
import { Hono } from "hono";
import { serve } from "../mod.ts";
import { announce, hostname, onStopSignal, port } from "./_server_env.ts";

export const app = new Hono();
app.use("*", async (c, next) => {
  await next();
  c.header("x-powered-by", "mgnet+hono");
});
app.get("/", (c) => c.text("Hello from Hono on mgnet!"));
app.get("/hello/:name", (c) => c.json({ message: `Hello, ${c.req.param("name")}!` }));
app.post("/echo", async (c) => c.json({ received: await c.req.json() }));

if (import.meta.main) {
  const server = serve({ port, hostname, onListen: ({ port }) => announce(port) }, app.fetch);
  onStopSignal(() => server.shutdown());
  await server.finished;
}
