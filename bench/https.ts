/**
 * HTTPS benchmark: mgnet (rustls behind MG_TLS_CUSTOM) against Deno.serve
 * and plain-C Mongoose with its built-in TLS, with the same P-256
 * certificate, in one run.
 *
 *   deno task bench:https [--duration=5] [--rounds=3] [--keepalive=100] [--handshake=50]
 *
 * Servers are pinned to core 0, wrk to core 1 (as bench/http.ts). Two
 * scenarios: keep-alive GETs (`--keepalive` connections) and a full
 * handshake per request (`Connection: close`, `--handshake` connections).
 * Server CPU time (/proc, bench/_measure.ts) ÷ requests answered gives CPU
 * µs per request; wrk's socket errors are counted. Every figure is the
 * median over rounds; ratios are medians of per-round ratios to Deno.serve.
 *
 * The keep-alive scenario also runs Deno.serve and mgnet over plain HTTP
 * (same hello, same load): the difference to their HTTPS rows is what TLS
 * costs each engine per request, printed under the table.
 */

import {
  buildMongooseC,
  clockTicks,
  cpuTimes,
  freePort,
  median,
  numberFlags,
  pairedMedian,
  run,
  startServer,
} from "./_measure.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const BUILD = `${ROOT}bench/.build`;
const TLS_DIR = `${BUILD}/tls`;
const DENO = Deno.execPath();
const flags = numberFlags({ duration: 5, rounds: 3, keepalive: 100, handshake: 50 });

/** A P-256 certificate for 127.0.0.1 (openssl), shared by every server. */
async function makeCert(): Promise<void> {
  await Deno.mkdir(TLS_DIR, { recursive: true });
  await run([
    "openssl",
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${TLS_DIR}/key.pem`,
    "-out",
    `${TLS_DIR}/cert.pem`,
    "-days",
    "2",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "-addext",
    "basicConstraints=critical,CA:FALSE",
  ]);
}

const SERVERS: Record<string, string[]> = {
  "Deno.serve": [DENO, "run", "-A", `${ROOT}bench/servers/deno_https.ts`],
  "Mongoose-C (built-in TLS)": [`${BUILD}/mongoose_https`],
  "mgnet": [DENO, "run", "-A", `${ROOT}examples/https.ts`],
};
/** Keep-alive only: the same engines without TLS (`http://`). */
const PLAIN: Record<string, { of: string; cmd: string[]; env?: Record<string, string> }> = {
  "Deno.serve, no TLS": {
    of: "Deno.serve",
    cmd: [DENO, "run", "-A", `${ROOT}bench/servers/deno_https.ts`],
    env: { NO_TLS: "1" },
  },
  "mgnet, no TLS": { of: "mgnet", cmd: [DENO, "run", "-A", `${ROOT}examples/hello.ts`] },
};

const SCENARIOS = {
  keepalive: { name: `keep-alive, ${flags.keepalive} conns`, connections: flags.keepalive, close: false },
  handshake: {
    name: `full handshake per request (Connection: close), ${flags.handshake} conns`,
    connections: flags.handshake,
    close: true,
  },
};

interface Row {
  scenario: string;
  server: string;
  round: number;
  rps: number;
  cpuUs: number;
  /** The user-space part of cpuUs. */
  userUs: number;
  errors: number;
}

const CLK_TCK = await clockTicks();

async function wrk(url: string, connections: number, close: boolean, seconds: number) {
  const args = ["-c", "1", "wrk", "-t1", `-c${connections}`, `-d${seconds}s`, "--timeout", "10s"];
  if (close) args.push("-H", "Connection: close");
  const out = await run(["taskset", ...args, url]);
  const m = /(\d+) requests in ([\d.]+)(\w+)/.exec(out);
  if (!m) throw new Error(`cannot read wrk output:\n${out}`);
  const secs = Number(m[2]) * ({ us: 1e-6, ms: 1e-3, s: 1, m: 60 } as Record<string, number>)[m[3]];
  const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const errors = (errs ? errs.slice(1).reduce((a, b) => a + Number(b), 0) : 0) +
    (non2xx ? Number(non2xx[1]) : 0);
  return { requests: Number(m[1]), seconds: secs, errors, text: out };
}

await makeCert();
await buildMongooseC("mongoose_https", `${BUILD}/mongoose_https`, ["-DMG_TLS=MG_TLS_BUILTIN"]);
const rows: Row[] = [];
for (let round = 0; round < flags.rounds; round++) {
  for (const [key, sc] of Object.entries(SCENARIOS)) {
    const plain = key === "keepalive" ? Object.entries(PLAIN) : [];
    for (
      const [server, cmd, env, scheme] of [
        ...Object.entries(SERVERS).map(([s, c]) => [s, c, {}, "https"] as const),
        ...plain.map(([s, p]) => [s, p.cmd, p.env ?? {}, "http"] as const),
      ]
    ) {
      const port = freePort();
      const child = await startServer(cmd, {
        PORT: String(port),
        HOSTNAME: "127.0.0.1",
        CERT_FILE: `${TLS_DIR}/cert.pem`,
        KEY_FILE: `${TLS_DIR}/key.pem`,
        ...env,
      });
      try {
        const url = `${scheme}://127.0.0.1:${port}/`;
        await wrk(url, sc.connections, sc.close, 1); // warm-up
        const t0 = cpuTimes(child.pid);
        const r = await wrk(url, sc.connections, sc.close, flags.duration);
        const t1 = cpuTimes(child.pid);
        const user = (t1.user - t0.user) / CLK_TCK;
        const cpu = user + (t1.system - t0.system) / CLK_TCK;
        rows.push({
          scenario: key,
          server,
          round,
          rps: r.requests / r.seconds,
          cpuUs: r.requests > 0 ? (cpu * 1e6) / r.requests : NaN,
          userUs: r.requests > 0 ? (user * 1e6) / r.requests : NaN,
          errors: r.errors,
        });
        console.error(
          `round ${round + 1} ${key} ${server}: ${(r.requests / r.seconds).toFixed(0)} req/s, ` +
            `${((cpu * 1e6) / r.requests).toFixed(1)} µs CPU/req, ${r.errors} errors`,
        );
      } finally {
        child.kill("SIGTERM");
        await child.status;
      }
    }
  }
}

const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "–");
console.log(
  `\nserver CPU per request, ${flags.rounds} round(s) of ${flags.duration} s, P-256, server on core 0, wrk on core 1\n`,
);
console.log(
  "| scenario | server | req/s | server CPU µs/req | user-space µs/req | CPU × Deno.serve | user-space × Deno.serve | errors (all rounds) |",
);
console.log("|---|---|---:|---:|---:|---:|---:|---:|");
/** `pairedMedian` of server `a` against `b` in one scenario. */
function paired(scenario: string, a: string, b: string, f: (ra: Row, rb: Row) => number): number {
  const scRows = rows.filter((r) => r.scenario === scenario);
  return pairedMedian(scRows, scRows.filter((r) => r.server === a), b, f);
}

for (const [key, sc] of Object.entries(SCENARIOS)) {
  for (const server of [...Object.keys(SERVERS), ...(key === "keepalive" ? Object.keys(PLAIN) : [])]) {
    const mine = rows.filter((r) => r.scenario === key && r.server === server);
    if (mine.length === 0) continue;
    const ratio = (f: (r: Row) => number) => paired(key, server, "Deno.serve", (r, d) => f(r) / f(d));
    console.log(
      `| ${sc.name} | ${server} | ${fmt(median(mine.map((r) => r.rps)), 0)} | ${
        fmt(median(mine.map((r) => r.cpuUs)))
      } | ${fmt(median(mine.map((r) => r.userUs)))} | ${fmt(ratio((r) => r.cpuUs), 2)} | ${
        fmt(ratio((r) => r.userUs), 2)
      } | ${mine.reduce((a, r) => a + r.errors, 0)} |`,
    );
  }
}

// What TLS adds per keep-alive request, per engine: its HTTPS row minus its
// plain-HTTP row, per round (medians).
const added = Object.entries(PLAIN).map(([plain, { of }]) =>
  `${of} ${fmt(paired("keepalive", of, plain, (tls, http) => tls.cpuUs - http.cpuUs), 2)} µs`
);
const plainRatio = paired("keepalive", "mgnet, no TLS", "Deno.serve, no TLS", (m, d) => m.cpuUs / d.cpuUs);
console.log(
  `\nkeep-alive, what TLS adds per request (HTTPS − plain HTTP, median of rounds): ${
    added.join(", ")
  }; plain HTTP mgnet × Deno.serve ${fmt(plainRatio, 2)}`,
);
