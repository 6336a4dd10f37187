// The Hono hello of bench/http.ts, on Deno.serve (RUNTIME=deno) or on mgnet
// (RUNTIME=mgnet): the same app object, `app.fetch` handed to either.
import { Hono } from "hono";
import { serve } from "../../mod.ts";

const app = new Hono();
app.get("*", (c) => c.json({ message: "Hello, World!" }));

const port = Number(Deno.env.get("PORT") ?? "8000");
const onListen = ({ port }: { port: number }) => console.log(`Listening on http://127.0.0.1:${port}/`);
const server = Deno.env.get("RUNTIME") === "mgnet"
  ? serve({ port, hostname: "127.0.0.1", onListen }, app.fetch)
  : Deno.serve({ port, hostname: "127.0.0.1", onListen }, app.fetch);
for (const s of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(s, () => server.shutdown());
await server.finished;
