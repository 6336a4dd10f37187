// Metrics: counted natively through real sockets (Deno's fetch, raw
// Deno.connect requests, a WebSocket, a TCP and a UDP echo), rendered as
// Prometheus text and parsed back here.
import assert from "node:assert/strict";
import { acceptWebSocket, Manager, MgnetError, serve } from "../mod.ts";
import { type MetricFamily, renderMetrics } from "../src/core/metrics.ts";
import { test } from "./helpers.ts";

/**
 * Parses Prometheus text (0.0.4) strictly: every sample belongs to a family
 * announced by `# HELP` and `# TYPE` lines just before it, histogram buckets
 * are cumulative and end with `+Inf` equal to `_count`. Returns the samples
 * by series (`name` or `name{label="value"}`).
 */
function parseProm(text: string): Map<string, number> {
  assert.ok(text.endsWith("\n"), "the text ends with a newline");
  const samples = new Map<string, number>();
  let family = "";
  let type = "";
  let lastBucket = -1;
  for (const line of text.slice(0, -1).split("\n")) {
    const help = /^# HELP ([a-z_]+) \S.*$/.exec(line);
    if (help) {
      family = help[1];
      type = "";
      lastBucket = -1;
      continue;
    }
    const t = /^# TYPE ([a-z_]+) (counter|gauge|histogram)$/.exec(line);
    if (t) {
      assert.equal(t[1], family, `TYPE follows the HELP of ${t[1]}`);
      type = t[2];
      continue;
    }
    const m = /^([a-z_]+)(\{([a-z]+)="([^"]*)"\})? (\S+)$/.exec(line);
    assert.ok(m, `a sample line: ${JSON.stringify(line)}`);
    assert.ok(type !== "", `${line} has a TYPE`);
    const [, name, labels, , labelValue, value] = m;
    const v = value === "+Inf" ? Infinity : Number(value);
    assert.ok(!Number.isNaN(v), line);
    if (type === "histogram") {
      assert.ok([`${family}_bucket`, `${family}_sum`, `${family}_count`].includes(name), line);
      if (name.endsWith("_bucket")) {
        assert.ok(v >= lastBucket, `buckets are cumulative: ${line}`);
        lastBucket = v;
      }
      if (name.endsWith("_count")) assert.equal(v, samples.get(`${family}_bucket{le="+Inf"}`));
    } else {
      assert.equal(name, family, line);
      if (type === "counter") assert.ok(name.endsWith("_total"), `a counter's name ends in _total: ${name}`);
      assert.ok(v >= 0, line);
    }
    const key = labels ? `${name}{${m[3]}="${labelValue}"}` : name;
    assert.ok(!samples.has(key), `one sample per series: ${key}`);
    samples.set(key, v);
  }
  return samples;
}

/** Polls `mgr.metrics()` until `ok` holds (5 s deadline); returns the last samples. */
async function metricsUntil(
  mgr: Manager,
  ok: (s: Map<string, number>) => boolean,
): Promise<Map<string, number>> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const s = parseProm(mgr.metrics());
    if (ok(s)) return s;
    if (Date.now() > deadline) {
      assert.fail(
        `metrics never reached the expected state:\n${[...s].map(([k, v]) => `${k} ${v}`).join("\n")}`,
      );
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** An HTTP server answering `/<status>` with that status and an empty body. */
function statusServer(mgr: Manager): number {
  return mgr.listen("http://127.0.0.1:0", {
    onRequest: (ev) => void ev.reply(Number(ev.path.slice(1)) || 200, ""),
  }).port;
}

/** Reads from `conn` until `n` empty-bodied responses (heads) arrived; returns the bytes. */
async function readResponses(conn: Deno.Conn, n: number): Promise<string> {
  let text = "";
  const buf = new Uint8Array(4096);
  while (text.split("\r\n\r\n").length - 1 < n) {
    const got = await conn.read(buf);
    assert.ok(got !== null, `connection closed after ${JSON.stringify(text)}`);
    text += new TextDecoder().decode(buf.subarray(0, got));
  }
  assert.equal(text.split("\r\n\r\n").length - 1, n, "no byte beyond the responses");
  return text;
}

test("metrics: raw requests count exact bytes, statuses and open connections", async () => {
  await using mgr = new Manager({ metrics: true });
  const port = statusServer(mgr);
  const a = await Deno.connect({ hostname: "127.0.0.1", port });
  const b = await Deno.connect({ hostname: "127.0.0.1", port });
  const enc = new TextEncoder();
  const reqA = enc.encode("GET /200 HTTP/1.1\r\nHost: x\r\n\r\n");
  // Two pipelined requests in one write.
  const reqB = enc.encode("GET /404 HTTP/1.1\r\nHost: x\r\n\r\nGET /503 HTTP/1.1\r\nHost: x\r\n\r\n");
  await a.write(reqA);
  await b.write(reqB);
  const resA = await readResponses(a, 1);
  const resB = await readResponses(b, 2);
  assert.match(resA, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(resB, /^HTTP\/1\.1 404 Not Found\r\n[^]*HTTP\/1\.1 503 Service Unavailable\r\n/);
  const s = parseProm(mgr.metrics());
  assert.equal(s.get("mgnet_received_bytes_total"), reqA.length + reqB.length);
  assert.equal(s.get("mgnet_sent_bytes_total"), enc.encode(resA + resB).length);
  assert.equal(s.get("mgnet_connections_open"), 2);
  assert.equal(s.get("mgnet_connections_accepted_total"), 2);
  assert.equal(s.get("mgnet_connections_closed_total"), 0);
  assert.equal(s.get("mgnet_http_requests_total"), 3);
  assert.equal(s.get('mgnet_http_responses_total{code="200"}'), 1);
  assert.equal(s.get('mgnet_http_responses_total{code="404"}'), 1);
  assert.equal(s.get('mgnet_http_responses_total{code="503"}'), 1);
  // Codes never sent are left out.
  assert.equal(s.has('mgnet_http_responses_total{code="500"}'), false);
  assert.equal(s.get("mgnet_http_request_duration_seconds_count"), 3);
  a.close();
  b.close();
  const after = await metricsUntil(mgr, (s) => s.get("mgnet_connections_open") === 0);
  assert.equal(after.get("mgnet_connections_closed_total"), 2);
  assert.equal(after.get("mgnet_received_bytes_total"), reqA.length + reqB.length);
});

test("metrics: fetch requests fill the latency histogram; a cache hit is counted", async () => {
  await using mgr = new Manager({ metrics: true });
  const port = statusServer(mgr);
  mgr.cache("/cached", { body: "c" });
  for (const path of ["/200", "/200", "/404", "/500", "/cached"]) {
    await (await fetch(`http://127.0.0.1:${port}${path}`)).arrayBuffer();
  }
  const s = parseProm(mgr.metrics());
  assert.equal(s.get("mgnet_http_requests_total"), 5);
  assert.equal(s.get("mgnet_http_cache_hits_total"), 1);
  assert.equal(s.get('mgnet_http_responses_total{code="200"}'), 3); // the cached answer is a 200 too
  assert.equal(s.get('mgnet_http_responses_total{code="404"}'), 1);
  assert.equal(s.get('mgnet_http_responses_total{code="500"}'), 1);
  assert.equal(s.get("mgnet_http_request_duration_seconds_count"), 5);
  const sum = s.get("mgnet_http_request_duration_seconds_sum")!;
  assert.ok(sum > 0 && sum < 5, `${sum}`);
  // Bounds from 10 µs to 10 s, then +Inf.
  assert.equal(s.has('mgnet_http_request_duration_seconds_bucket{le="0.00001"}'), true);
  assert.equal(s.has('mgnet_http_request_duration_seconds_bucket{le="10"}'), true);
  assert.equal(s.get('mgnet_http_request_duration_seconds_bucket{le="+Inf"}'), 5);
});

test("metrics: a WebSocket echo and a TCP echo bump their counters", async () => {
  await using mgr = new Manager({ metrics: true });
  const http = mgr.listen("http://127.0.0.1:0");
  const tcp = mgr.listen("tcp://127.0.0.1:0");
  const served = (async () => {
    for await (const ev of mgr) {
      if (ev.type === "http") acceptWebSocket(ev);
      else if (ev.type === "ws-message") ev.socket.send(ev.data);
      else if (ev.type === "data") ev.conn.send(ev.bytes);
      else if (ev.type === "end") ev.conn.end();
    }
  })();
  const ws = new WebSocket(`ws://127.0.0.1:${http.port}/`);
  const echoes: string[] = [];
  const got3 = Promise.withResolvers<void>();
  ws.onmessage = (e) => {
    echoes.push(e.data);
    if (echoes.length === 3) got3.resolve();
  };
  await new Promise((r) => ws.onopen = r);
  for (const m of ["a", "bb", "ccc"]) ws.send(m);
  await got3.promise;
  assert.deepEqual(echoes, ["a", "bb", "ccc"]);

  const conn = await Deno.connect({ hostname: "127.0.0.1", port: tcp.port });
  await conn.write(new TextEncoder().encode("hello"));
  const back = new Uint8Array(5);
  let n = 0;
  while (n < 5) n += (await conn.read(back.subarray(n))) ?? assert.fail("closed");
  assert.equal(new TextDecoder().decode(back), "hello");

  const s = parseProm(mgr.metrics());
  assert.equal(s.get("mgnet_ws_messages_received_total"), 3);
  assert.equal(s.get("mgnet_ws_messages_sent_total"), 3);
  assert.equal(s.get("mgnet_tcp_received_bytes_total"), 5);
  assert.equal(s.get("mgnet_tcp_sent_bytes_total"), 5);
  assert.equal(s.get('mgnet_http_responses_total{code="101"}'), 1);
  assert.equal(s.get("mgnet_connections_open"), 2);
  const closed = new Promise((r) => ws.onclose = r);
  ws.close();
  await closed;
  conn.close();
  await metricsUntil(mgr, (s) => s.get("mgnet_connections_open") === 0);
  await mgr.close();
  await served;
});

test("metrics: UDP datagrams and their bytes, both ways", async () => {
  await using mgr = new Manager({ metrics: true });
  const sock = mgr.listen("udp://127.0.0.1:0", { onDatagram: (ev) => void ev.reply(ev.bytes) });
  const peer = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const to = { transport: "udp" as const, hostname: "127.0.0.1", port: sock.port };
    await peer.send(new Uint8Array([1, 2, 3]), to);
    await peer.receive();
    await peer.send(new Uint8Array(7), to);
    await peer.receive();
    const s = await metricsUntil(mgr, (s) => s.get("mgnet_udp_sent_datagrams_total") === 2);
    assert.equal(s.get("mgnet_udp_received_datagrams_total"), 2);
    assert.equal(s.get("mgnet_udp_received_bytes_total"), 10);
    assert.equal(s.get("mgnet_udp_sent_bytes_total"), 10);
  } finally {
    peer.close();
  }
});

test("serve({ metrics }): the path answers GET and HEAD natively; other methods reach the handler", async () => {
  let calls = 0;
  await using server = serve({ port: 0, hostname: "127.0.0.1", onListen: false, metrics: "/metrics" }, () => {
    calls++;
    return new Response("app");
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  assert.equal(await (await fetch(`${base}/x`)).text(), "app");
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const s = parseProm(await res.text());
  assert.equal(s.get('mgnet_http_responses_total{code="200"}'), 1); // the /x answer; this one is not sent yet
  assert.equal(s.get("mgnet_http_requests_total"), 2);
  const head = await fetch(`${base}/metrics`, { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), "");
  assert.equal(await (await fetch(`${base}/metrics`, { method: "POST", body: "x" })).text(), "app");
  assert.equal(await (await fetch(`${base}/metrics/more`)).text(), "app");
  assert.equal(calls, 3);
  assert.throws(
    () => serve({ port: 0, onListen: false, metrics: "metrics" }, () => new Response()),
    TypeError,
  );
});

test("metrics are opt-in: metrics() refuses on a manager made without them, and once closed", async () => {
  const mgr = new Manager();
  assert.throws(() => mgr.metrics(), (e) => e instanceof MgnetError && e.code === "State");
  await mgr.close();
  const on = new Manager({ metrics: true });
  parseProm(on.metrics());
  await on.close();
  assert.throws(() => on.metrics(), /closed/);
});

test("renderMetrics: HELP/TYPE per family, sparse zeros left out, labels escaped, histogram layout", () => {
  const families: MetricFamily[] = [
    { name: "a_total", type: "counter", help: "A.", label: "", sparse: false, values: [] },
    { name: "g", type: "gauge", help: "G \\ x", label: "k", sparse: true, values: ['q"1', "two", "3"] },
    { name: "h", type: "histogram", help: "H.", label: "le", sparse: false, values: ["0.5", "+Inf"] },
  ];
  const text = renderMetrics(families, [7, 0, 2.5, 1, 1, 3, 4.25, 3]);
  assert.equal(
    text,
    [
      "# HELP a_total A.",
      "# TYPE a_total counter",
      "a_total 7",
      "# HELP g G \\\\ x",
      "# TYPE g gauge",
      'g{k="two"} 2.5',
      'g{k="3"} 1',
      "# HELP h H.",
      "# TYPE h histogram",
      'h_bucket{le="0.5"} 1',
      'h_bucket{le="+Inf"} 3',
      "h_sum 4.25",
      "h_count 3",
      "",
    ].join("\n"),
  );
  assert.equal(renderMetrics(families, [0, 9, 0, 0, 0, 0, 0, 0]).includes('g{k="q\\"1"} 9'), true);
});
