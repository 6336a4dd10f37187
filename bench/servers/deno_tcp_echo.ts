/**
 * The baseline of `bench/net_tcp.ts`: an idiomatic `Deno.listen` echo
 * server (`for await` over the listener, a read/write loop per connection).
 * Reads PORT; prints `Listening on tcp://127.0.0.1:PORT/` when ready.
 */
const port = Number(Deno.env.get("PORT") ?? "7000");
const listener = Deno.listen({ hostname: "127.0.0.1", port });
console.log(`Listening on tcp://127.0.0.1:${port}/`);

// `nodelay` as the first argument: TCP_NODELAY on every accepted socket, as
// mgnet (Mongoose) sets it; Deno.listen leaves Nagle's algorithm on.
const noDelay = Deno.args[0] === "nodelay";

async function echo(conn: Deno.Conn): Promise<void> {
  if (noDelay) (conn as Deno.TcpConn).setNoDelay(true);
  const buf = new Uint8Array(16 * 1024);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      let off = 0;
      while (off < n) off += await conn.write(buf.subarray(off, n));
    }
  } catch {
    // the client went away
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

for await (const conn of listener) echo(conn);
