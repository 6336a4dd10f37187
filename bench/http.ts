/**
 * HTTP benchmark: mgnet against Deno.serve and plain-C Mongoose, in one run.
 *
 *   deno task bench:http [--duration=10] [--rounds=3] [--scenarios=a,b] [--servers=a,b] [--out=docs/bench]
 *
 * Every server is pinned to core 0 and the load tool (oha if installed, else
 * wrk; wrk always for pipelining, which oha lacks) to core 1. For each
 * scenario and server: 2 s of warm-up, then `--duration` seconds measured.
 * Server CPU time (user + system, all threads, from /proc/PID/stat) divided
 * by the requests answered gives CPU µs per request, the figure that ranks
 * fast servers when one client thread cannot saturate them. The user-space
 * part is shown beside it: where the kernel's share dominates (keep-alive,
 * ~7 µs of system time per request for every engine), it is what an
 * engine's own code decides.
 *
 * Scenarios: keepalive100, keepalive1000 (plain keep-alive GETs), pipeline16
 * (16 requests per write), async10 (the handler awaits a 0 ms timer before
 * replying; 10 connections, latency percentiles reported), echo1k (a 1 KiB
 * JSON POST echoed back, 100 connections), static64k (a 64 KiB file from a
 * static directory handler, 100 connections; Deno.serve runs a std-free
 * stat + read handler, Mongoose-C `mg_http_serve_dir`, mgnet `serveDir`),
 * timer (a fetch-style handler awaiting a 0 ms timer, 50 connections, on
 * Deno.serve and mgnet's serve()), proxy-fetch and proxy-mgnet (the handler
 * awaits a GET of an upstream plain-C Mongoose hello, pinned to core 1 with
 * the load tool, and answers with its body; 50 connections. proxy-fetch: the
 * global fetch on both servers; proxy-mgnet: mgnet's fetch on mgnet's
 * serve(), against Deno.serve with the global fetch, its drop-in
 * counterpart, and with mgnet's fetch on a shared manager).
 *
 * Prints a markdown table with ratios to Deno.serve and to plain-C Mongoose;
 * with --rounds=N every figure is the median over N rounds, and ratios are
 * medians of per-round ratios. Writes the same table with the run's date,
 * machine and versions to `<out>/http.md` and a bar chart (mgnet, Deno.serve,
 * Mongoose-C per scenario: CPU µs/request and req/s) to `<out>/http.svg`
 * (`--out=` with nothing after it writes no files).
 *
 * "mgnet metrics" is mgnet with metrics on (`new Manager({ metrics: true })`)
 * and scraped once a second; its "CPU × baseline" column (baseline "mgnet")
 * is the cost of metrics, summarised per scenario as the median per-round
 * ratio with its range.
 */

import {
  buildMongooseC,
  clockTicks,
  cpuTimes,
  freePort,
  median,
  pairedMedian,
  run,
  startServer,
} from "./_measure.ts";
import { CHART_SERVERS, type ChartRow, renderChart, renderReport, type RunInfo } from "./_report.ts";
import { mongooseVersion } from "../src/core/ffi.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const BUILD = `${ROOT}bench/.build`;
const DENO = Deno.execPath();

interface Args {
  duration: number;
  rounds: number;
  scenarios: string[];
  servers: string[];
  /** Directory for http.md and http.svg ("" for none). */
  out: string;
}

function parseArgs(): Args {
  const a: Record<string, string> = {};
  for (const arg of Deno.args) {
    const m = /^--([a-z]+)=(.*)$/.exec(arg);
    if (!m) throw new Error(`unknown argument ${arg}`);
    a[m[1]] = m[2];
  }
  return {
    duration: Number(a.duration ?? 10),
    rounds: Number(a.rounds ?? 3),
    scenarios: (a.scenarios ?? Object.keys(SCENARIOS).join(",")).split(","),
    servers: a.servers?.split(",") ?? Object.keys(SERVERS).filter((k) => !SERVERS[k].study),
    out: a.out ?? `${ROOT}docs/bench`,
  };
}

/** What the servers answer: see bench/servers/*. */
type Mode = "hello" | "async" | "echo" | "static" | "timer" | "proxy-fetch" | "proxy-mgnet";

interface Scenario {
  name: string;
  connections: number;
  mode: Mode;
  /** Request path (default `/`). */
  path?: string;
  /** A wrk Lua script (oha is not used for such scenarios). */
  lua?: string;
}

const STATIC_DIR = `${BUILD}/static`;
const ECHO_BODY = JSON.stringify({ data: "x".repeat(1024 - 12) });

const SCENARIOS: Record<string, Scenario> = {
  keepalive100: { name: "keep-alive, 100 conns", connections: 100, mode: "hello" },
  keepalive1000: { name: "keep-alive, 1000 conns", connections: 1000, mode: "hello" },
  pipeline16: {
    name: "pipelined ×16, 100 conns",
    connections: 100,
    mode: "hello",
    lua:
      `init = function(args)\n  req = string.rep(wrk.format(), 16)\nend\nrequest = function()\n  return req\nend\n`,
  },
  async10: { name: "async handler (0 ms timer), 10 conns", connections: 10, mode: "async" },
  echo1k: {
    name: "JSON echo 1 KiB POST, 100 conns",
    connections: 100,
    mode: "echo",
    lua: `wrk.method = "POST"\nwrk.body = '${ECHO_BODY}'\nwrk.headers["Content-Type"] = "application/json"\n`,
  },
  timer: { name: "timer: handler awaits a 0 ms timer, 50 conns", connections: 50, mode: "timer" },
  "proxy-fetch": {
    name: "proxy: handler awaits the global fetch, 50 conns",
    connections: 50,
    mode: "proxy-fetch",
  },
  "proxy-mgnet": {
    name: "proxy: handler awaits mgnet's fetch, 50 conns",
    connections: 50,
    mode: "proxy-mgnet",
  },
  static64k: {
    name: "static file 64 KiB, 100 conns",
    connections: 100,
    mode: "static",
    path: "/static/file64k.bin",
  },
};

const HELLO_APP = `${ROOT}bench/servers/fetch_app.ts`;
const MGNET_APP = `${ROOT}bench/servers/mgnet_app.ts`;
const MGNET_METRICS_HELLO = `${ROOT}bench/servers/mgnet_metrics_hello.ts`;

interface ServerDef {
  /** The command for a mode, or undefined if this server skips it. */
  cmd: (mode: Mode) => string[] | undefined;
  env?: Record<string, string>;
  /** More environment for a mode (it may replace MODE). */
  modeEnv?: (mode: Mode) => Record<string, string>;
  /** The server this one is compared with in the "× baseline" columns. */
  baseline?: string;
  /** Run only when named in `--servers` (a variant kept for a study). */
  study?: boolean;
}

/** Modes only the fetch-style servers (Deno.serve, mgnet serve()) run. */
const FETCH_ONLY = new Set<Mode>(["timer", "proxy-fetch", "proxy-mgnet"]);

/** The environment of fetch_app.ts for a mode: proxies name their client. */
function appEnv(mode: Mode, mgnetClient: boolean): Record<string, string> {
  if (mode === "proxy-fetch") return { MODE: "proxy", CLIENT: "global" };
  if (mode === "proxy-mgnet") return { MODE: "proxy", CLIENT: mgnetClient ? "mgnet" : "global" };
  return {};
}

const SERVERS: Record<string, ServerDef> = {
  "Deno.serve": {
    cmd: () => [DENO, "run", "-A", HELLO_APP],
    env: { RUNTIME: "deno" },
    modeEnv: (m) => appEnv(m, false),
  },
  "Deno.serve + mgnet fetch": {
    cmd: (m) => (m === "proxy-mgnet" ? [DENO, "run", "-A", HELLO_APP] : undefined),
    env: { RUNTIME: "deno" },
    modeEnv: (m) => appEnv(m, true),
    baseline: "Deno.serve",
  },
  "Mongoose-C": {
    cmd: (m) => (m === "async" || FETCH_ONLY.has(m) ? undefined : [`${BUILD}/mongoose_hello`]),
  },
  "mgnet": {
    cmd: (m) =>
      FETCH_ONLY.has(m)
        ? undefined
        : [DENO, "run", "-A", m === "hello" ? `${ROOT}examples/hello.ts` : MGNET_APP],
    baseline: "Deno.serve",
  },
  "mgnet metrics": {
    cmd: (m) => [DENO, "run", "-A", m === "hello" ? MGNET_METRICS_HELLO : MGNET_APP],
    env: { METRICS: "1" },
    baseline: "mgnet",
  },
  "mgnet serve()": {
    cmd: (m) => (m === "async" ? undefined : [DENO, "run", "-A", HELLO_APP]),
    env: { RUNTIME: "mgnet" },
    modeEnv: (m) => appEnv(m, true),
    baseline: "Deno.serve",
  },
  // The other wake paths of an idle loop (src/core/idle_wait.ts; the
  // default is "nonblocking"), kept to compare them: docs/architecture.md §29.
  "mgnet serve() callback": {
    cmd: (m) => (m === "async" ? undefined : [DENO, "run", "-A", HELLO_APP]),
    env: { RUNTIME: "mgnet", MGNET_WAKE: "callback" },
    study: true,
    modeEnv: (m) => appEnv(m, true),
    baseline: "Deno.serve",
  },
  "mgnet serve() doorbell": {
    cmd: (m) => (m === "async" ? undefined : [DENO, "run", "-A", HELLO_APP]),
    env: { RUNTIME: "mgnet", MGNET_WAKE: "doorbell" },
    study: true,
    modeEnv: (m) => appEnv(m, true),
    baseline: "Deno.serve",
  },
  "mgnet cached": {
    cmd: (
      m,
    ) => (m === "hello" ? [DENO, "run", "-A", `${ROOT}bench/servers/mgnet_cached_hello.ts`] : undefined),
    baseline: "Mongoose-C",
  },
  "Hono/Deno.serve": {
    cmd: (m) => (m === "hello" ? [DENO, "run", "-A", `${ROOT}bench/servers/hono_hello.ts`] : undefined),
    env: { RUNTIME: "deno" },
  },
  "Hono/mgnet": {
    cmd: (m) => (m === "hello" ? [DENO, "run", "-A", `${ROOT}bench/servers/hono_hello.ts`] : undefined),
    env: { RUNTIME: "mgnet" },
    baseline: "Hono/Deno.serve",
  },
};

interface Result {
  requests: number;
  seconds: number;
  errors: number;
  p50?: number;
  p99?: number;
}

async function have(tool: string): Promise<boolean> {
  try {
    await new Deno.Command(tool, { args: ["--version"], stdout: "null", stderr: "null" }).output();
    return true;
  } catch {
    return false; // not installed
  }
}

const CLK_TCK = await clockTicks();

function parseDuration(s: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(s);
  if (!m) return NaN;
  return Number(m[1]) * { us: 1e-3, ms: 1, s: 1e3, m: 6e4 }[m[2] as "us" | "ms" | "s" | "m"];
}

async function wrk(url: string, sc: Scenario, seconds: number): Promise<Result> {
  const args = [
    "-c",
    "1",
    "wrk",
    "-t1",
    `-c${sc.connections}`,
    `-d${seconds}s`,
    "--latency",
    "--timeout",
    "10s",
  ];
  let script: string | undefined;
  if (sc.lua) {
    script = await Deno.makeTempFile({ suffix: ".lua" });
    await Deno.writeTextFile(script, sc.lua);
    args.push("-s", script);
  }
  args.push(url);
  try {
    const out = await run(["taskset", ...args]);
    const m = /(\d+) requests in ([\d.]+)(\w+)/.exec(out);
    if (!m) throw new Error(`cannot read wrk output:\n${out}`);
    const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
    const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
    const pct = (p: string) => {
      const mm = new RegExp(`^\\s+${p}%\\s+(\\S+)`, "m").exec(out);
      return mm ? parseDuration(mm[1]) : undefined;
    };
    return {
      requests: Number(m[1]),
      seconds: parseDuration(`${m[2]}${m[3]}`) / 1e3,
      errors: (errs ? errs.slice(1).reduce((a, b) => a + Number(b), 0) : 0) +
        (non2xx ? Number(non2xx[1]) : 0),
      p50: pct("50"),
      p99: pct("99"),
    };
  } finally {
    if (script) await Deno.remove(script);
  }
}

async function oha(url: string, sc: Scenario, seconds: number): Promise<Result> {
  const out = await run([
    "taskset",
    "-c",
    "1",
    "oha",
    "-z",
    `${seconds}s`,
    "-c",
    String(sc.connections),
    "--no-tui",
    "--json",
    url,
  ]);
  const j = JSON.parse(out.slice(out.indexOf("{")));
  const dist = j.statusCodeDistribution ?? {};
  const ok = Number(dist["200"] ?? 0);
  const total = Object.values(dist).reduce((a: number, b) => a + Number(b), 0);
  return {
    requests: ok,
    seconds: j.summary.total,
    errors: total - ok + Object.values(j.errorDistribution ?? {}).reduce((a: number, b) => a + Number(b), 0),
    p50: j.latencyPercentiles?.p50 * 1e3,
    p99: j.latencyPercentiles?.p99 * 1e3,
  };
}

interface Row {
  scenario: string;
  server: string;
  round: number;
  rps: number;
  cpuUs: number;
  /** The user-space part of cpuUs. */
  userUs: number;
  errors: number;
  p50?: number;
  p99?: number;
}

/**
 * One markdown table. Each value is the median over rounds; ratios are the
 * median of the per-round ratios (each round runs every server back to back,
 * so the ratio cancels the VM's slow drift in speed).
 */
function table(rows: Row[], servers: string[]): string {
  const lines = [
    "| scenario | server | req/s | server CPU µs/req | user-space µs/req | CPU × Deno.serve | user-space × Deno.serve | CPU × Mongoose-C | baseline | CPU × baseline | req/s × baseline | p50 ms | p99 ms | errors |",
    "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
  ];
  const scenarios = [...new Set(rows.map((r) => r.scenario))];
  for (const sc of scenarios) {
    const scRows = rows.filter((r) => r.scenario === sc);
    for (const server of servers) {
      const mine = scRows.filter((r) => r.server === server);
      if (mine.length === 0) continue;
      const ratio = (other: string, f: (r: Row) => number) =>
        pairedMedian(scRows, mine, other, (r, o) => f(r) / f(o));
      const base = SERVERS[server]?.baseline;
      const vsBase = (f: (r: Row) => number) => (base ? fmt(ratio(base, f)) : "–");
      lines.push(
        [
          sc,
          server,
          fmt(median(mine.map((r) => r.rps)), 0),
          fmt(median(mine.map((r) => r.cpuUs))),
          fmt(median(mine.map((r) => r.userUs))),
          fmt(ratio("Deno.serve", (r) => r.cpuUs)),
          fmt(ratio("Deno.serve", (r) => r.userUs)),
          fmt(ratio("Mongoose-C", (r) => r.cpuUs)),
          base ?? "–",
          vsBase((r) => r.cpuUs),
          vsBase((r) => r.rps),
          fmt(median(mine.map((r) => r.p50 ?? NaN))),
          fmt(median(mine.map((r) => r.p99 ?? NaN))),
          String(mine.reduce((a, r) => a + r.errors, 0)),
        ].join(" | ").replace(/^/, "| ").replace(/$/, " |"),
      );
    }
  }
  return lines.join("\n");
}

async function measure(
  serverName: string,
  sc: Scenario,
  args: Args,
  useOha: boolean,
  round: number,
): Promise<Row | undefined> {
  const def = SERVERS[serverName];
  if (!def) throw new Error(`unknown server ${serverName}; known: ${Object.keys(SERVERS).join(", ")}`);
  const cmd = def.cmd(sc.mode);
  if (!cmd) return undefined;
  const port = freePort();
  const child = await startServer(cmd, {
    ...SERVERS[serverName].env,
    MODE: sc.mode,
    STATIC_ROOT: STATIC_DIR,
    UPSTREAM: upstreamUrl,
    ...def.modeEnv?.(sc.mode),
    PORT: String(port),
  });
  const url = `http://127.0.0.1:${port}${sc.path ?? "/"}`;
  const load = useOha && !sc.lua ? oha : wrk;
  try {
    await load(url, sc, 2); // warm-up (JIT, buffers)
    const before = cpuTimes(child.pid);
    const r = await load(url, sc, args.duration);
    const after = cpuTimes(child.pid);
    const user = (after.user - before.user) / CLK_TCK;
    const cpu = user + (after.system - before.system) / CLK_TCK;
    return {
      scenario: sc.name,
      server: serverName,
      round,
      rps: r.requests / r.seconds,
      cpuUs: (cpu * 1e6) / r.requests,
      userUs: (user * 1e6) / r.requests,
      errors: r.errors,
      p50: r.p50,
      p99: r.p99,
    };
  } finally {
    try {
      child.kill("SIGTERM");
    } catch {
      // it already exited (a crash shows in its stderr and in the figures)
    }
    await child.status;
  }
}

function fmt(n: number | undefined, digits = 2): string {
  return n === undefined || !Number.isFinite(n) ? "–" : n.toFixed(digits);
}

/** The proxies' upstream: a plain-C Mongoose hello on the load tool's core, started once. */
let upstreamUrl = "";

if (import.meta.main) {
  const args = parseArgs();
  const proxies = args.scenarios.some((s) => SCENARIOS[s]?.mode.startsWith("proxy"));
  if (!(await have("wrk"))) {
    console.error("bench:http needs wrk (apt-get install wrk) or oha (cargo install oha --locked)");
    Deno.exit(1);
  }
  if (args.servers.includes("Mongoose-C") || proxies) {
    await buildMongooseC("mongoose_hello", `${BUILD}/mongoose_hello`);
  }
  let upstream: Deno.ChildProcess | undefined;
  if (proxies) {
    const port = freePort();
    upstream = await startServer([`${BUILD}/mongoose_hello`], { PORT: String(port) }, 1);
    upstreamUrl = `http://127.0.0.1:${port}/`;
  }
  await Deno.mkdir(STATIC_DIR, { recursive: true });
  const file64k = new Uint8Array(64 * 1024);
  for (let i = 0; i < file64k.length; i++) file64k[i] = (i * 131) & 0xff;
  await Deno.writeFile(`${STATIC_DIR}/file64k.bin`, file64k);
  const useOha = await have("oha");
  console.error(
    `load tool: ${
      useOha ? "oha" : "wrk"
    } (pipelining: wrk); ${args.rounds} round(s) of ${args.duration} s per run`,
  );
  const rows: Row[] = [];
  for (let round = 0; round < args.rounds; round++) {
    for (const key of args.scenarios) {
      const sc = SCENARIOS[key];
      if (!sc) throw new Error(`unknown scenario ${key}; known: ${Object.keys(SCENARIOS).join(", ")}`);
      // Odd rounds run the servers in reverse order, so neighbours (e.g.
      // "mgnet" and "mgnet metrics") meet the VM's drift from both sides.
      for (const server of round % 2 ? [...args.servers].reverse() : args.servers) {
        const row = await measure(server, sc, args, useOha, round);
        if (!row) continue;
        rows.push(row);
        console.error(
          `round ${round + 1}: ${sc.name} | ${server}: ${fmt(row.rps, 0)} req/s, ${fmt(row.cpuUs)} µs/req, ` +
            `p99 ${fmt(row.p99)} ms, errors ${row.errors}`,
        );
      }
    }
  }
  if (upstream) {
    upstream.kill("SIGTERM");
    await upstream.status;
  }
  const md = table(rows, args.servers);
  console.log(md);
  const cost = metricsCost(rows);
  for (const line of cost) console.log(line);
  if (args.out !== "") await writeReport(args, rows, md, cost);
}

/** Per scenario: the median per-round CPU ratio of "mgnet metrics" to "mgnet", with its range. */
function metricsCost(rows: Row[]): string[] {
  const lines: string[] = [];
  for (const sc of [...new Set(rows.map((r) => r.scenario))]) {
    const ratios = rows.filter((r) => r.scenario === sc && r.server === "mgnet metrics").map((r) => {
      const base = rows.find((x) => x.scenario === sc && x.server === "mgnet" && x.round === r.round);
      return base ? r.cpuUs / base.cpuUs : NaN;
    }).filter(Number.isFinite);
    if (ratios.length === 0) continue;
    const pct = (x: number) => `${x >= 1 ? "+" : ""}${((x - 1) * 100).toFixed(1)}%`;
    lines.push(
      `- ${sc}: ${pct(median(ratios))} server CPU per request (median of ${ratios.length} rounds; ` +
        `range ${pct(Math.min(...ratios))} to ${pct(Math.max(...ratios))})`,
    );
  }
  return lines;
}

/** Date, CPU model, core count, Deno and Mongoose versions. */
function runInfo(args: Args): RunInfo {
  let cpu = "unknown CPU";
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(Deno.readTextFileSync("/proc/cpuinfo"))?.[1].trim() ?? cpu;
  } catch {
    // not Linux: keep "unknown CPU"
  }
  return {
    date: new Date().toISOString().slice(0, 10),
    machine: `${cpu}, ${navigator.hardwareConcurrency} cores`,
    deno: Deno.version.deno,
    mongoose: mongooseVersion(),
    rounds: args.rounds,
    duration: args.duration,
  };
}

async function writeReport(args: Args, rows: Row[], md: string, cost: string[]): Promise<void> {
  const info = runInfo(args);
  const chart: ChartRow[] = [];
  for (const sc of [...new Set(rows.map((r) => r.scenario))]) {
    for (const { name } of CHART_SERVERS) {
      const mine = rows.filter((r) => r.scenario === sc && r.server === name);
      if (mine.length === 0) continue;
      chart.push({
        scenario: sc,
        server: name,
        cpuUs: median(mine.map((r) => r.cpuUs)),
        rps: median(mine.map((r) => r.rps)),
      });
    }
  }
  await Deno.mkdir(args.out, { recursive: true });
  await Deno.writeTextFile(`${args.out}/http.svg`, renderChart(chart, info));
  await Deno.writeTextFile(`${args.out}/http.md`, renderReport(md, info, "http.svg", cost));
  console.error(`wrote ${args.out}/http.md and ${args.out}/http.svg`);
}
