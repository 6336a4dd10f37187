/**
 * The server of `bench/serve_bench.ts`: the same fetch-style handler on
 * mgnet's `serve()` (SERVER=mgnet) or on `Deno.serve` (SERVER=deno).
 * `/64k` answers 64 KiB of "a", anything else "Hello, World!". Reads PORT
 * (0: any); prints `Listening on http://127.0.0.1:PORT/` when ready.
 */
import { serve } from "../../mod.ts";

const big = new Uint8Array(64 * 1024).fill(0x61);
const handler = (req: Request): Response =>
  new URL(req.url).pathname === "/64k" ? new Response(big) : new Response("Hello, World!");
const port = Number(Deno.env.get("PORT") ?? "0");
const onListen = ({ port }: { port: number }) => console.log(`Listening on http://127.0.0.1:${port}/`);
if (Deno.env.get("SERVER") === "deno") {
  Deno.serve({ port, hostname: "127.0.0.1", onListen }, handler);
} else {
  serve({ port, hostname: "127.0.0.1", onListen }, handler);
}
