/**
 * WebSocket echo benchmark: mgnet (the event API and `upgradeWebSocket`
 * under `serve()`) against `Deno.upgradeWebSocket` under `Deno.serve` and a
 * plain-C Mongoose echo (`mg_ws_upgrade`/`mg_ws_send`), in one run.
 *
 *   deno task bench:ws [--duration=10] [--rounds=3] [--connections=100]
 *
 * Two scenarios: 64 B messages with 8 in flight per connection, and 16 KiB
 * messages with 4 in flight. The load generator (`bench/servers/ws_load.c`,
 * compiled here with cc; the structure of the TCP bench's tcp_load.c)
 * upgrades each connection with a fixed handshake and sends prebuilt masked
 * binary frames, a new one for every echo received whole. Each server is
 * pinned to core 0, the load generator to core 1. Per round, scenario and
 * server: 2 s of warm-up, then `duration` seconds measured; server CPU time
 * (user + system, all threads, from /proc/PID/stat) divided by the messages
 * echoed gives CPU µs per message. Rounds alternate the servers; the table
 * shows medians, and the ratio columns are medians of per-round ratios.
 *
 * Servers: `Deno.upgradeWebSocket` and mgnet `upgradeWebSocket`
 * (bench/servers/ws_echo_pair.ts, the same handler on both), Mongoose-C
 * (bench/servers/mongoose_ws_echo.c, built from the same fetched Mongoose
 * sources as mgnet) and mgnet's event API (examples/ws_echo.ts).
 */

import {
  buildMongooseC,
  clockTicks,
  cpuTicks,
  freePort,
  median,
  numberFlags,
  pairedMedian,
  run,
  startServer,
} from "./_measure.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const BUILD = `${ROOT}bench/.build`;
const DENO = Deno.execPath();

function parseArgs() {
  return numberFlags({ duration: 10, rounds: 3, connections: 100 });
}

const SCENARIOS = [
  { name: "64 B", size: 64, inflight: 8 },
  { name: "16 KiB", size: 16 * 1024, inflight: 4 },
];

const BASELINE = "Deno.upgradeWebSocket";
const SERVERS: Record<string, { cmd: () => string[]; env?: Record<string, string> }> = {
  [BASELINE]: {
    cmd: () => [DENO, "run", "-A", `${ROOT}bench/servers/ws_echo_pair.ts`],
    env: { SERVER: "deno" },
  },
  "Mongoose-C": { cmd: () => [`${BUILD}/mongoose_ws_echo`] },
  "mgnet events": { cmd: () => [DENO, "run", "-A", `${ROOT}examples/ws_echo.ts`] },
  "mgnet upgradeWebSocket": {
    cmd: () => [DENO, "run", "-A", `${ROOT}bench/servers/ws_echo_pair.ts`],
    env: { SERVER: "mgnet" },
  },
};

async function load(port: number, conns: number, inflight: number, size: number, seconds: number) {
  const out = await run([
    "taskset",
    "-c",
    "1",
    `${BUILD}/ws_load`,
    "127.0.0.1",
    String(port),
    "/",
    String(conns),
    String(inflight),
    String(size),
    String(seconds),
  ]);
  const m = /messages (\d+) seconds ([\d.]+) errors (\d+)/.exec(out);
  if (!m) throw new Error(`cannot read ws_load output: ${out}`);
  return { messages: Number(m[1]), seconds: Number(m[2]), errors: Number(m[3]) };
}

interface Row {
  scenario: string;
  server: string;
  round: number;
  rate: number;
  cpuUs: number;
  errors: number;
}

const fmt = (n: number, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : "–");

if (import.meta.main) {
  const a = parseArgs();
  await Deno.mkdir(BUILD, { recursive: true });
  await run(["cc", "-O2", "-o", `${BUILD}/ws_load`, `${ROOT}bench/servers/ws_load.c`]);
  await buildMongooseC("mongoose_ws_echo", `${BUILD}/mongoose_ws_echo`);
  const CLK_TCK = await clockTicks();
  const rows: Row[] = [];
  console.error(
    `WebSocket echo, ${a.connections} connections; ${a.rounds} round(s) of ${a.duration} s per scenario`,
  );
  for (let round = 0; round < a.rounds; round++) {
    for (const sc of SCENARIOS) {
      for (const [server, spec] of Object.entries(SERVERS)) {
        const port = freePort();
        const child = await startServer(spec.cmd(), {
          ...spec.env,
          PORT: String(port),
          HOSTNAME: "127.0.0.1",
        });
        try {
          await load(port, a.connections, sc.inflight, sc.size, 2); // warm-up (JIT, buffers)
          const before = cpuTicks(child.pid);
          const r = await load(port, a.connections, sc.inflight, sc.size, a.duration);
          const cpu = (cpuTicks(child.pid) - before) / CLK_TCK;
          const row = {
            scenario: sc.name,
            server,
            round,
            rate: r.messages / r.seconds,
            cpuUs: (cpu * 1e6) / r.messages,
            errors: r.errors,
          };
          rows.push(row);
          console.error(
            `round ${round + 1}: ${sc.name}: ${server}: ${fmt(row.rate, 0)} msg/s, ${
              fmt(row.cpuUs, 3)
            } µs/msg, errors ${r.errors}`,
          );
        } finally {
          child.kill("SIGTERM");
          await child.status;
        }
      }
    }
  }
  const lines = [
    `| scenario | server | msg/s | server CPU µs/msg | CPU × Deno | CPU × Mongoose-C | msg/s × Deno | errors |`,
    "|---|---|---:|---:|---:|---:|---:|---:|",
  ];
  for (const sc of SCENARIOS) {
    const scenario = `${sc.name} × ${sc.inflight} in flight, ${a.connections} conns`;
    for (const server of Object.keys(SERVERS)) {
      const scRows = rows.filter((r) => r.scenario === sc.name);
      const mine = scRows.filter((r) => r.server === server);
      const ratio = (base: string, f: (r: Row) => number) =>
        pairedMedian(scRows, mine, base, (r, o) => f(r) / f(o));
      lines.push(
        `| ${scenario} | ${server} | ${fmt(median(mine.map((r) => r.rate)), 0)} | ${
          fmt(median(mine.map((r) => r.cpuUs)), 3)
        } | ${fmt(ratio(BASELINE, (r) => r.cpuUs))} | ${fmt(ratio("Mongoose-C", (r) => r.cpuUs))} | ${
          fmt(ratio(BASELINE, (r) => r.rate))
        } | ${mine.reduce((s, r) => s + r.errors, 0)} |`,
      );
    }
  }
  console.log(lines.join("\n"));
}
