/**
 * Time to deliver one large response whose bytes were queued all at once:
 * a `reply()` with the whole body, and `write()`s nobody awaited. Shows
 * whether queuing output costs time linear in its size (see
 * docs/architecture.md, "Output nobody waited for").
 *
 *   deno task bench:large [MB ...]     (default: 16 64 256)
 *
 * Each size runs against a reader that reads as fast as it can and one that
 * pauses 1 ms every 8 reads of 64 KiB. Client and server share this process.
 */
import { Manager } from "../mod.ts";

const sizes = Deno.args.length ? Deno.args.map(Number) : [16, 64, 256];

async function deliver(size: number, how: "reply" | "write", slow: boolean): Promise<number> {
  const body = new Uint8Array(size).fill(65);
  await using mgr = new Manager();
  const port = mgr.listen("http://127.0.0.1:0").port;
  const loop = (async () => {
    for await (const ev of mgr) {
      if (ev.type !== "http") continue;
      if (how === "reply") {
        ev.reply(200, body);
        continue;
      }
      const out = ev.respond(200);
      for (let i = 0; i < size; i += 64 * 1024) out.write(body.subarray(i, i + 64 * 1024)).catch(() => {});
      out.end();
    }
  })();
  const t0 = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"));
  const buf = new Uint8Array(64 * 1024);
  let received = 0;
  for (let reads = 1;; reads++) {
    const n = await conn.read(buf);
    if (n === null) break;
    received += n;
    if (slow && reads % 8 === 0) await new Promise((r) => setTimeout(r, 1));
  }
  const ms = performance.now() - t0;
  conn.close();
  await mgr.close();
  await loop;
  if (received < size) throw new Error(`received ${received} of ${size} bytes`);
  return ms;
}

console.log("| size | reply(), fast reader | reply(), slow reader | write() ×N, slow reader |");
console.log("| ---: | ---: | ---: | ---: |");
for (const mb of sizes) {
  const size = mb << 20;
  const cells = [
    await deliver(size, "reply", false),
    await deliver(size, "reply", true),
    await deliver(size, "write", true),
  ];
  console.log(`| ${mb} MB | ${cells.map((ms) => `${ms.toFixed(0)} ms`).join(" | ")} |`);
}
