/**
 * UDP echo benchmark: mgnet against a `Deno.listenDatagram` echo server, in
 * one run.
 *
 *   deno task bench:net:udp [--duration=5] [--rounds=3] [--sockets=100] [--window=2] [--size=64]
 *                           [--servers=mgnet,mgnet-reply,deno,deno-noawait]
 *
 * Every server is pinned to core 0, the load generator to core 1. The load
 * generator is a small C program (bench/servers/udp_load.c, built here with
 * gcc): a Deno client cannot keep a fast echo server busy, and its own cost
 * must stay off the server's core. It opens `sockets` client sockets, each
 * keeping `window` datagrams of `size` bytes in flight (closed loop), so the
 * server sees many senders and a steady queue, as a busy DNS or game server
 * would (one socket with everything in flight would hide per-sender address
 * handling). 100 × 2 = 200 in flight fits the default receive buffer (~250
 * datagrams of 64 B at ~832 B of kernel memory each): with 100 × 8 Deno's
 * socket overflowed, dropped and stalled (~2,000 stalls in 3 s), which
 * measures the drops, not the echo. Both servers use the default buffer.
 *
 * Per server and round: 2 s of warm-up, then `duration` seconds measured.
 * Server CPU time (user + system, all threads, /proc/PID/stat) divided by
 * the echoes received in that window gives CPU µs per message. Rounds are
 * interleaved (every server once per round); figures are medians over
 * rounds, the ratio is the median of per-round ratios to `deno`.
 *
 * Servers: `mgnet` (`ev.socket.send(ev.bytes, ev.from)`), `mgnet-reply`
 * (`ev.reply(ev.bytes)`), `deno` (receive, await send), `deno-noawait`
 * (receive, send without awaiting it).
 */

import { cpuTicks, median, numberFlags, run } from "./_measure.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const BUILD = `${ROOT}bench/.build`;
const DENO = Deno.execPath();
const TICK_US = 1_000_000 / 100; // /proc/PID/stat counts 100 Hz ticks

const SERVERS: Record<string, string[]> = {
  mgnet: [DENO, "run", "--allow-all", `${ROOT}bench/servers/mgnet_udp_echo.ts`],
  "mgnet-reply": [DENO, "run", "--allow-all", `${ROOT}bench/servers/mgnet_udp_echo.ts`, "--reply"],
  deno: [DENO, "run", "--allow-all", "--unstable-net", `${ROOT}bench/servers/deno_udp_echo.ts`],
  "deno-noawait": [
    DENO,
    "run",
    "--allow-all",
    "--unstable-net",
    `${ROOT}bench/servers/deno_udp_echo.ts`,
    "--no-await",
  ],
};

function parseArgs() {
  const a = numberFlags({ duration: 5, rounds: 3, sockets: 100, window: 2, size: 64 });
  return { ...a, servers: (a.rest.servers ?? Object.keys(SERVERS).join(",")).split(",") };
}

function freeUdpPort(): number {
  const s = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (s.addr as Deno.NetAddr).port;
  s.close();
  return port;
}

/** Reads lines from a child's stdout. */
function lines(stream: ReadableStream<Uint8Array>): () => Promise<string> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  return async () => {
    for (;;) {
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        return line;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error(`stream ended (${JSON.stringify(buf)})`);
      buf += value;
    }
  };
}

interface Result {
  usPerMsg: number;
  msgsPerSec: number;
  lost: number;
}

async function measure(server: string, args: ReturnType<typeof parseArgs>): Promise<Result> {
  const port = freeUdpPort();
  const child = new Deno.Command("taskset", {
    args: ["-c", "0", ...SERVERS[server]],
    env: { PORT: String(port) },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const serverLine = lines(child.stdout);
    if ((await serverLine()) !== "ready") throw new Error(`${server} did not start`);
    const load = new Deno.Command("taskset", {
      args: [
        "-c",
        "1",
        `${BUILD}/udp_load`,
        "127.0.0.1",
        String(port),
        String(args.sockets),
        String(args.window),
        String(args.size),
        "2",
        String(args.duration),
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const next = lines(load.stdout);
    if ((await next()) !== "START") throw new Error("load generator did not start");
    const t0 = cpuTicks(child.pid);
    const m = /^COUNT (\d+) LOST (\d+)$/.exec(await next());
    const t1 = cpuTicks(child.pid);
    await load.status;
    if (!m) throw new Error("load generator output");
    const count = Number(m[1]);
    return { usPerMsg: ((t1 - t0) * TICK_US) / count, msgsPerSec: count / args.duration, lost: Number(m[2]) };
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
}

if (import.meta.main) {
  const args = parseArgs();
  await Deno.mkdir(BUILD, { recursive: true });
  await run(["gcc", "-O2", "-o", `${BUILD}/udp_load`, `${ROOT}bench/servers/udp_load.c`]);
  const results = new Map<string, Result[]>(args.servers.map((s) => [s, []]));
  for (let r = 0; r < args.rounds; r++) {
    // Interleaved: each round runs every server, in a rotated order.
    const order = args.servers.map((_, i) => args.servers[(i + r) % args.servers.length]);
    for (const s of order) {
      const res = await measure(s, args);
      results.get(s)!.push(res);
      console.error(
        `round ${r + 1} ${s}: ${res.usPerMsg.toFixed(2)} µs/msg, ${
          Math.round(res.msgsPerSec)
        } msg/s, ${res.lost} stalls`,
      );
    }
  }
  const base = results.get("deno");
  console.log(
    `\nUDP echo, ${args.size} B datagrams, ${args.sockets} sockets × ${args.window} in flight, ` +
      `${args.duration} s × ${args.rounds} rounds (medians; server on core 0, load on core 1)\n`,
  );
  console.log("| server | CPU µs / message | messages / s | × deno (CPU/msg) | stalls |");
  console.log("|---|---:|---:|---:|---:|");
  for (const [s, rs] of results) {
    const ratio = base ? median(rs.map((x, i) => x.usPerMsg / base[i].usPerMsg)).toFixed(2) : "–";
    console.log(
      `| ${s} | ${median(rs.map((x) => x.usPerMsg)).toFixed(2)} | ${
        Math.round(median(rs.map((x) => x.msgsPerSec))).toLocaleString("en")
      } | ${ratio} | ${median(rs.map((x) => x.lost))} |`,
    );
  }
}
