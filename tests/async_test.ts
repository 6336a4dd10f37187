import assert from "node:assert/strict";
import { readResponses, readUntil, serve, test, until } from "./helpers.ts";

test("a handler awaiting a timer and a fetch completes while the server is saturated", async () => {
  await using backend = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    () => new Response("backend"),
  );
  await using srv = serve((ev) => {
    if (ev.path !== "/slow") return void ev.reply(200, ev.path);
    (async () => {
      await new Promise((r) => setTimeout(r, 5));
      const text = await (await fetch(`http://127.0.0.1:${backend.addr.port}/`)).text();
      ev.reply(200, `slow ${text}`);
    })();
  });
  const load = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("fixtures/pipelined_load.ts", import.meta.url).pathname,
      String(srv.port),
      "32",
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const out = load.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    text = await readUntil(out, (t) => t.includes("started"), "the load generator to start");
    // Let the load reach the server before the slow requests go out.
    await until(() => srv.events.filter((e) => e.type === "http").length >= 2000, "2,000 requests of load");
    const slow = await Promise.all(
      Array.from(
        { length: 20 },
        () =>
          fetch(`http://127.0.0.1:${srv.port}/slow`, { signal: AbortSignal.timeout(30_000) }).then((r) =>
            r.text()
          ),
      ),
    );
    assert.deepEqual(slow, Array(20).fill("slow backend"));
  } finally {
    await load.stdin.close();
    // The generator prints its count and exits once its stdin closes.
    text = await readUntil(out, (t) => /responses \d+\n/.test(t), "the load generator's count", 10_000, text)
      .catch((e) => {
        load.kill("SIGKILL");
        throw e;
      });
    await out.cancel();
    await load.status;
  }
  const served = Number(/responses (\d+)/.exec(text)?.[1] ?? 0);
  assert.ok(served > 0, "the load generator was answered too");
});

test("async replies interleave with sync replies on pipelined connections", async () => {
  await using srv = serve((ev) => {
    if (ev.path.startsWith("/a")) setTimeout(() => ev.reply(200, ev.path), 1);
    else ev.reply(200, ev.path);
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: srv.port });
  try {
    let req = "";
    for (let i = 0; i < 50; i++) req += `GET /${i % 3 === 0 ? "a" : "s"}${i} HTTP/1.1\r\nHost: t\r\n\r\n`;
    await conn.write(new TextEncoder().encode(req));
    const r = await readResponses(conn, { responses: 50 });
    assert.deepEqual(
      r.responses.map((x) => x.text),
      Array.from({ length: 50 }, (_, i) => `/${i % 3 === 0 ? "a" : "s"}${i}`),
    );
  } finally {
    conn.close();
  }
});
