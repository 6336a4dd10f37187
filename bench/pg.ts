/**
 * A handler awaiting one `SELECT` per request through npm:postgres:
 * server CPU per request for Deno.serve and mgnet's serve() with the
 * driver on Deno's sockets, and mgnet's serve() with the driver on mgnet's
 * node:net socket (src/node/net.ts) on the server's own manager.
 *
 *   deno task bench:pg [--duration=5] [--rounds=2] [--connections=20]
 *
 * The app is pinned to core 0; wrk (one thread) and PostgreSQL (started
 * here on a free port from Debian's package, see tests/pg_server.ts) share
 * core 1. Server CPU is the app's user + system time from /proc/PID/stat
 * over the measured window, divided by the requests answered. Each round
 * runs every server back to back; ratios are medians of per-round ratios.
 */
import { pgBin, startPostgres } from "../tests/pg_server.ts";
import { clockTicks, cpuTicks, freePort, median, run, startServer } from "./_measure.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const DENO = Deno.execPath();
const APP = `${ROOT}bench/servers/pg_app.ts`;

const a: Record<string, string> = {};
for (const arg of Deno.args) {
  const m = /^--([a-z]+)=(.*)$/.exec(arg);
  if (!m) throw new Error(`unknown argument ${arg}`);
  a[m[1]] = m[2];
}
const duration = Number(a.duration ?? 5);
const rounds = Number(a.rounds ?? 2);
const connections = Number(a.connections ?? 20);

const SERVERS: Record<string, Record<string, string>> = {
  "Deno.serve + pg (Deno sockets)": { RUNTIME: "deno", SOCKET: "deno" },
  "mgnet serve() + pg (Deno sockets)": { RUNTIME: "mgnet", SOCKET: "deno" },
  "mgnet serve() + pg (mgnet socket)": { RUNTIME: "mgnet", SOCKET: "mgnet" },
};
const BASE = "Deno.serve + pg (Deno sockets)";
// --wakes=callback,doorbell adds the mgnet rows again with each of those wake
// paths (MGNET_WAKE, docs/architecture.md section 29).
for (const wake of (a.wakes ?? "").split(",").filter(Boolean)) {
  for (const [name, env] of Object.entries(SERVERS)) {
    if (env.RUNTIME === "mgnet" && !env.MGNET_WAKE) {
      SERVERS[`${name}, ${wake}`] = { ...env, MGNET_WAKE: wake };
    }
  }
}

const CLK_TCK = await clockTicks();

function ms(s: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(s);
  return m ? Number(m[1]) * { us: 1e-3, ms: 1, s: 1e3 }[m[2] as "us" | "ms" | "s"] : NaN;
}

async function wrk(url: string, seconds: number) {
  const out = await run([
    "taskset",
    "-c",
    "1",
    "wrk",
    "-t1",
    `-c${connections}`,
    `-d${seconds}s`,
    "--latency",
    url,
  ]);
  const m = /(\d+) requests in ([\d.]+)(\w+)/.exec(out);
  if (!m) throw new Error(`cannot read wrk output:\n${out}`);
  const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const p99 = /^\s+99%\s+(\S+)/m.exec(out);
  return {
    requests: Number(m[1]),
    seconds: ms(`${m[2]}${m[3]}`) / 1e3,
    errors: (errs ? errs.slice(1).reduce((x, y) => x + Number(y), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0),
    p99: p99 ? ms(p99[1]) : NaN,
  };
}

interface Row {
  server: string;
  round: number;
  rps: number;
  cpuUs: number;
  p99: number;
  errors: number;
}

async function measure(server: string, pgPort: number, round: number): Promise<Row> {
  const port = freePort();
  const child = await startServer([DENO, "run", "-A", APP], {
    ...SERVERS[server],
    PORT: String(port),
    PG_PORT: String(pgPort),
  });
  try {
    const url = `http://127.0.0.1:${port}/`;
    const check = await fetch(url);
    if (!check.ok) throw new Error(`${server}: ${check.status} ${await check.text()}`);
    await check.body?.cancel();
    await wrk(url, 2); // warm-up
    const before = cpuTicks(child.pid);
    const r = await wrk(url, duration);
    const cpu = (cpuTicks(child.pid) - before) / CLK_TCK;
    return {
      server,
      round,
      rps: r.requests / r.seconds,
      cpuUs: cpu * 1e6 / r.requests,
      p99: r.p99,
      errors: r.errors,
    };
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
}

const f = (n: number, d = 2) => Number.isFinite(n) ? n.toFixed(d) : "–";

if (import.meta.main) {
  const bin = pgBin();
  if (!bin) {
    console.error("bench:pg needs PostgreSQL (apt-get install -y postgresql)");
    Deno.exit(1);
  }
  const pg = await startPostgres(bin, { cpus: "1" });
  const rows: Row[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      for (const server of Object.keys(SERVERS)) {
        const row = await measure(server, pg.port, round);
        rows.push(row);
        console.error(
          `round ${round + 1}: ${server}: ${f(row.rps, 0)} req/s, ${f(row.cpuUs)} µs/req, p99 ${
            f(row.p99)
          } ms, errors ${row.errors}`,
        );
      }
    }
  } finally {
    await pg.stop();
  }
  console.log(
    `\nnpm:postgres, one SELECT per request, wrk -t1 -c${connections}, ${rounds} × ${duration} s\n`,
  );
  console.log(
    "| server | req/s | server CPU µs/req | CPU × Deno.serve | p99 ms | p99 × Deno.serve | errors |",
  );
  console.log("|---|---:|---:|---:|---:|---:|---:|");
  for (const server of Object.keys(SERVERS)) {
    const mine = rows.filter((r) => r.server === server);
    const ratio = (g: (r: Row) => number) =>
      median(mine.map((r) => g(r) / g(rows.find((x) => x.server === BASE && x.round === r.round)!)));
    console.log(
      `| ${server} | ${f(median(mine.map((r) => r.rps)), 0)} | ${f(median(mine.map((r) => r.cpuUs)))} | ${
        f(ratio((r) => r.cpuUs))
      } | ${f(median(mine.map((r) => r.p99)))} | ${f(ratio((r) => r.p99))} | ${
        mine.reduce((x, r) => x + r.errors, 0)
      } |`,
    );
  }
}
