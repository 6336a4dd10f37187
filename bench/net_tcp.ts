/**
 * TCP benchmark: mgnet's echo server against an idiomatic `Deno.listen` echo
 * server, in one run.
 *
 *   deno task bench:net [--duration=10] [--rounds=3] [--connections=100] [--inflight=8] [--size=64]
 *
 * The load generator (`bench/servers/tcp_load.c`, compiled here with cc)
 * opens `connections` connections and keeps `inflight` messages of `size`
 * bytes in flight on each: every message echoed back whole is counted and
 * answered with a new one. Each server is pinned to core 0, the load
 * generator to core 1. Per round and server: 2 s of warm-up, then
 * `duration` seconds measured; server CPU time (user + system, all threads,
 * from /proc/PID/stat) divided by the messages echoed gives CPU µs per
 * message. Rounds alternate the servers; the table shows medians, and the
 * ratio column is the median of per-round ratios.
 *
 * Servers: `Deno.listen` (bench/servers/deno_tcp_echo.ts: `for await` over
 * the listener, a read/write loop per connection), the same with
 * `setNoDelay(true)` on each connection (mgnet's sockets, like Mongoose's,
 * have TCP_NODELAY; Deno.listen's keep Nagle's algorithm), and mgnet
 * (examples/tcp_echo.ts: `for await` over the manager, `send(ev.bytes)`).
 * Two native baselines run beside them: plain-C Mongoose
 * (bench/servers/mongoose_tcp_echo.c, built with epoll like mgnet's
 * library) and a framework-free epoll echo (bench/servers/epoll_tcp_echo.c:
 * one recv and one send per readable socket, the system calls every engine
 * makes), which shows what the kernel alone costs per message.
 * The ratio column is against `Deno.listen` as a user gets it.
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
const DENO = Deno.execPath();

type Args = ReturnType<typeof parseArgs>;

function parseArgs() {
  return numberFlags({ duration: 10, rounds: 3, connections: 100, inflight: 8, size: 64 });
}

const SERVERS: Record<string, string[]> = {
  "Deno.listen": [DENO, "run", "-A", `${ROOT}bench/servers/deno_tcp_echo.ts`],
  "Deno.listen, setNoDelay": [DENO, "run", "-A", `${ROOT}bench/servers/deno_tcp_echo.ts`, "nodelay"],
  "mgnet": [DENO, "run", "-A", `${ROOT}examples/tcp_echo.ts`],
  "Mongoose (C)": [`${BUILD}/mongoose_tcp_echo`],
  "epoll floor (C)": [`${BUILD}/epoll_tcp_echo`],
};

async function load(port: number, a: Args, seconds: number) {
  const out = await run([
    "taskset",
    "-c",
    "1",
    `${BUILD}/tcp_load`,
    "127.0.0.1",
    String(port),
    String(a.connections),
    String(a.inflight),
    String(a.size),
    String(seconds),
  ]);
  const m = /messages (\d+) seconds ([\d.]+) errors (\d+)/.exec(out);
  if (!m) throw new Error(`cannot read tcp_load output: ${out}`);
  return { messages: Number(m[1]), seconds: Number(m[2]), errors: Number(m[3]) };
}

interface Row {
  server: string;
  round: number;
  rate: number;
  cpuUs: number;
  /** The user-space part of cpuUs. */
  userUs: number;
  errors: number;
}

const fmt = (n: number, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : "–");

if (import.meta.main) {
  const a = parseArgs();
  await Deno.mkdir(BUILD, { recursive: true });
  await run(["cc", "-O2", "-o", `${BUILD}/tcp_load`, `${ROOT}bench/servers/tcp_load.c`]);
  await run(["cc", "-O2", "-o", `${BUILD}/epoll_tcp_echo`, `${ROOT}bench/servers/epoll_tcp_echo.c`]);
  await buildMongooseC("mongoose_tcp_echo", `${BUILD}/mongoose_tcp_echo`, ["-DMG_ENABLE_EPOLL=1"]);
  const CLK_TCK = await clockTicks();
  const rows: Row[] = [];
  console.error(
    `TCP echo, ${a.size} B messages, ${a.connections} connections × ${a.inflight} in flight; ` +
      `${a.rounds} round(s) of ${a.duration} s`,
  );
  for (let round = 0; round < a.rounds; round++) {
    for (const [server, cmd] of Object.entries(SERVERS)) {
      const port = freePort();
      const child = await startServer(cmd, { PORT: String(port), HOSTNAME: "127.0.0.1" });
      try {
        await load(port, a, 2); // warm-up (JIT, buffers)
        const before = cpuTimes(child.pid);
        const r = await load(port, a, a.duration);
        const after = cpuTimes(child.pid);
        const user = (after.user - before.user) / CLK_TCK;
        const cpu = user + (after.system - before.system) / CLK_TCK;
        const row = {
          server,
          round,
          rate: r.messages / r.seconds,
          cpuUs: (cpu * 1e6) / r.messages,
          userUs: (user * 1e6) / r.messages,
          errors: r.errors,
        };
        rows.push(row);
        console.error(
          `round ${round + 1}: ${server}: ${fmt(row.rate, 0)} msg/s, ${
            fmt(row.cpuUs, 3)
          } µs/msg, errors ${r.errors}`,
        );
      } finally {
        child.kill("SIGTERM");
        await child.status;
      }
    }
  }
  const lines = [
    `| scenario | server | msg/s | server CPU µs/msg | user-space µs/msg | CPU × Deno.listen | msg/s × Deno.listen | errors |`,
    "|---|---|---:|---:|---:|---:|---:|---:|",
  ];
  const scenario = `TCP echo ${a.size} B, ${a.connections} conns × ${a.inflight} in flight`;
  for (const server of Object.keys(SERVERS)) {
    const mine = rows.filter((r) => r.server === server);
    const ratio = (f: (r: Row) => number) => pairedMedian(rows, mine, "Deno.listen", (r, o) => f(r) / f(o));
    lines.push(
      `| ${scenario} | ${server} | ${fmt(median(mine.map((r) => r.rate)), 0)} | ${
        fmt(median(mine.map((r) => r.cpuUs)), 3)
      } | ${fmt(median(mine.map((r) => r.userUs)), 3)} | ${fmt(ratio((r) => r.cpuUs))} | ${
        fmt(ratio((r) => r.rate))
      } | ${mine.reduce((s, r) => s + r.errors, 0)} |`,
    );
  }
  console.log(lines.join("\n"));
}
