// The server of bench/pg.ts: every request awaits one `SELECT` through
// npm:postgres, then answers with its row as JSON.
//   RUNTIME  deno (Deno.serve) | mgnet (mgnet's serve())
//   SOCKET   deno (npm:postgres's own node:net socket, on Deno's reactor) |
//            mgnet (src/node/net.ts on the server's own manager)
//   PG_PORT  PostgreSQL's port on 127.0.0.1;  POOL  pool size (default 10)
import postgres from "postgres";
import { serve } from "../../mod.ts";
import { createConnection } from "../../src/node/net.ts";
import type { Manager } from "../../mod.ts";

const runtime = Deno.env.get("RUNTIME") ?? "deno";
const socket = Deno.env.get("SOCKET") ?? "deno";
const port = Number(Deno.env.get("PORT") ?? "8000");
const pgPort = Number(Deno.env.get("PG_PORT"));
let manager: Manager | undefined;
const options: Record<string, unknown> = {
  host: "127.0.0.1",
  port: pgPort,
  user: "postgres",
  database: "postgres",
  max: Number(Deno.env.get("POOL") ?? "10"),
  prepare: true,
};
if (socket === "mgnet") {
  options.socket = ({ host: [h], port: [p] }: { host: string[]; port: number[] }) =>
    createConnection({ host: h, port: p, manager });
}
const sql = postgres(options as any);
let n = 0;
const handler = async () => {
  const [row] = await sql`select ${++n % 1000}::int as n, 'hello' as s`;
  return Response.json(row);
};
const onListen = () => console.log(`Listening on http://127.0.0.1:${port}/`);
const server = runtime === "mgnet"
  ? serve({ port, hostname: "127.0.0.1", onListen }, handler)
  : Deno.serve({ port, hostname: "127.0.0.1", onListen }, handler);
if ("manager" in server) manager = server.manager;
for (const s of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(s, async () => {
    await server.shutdown();
    await sql.end({ timeout: 1 });
    Deno.exit(0);
  });
}
