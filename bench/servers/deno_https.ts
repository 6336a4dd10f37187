/**
 * Deno.serve's hello over TLS, the comparison of bench/https.ts (the same
 * answer as examples/https.ts). `PORT`, `CERT_FILE`, `KEY_FILE`.
 */
const body = JSON.stringify({ message: "Hello, World!" });
Deno.serve({
  hostname: "127.0.0.1",
  port: Number(Deno.env.get("PORT") ?? 8443),
  cert: Deno.readTextFileSync(Deno.env.get("CERT_FILE")!),
  key: Deno.readTextFileSync(Deno.env.get("KEY_FILE")!),
  onListen: ({ port }) => console.log(`Listening on https://127.0.0.1:${port}/`),
}, () => new Response(body, { headers: { "content-type": "application/json" } }));
