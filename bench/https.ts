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
 */

import {
  buildMongooseC,
  clockTicks,
  cpuTicks,
  freePort,
  median,
  numberFlags,
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
    for (const [server, cmd] of Object.entries(SERVERS)) {
      const port = freePort();
      const child = await startServer(cmd, {
        PORT: String(port),
        CERT_FILE: `${TLS_DIR}/cert.pem`,
        KEY_FILE: `${TLS_DIR}/key.pem`,
      });
      try {
        const url = `https://127.0.0.1:${port}/`;
        await wrk(url, sc.connections, sc.close, 1); // warm-up
        const t0 = cpuTicks(child.pid);
        const r = await wrk(url, sc.connections, sc.close, flags.duration);
        const cpu = (cpuTicks(child.pid) - t0) / CLK_TCK;
        rows.push({
          scenario: key,
          server,
          round,
          rps: r.requests / r.seconds,
          cpuUs: r.requests > 0 ? (cpu * 1e6) / r.requests : NaN,
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
console.log("| scenario | server | req/s | server CPU µs/req | CPU × Deno.serve | errors (all rounds) |");
console.log("|---|---|---:|---:|---:|---:|");
for (const [key, sc] of Object.entries(SCENARIOS)) {
  for (const server of Object.keys(SERVERS)) {
    const mine = rows.filter((r) => r.scenario === key && r.server === server);
    const ratio = median(mine.map((r) => {
      const d = rows.find((x) => x.scenario === key && x.server === "Deno.serve" && x.round === r.round);
      return d ? r.cpuUs / d.cpuUs : NaN;
    }));
    console.log(
      `| ${sc.name} | ${server} | ${fmt(median(mine.map((r) => r.rps)), 0)} | ${
        fmt(median(mine.map((r) => r.cpuUs)))
      } | ${fmt(ratio, 2)} | ${mine.reduce((a, r) => a + r.errors, 0)} |`,
    );
  }
}
