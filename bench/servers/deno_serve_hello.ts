// Deno.serve baseline of bench/http.ts: the same answer as examples/hello.ts.
// ASYNC=1 makes the handler await a 0 ms timer first.
const body = JSON.stringify({ message: "Hello, World!" });
const port = Number(Deno.env.get("PORT") ?? "8000");
const isAsync = Deno.env.get("ASYNC") === "1";
const headers = { "content-type": "application/json" };
const server = Deno.serve(
  {
    port,
    hostname: "127.0.0.1",
    onListen: ({ port }) => console.log(`Listening on http://127.0.0.1:${port}/`),
  },
  isAsync
    ? async () => {
      await new Promise((r) => setTimeout(r, 0));
      return new Response(body, { headers });
    }
    : () => new Response(body, { headers }),
);
for (const s of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(s, () => server.shutdown());
await server.finished;
