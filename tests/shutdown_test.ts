import assert from "node:assert/strict";
import { type HttpRequestEvent, Manager, MgnetError, serve } from "../mod.ts";
import { readResponses, refused, test, until, writeAll } from "./helpers.ts";

const enc = new TextEncoder();

/** A manager whose handler parks requests on /slow until released. */
function slowServer(options: ConstructorParameters<typeof Manager>[0] = {}) {
  const mgr = new Manager(options);
  const parked: HttpRequestEvent[] = [];
  const arrived = Promise.withResolvers<void>();
  const listener = mgr.listen("http://127.0.0.1:0", {
    onRequest(ev) {
      if (ev.path === "/slow") {
        parked.push(ev);
        arrived.resolve();
      } else if (ev.path === "/stream") {
        const out = ev.respond(200);
        parked.push(ev);
        arrived.resolve();
        (async () => {
          for (let i = 0; i < 5; i++) {
            await new Promise((r) => setTimeout(r, 5));
            await out.write(`piece ${i};`);
          }
          out.end();
        })();
      } else ev.reply(200, "fast");
    },
  });
  return { mgr, port: listener.port, parked, arrived: arrived.promise };
}

async function connect(port: number, request: string): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(conn, enc.encode(request));
  return conn;
}

test("Manager.shutdown(): idle keep-alive connections are closed, the listener stops", async () => {
  const { mgr, port } = slowServer();
  const conn = await connect(port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  const first = await readResponses(conn, { responses: 1 });
  assert.equal(first.responses[0].text, "fast");
  const stopping = mgr.shutdown();
  const rest = await readResponses(conn);
  assert.equal(rest.closed, true);
  assert.equal(rest.raw.length, 0);
  conn.close(); // our FIN ends the server's lingering close
  await stopping;
  assert.equal(mgr.closed, true);
  assert.ok(await refused(port));
  await mgr.finished;
});

test("Manager.shutdown(): in-flight requests get their responses, with connection: close", async () => {
  const { mgr, port, parked, arrived } = slowServer();
  const busy = await connect(port, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
  const idle = await connect(port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  assert.equal((await readResponses(idle, { responses: 1 })).responses[0].text, "fast");
  await arrived;
  let stopped = false;
  const stopping = mgr.shutdown().then(() => stopped = true);
  // The idle connection goes at once; the busy one waits for its answer.
  assert.equal((await readResponses(idle)).closed, true);
  idle.close();
  assert.ok(await refused(port));
  assert.equal(stopped, false);
  // A request sent now on the busy connection is not read.
  await writeAll(busy, enc.encode("GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
  parked[0].reply(200, "slow answer");
  const r = await readResponses(busy);
  assert.equal(r.responses.length, 1);
  assert.equal(r.responses[0].text, "slow answer");
  assert.equal(r.responses[0].headers.get("connection"), "close");
  assert.equal(r.closed, true);
  busy.close();
  await stopping;
  assert.equal(stopped, true);
});

test("Manager.shutdown(): a streamed response in progress completes", async () => {
  const { mgr, port, arrived } = slowServer();
  const conn = await connect(port, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  await arrived;
  const stopping = mgr.shutdown();
  const r = await readResponses(conn);
  conn.close();
  await stopping;
  assert.equal(r.responses[0].text, "piece 0;piece 1;piece 2;piece 3;piece 4;");
  assert.equal(r.closed, true);
});

test("Manager.shutdown(): the timeout closes what never finishes", async () => {
  const { mgr, port, arrived } = slowServer();
  const conn = await connect(port, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
  await arrived;
  await mgr.shutdown({ timeout: 30 });
  assert.equal(mgr.closed, true);
  const r = await readResponses(conn);
  conn.close();
  assert.equal(r.closed, true);
  assert.equal(r.responses.length, 0);
});

test("Manager: an AbortSignal starts the shutdown; listen() is refused meanwhile", async () => {
  const controller = new AbortController();
  const { mgr, port, parked, arrived } = slowServer({ signal: controller.signal, shutdownTimeout: 5000 });
  const conn = await connect(port, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
  await arrived;
  controller.abort();
  assert.throws(() => mgr.listen("http://127.0.0.1:0"), MgnetError);
  await until(() => refused(port)); // the listener closes on the loop's next turn
  parked[0].reply(200, "done");
  const r = await readResponses(conn);
  conn.close();
  assert.equal(r.responses[0].text, "done");
  await mgr.shutdown(); // the same shutdown
  await mgr.finished;
  assert.equal(mgr.closed, true);
});

test("Manager.shutdown() with a for-await loop: the loop ends after the last response", async () => {
  const mgr = new Manager();
  const { port } = mgr.listen("http://127.0.0.1:0");
  const seen: string[] = [];
  const loop = (async () => {
    for await (const ev of mgr) {
      seen.push(ev.type);
      if (ev.type !== "http") continue;
      setTimeout(() => ev.reply(200, "late"), 20);
      mgr.shutdown();
    }
  })();
  const res = await fetch(`http://127.0.0.1:${port}/`);
  assert.equal(await res.text(), "late");
  await loop;
  assert.deepEqual(seen, ["open", "http", "close"]);
  assert.ok(await refused(port));
});

test("Manager: shutdownTimeout must be a non-negative number", () => {
  assert.throws(() => new Manager({ shutdownTimeout: -1 }), RangeError);
});

test("Manager.shutdown(): an upload in progress (streamed or buffered) is finished and answered", async () => {
  for (const streamBodiesOver of [1024, undefined]) {
    const mgr = new Manager({ streamBodiesOver, maxBodySize: 64 << 20 });
    const { port } = mgr.listen("http://127.0.0.1:0", {
      async onRequest(ev) {
        let n = 0;
        for await (const c of ev.bodyChunks()) n += c.length;
        ev.reply(200, `got ${n}`);
      },
    });
    // `100 Continue` tells us the server has the head and waits for the body.
    const conn = await connect(
      port,
      "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\nExpect: 100-continue\r\n\r\n",
    );
    const interim = new Uint8Array(64);
    const n = await conn.read(interim);
    assert.match(new TextDecoder().decode(interim.subarray(0, n ?? 0)), /^HTTP\/1\.1 100 Continue\r\n\r\n$/);
    const stopping = mgr.shutdown({ timeout: 10_000 });
    await until(() => refused(port), "the listener to close");
    await writeAll(conn, new Uint8Array(200_000)); // the body, after the shutdown began
    const r = await readResponses(conn);
    conn.close();
    await stopping;
    assert.equal(r.responses[0]?.text, "got 200000", `streamBodiesOver=${streamBodiesOver}`);
    assert.equal(r.responses[0].headers.get("connection"), "close");
    assert.equal(r.closed, true);
  }
});

test("shutdown keeps the outbound connection a pending request awaits, then closes it and ends", async () => {
  // A peer (Deno.listen) that answers a line only when the test says so.
  const peer = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const asked = Promise.withResolvers<Deno.Conn>();
  const peerConn = peer.accept().then(async (c) => {
    await c.read(new Uint8Array(64)); // "ping\n"
    asked.resolve(c);
    return c;
  });
  const server = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async () => {
    // The handler awaits a round trip on an outbound connection of the same manager.
    upstream.send("ping\n");
    for await (const ev of upstream) {
      if (ev.type === "data") return new Response(`upstream said ${ev.text().trim()}`);
    }
    return new Response("upstream closed", { status: 502 });
  });
  const upstream = await server.manager.connect(`tcp://127.0.0.1:${peer.addr.port}`, { framing: "line" });
  const response = fetch(`http://127.0.0.1:${server.addr.port}/`);
  // The request waits on the peer: shut down now, then let the peer answer.
  const c = await asked.promise;
  // The shutdown's own timeout is far beyond the test's deadline (30 s): it
  // ends only if the outbound connection's close is counted.
  const stopping = server.manager.shutdown({ timeout: 600_000 });
  await writeAll(c, enc.encode("pong\n"));
  const res = await response;
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "upstream said pong");
  // Then the outbound connection is closed (the peer reads its end and
  // closes too, as a database server does), which ends the shutdown.
  assert.equal(await c.read(new Uint8Array(8)), null);
  (await peerConn).close();
  await stopping;
  peer.close();
});
