/**
 * Deno.serve's hello over TLS, the comparison of bench/https.ts (the same
 * answer as examples/https.ts). `PORT`, `CERT_FILE`, `KEY_FILE`; with
 * `NO_TLS=1` the same server over plain HTTP (the bench's TLS-free
 * reference row).
 */
const body = JSON.stringify({ message: "Hello, World!" });
const plain = Deno.env.get("NO_TLS") === "1";
const tls = plain ? {} : {
  cert: Deno.readTextFileSync(Deno.env.get("CERT_FILE")!),
  key: Deno.readTextFileSync(Deno.env.get("KEY_FILE")!),
};
Deno.serve({
  hostname: "127.0.0.1",
  port: Number(Deno.env.get("PORT") ?? 8443),
  ...tls,
  onListen: ({ port }) => console.log(`Listening on ${plain ? "http" : "https"}://127.0.0.1:${port}/`),
}, () => new Response(body, { headers: { "content-type": "application/json" } }));
