/**
 * What every server bench measures the same way: a process's CPU time from
 * /proc, and medians over interleaved rounds.
 */

/** utime + stime of a process, in clock ticks (`getconf CLK_TCK` per second). */
export function cpuTicks(pid: number): number {
  const { user, system } = cpuTimes(pid);
  return user + system;
}

/**
 * A process's user-space and kernel CPU time (utime, stime), in clock
 * ticks: where the kernel dominates a load, the user-space share is what an
 * engine's own code decides.
 */
export function cpuTimes(pid: number): { user: number; system: number } {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { user: Number(fields[11]), system: Number(fields[12]) };
}

/** The median of the finite values, NaN when there are none. */
export function median(xs: number[]): number {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
}

/**
 * The median over rounds of `g(row, base row of the same round)` for the
 * rows `mine` (one server's) against server `base` among `rows` (one
 * scenario's). Each round runs every server back to back, so a per-round
 * pair cancels the VM's slow drift in speed.
 */
export function pairedMedian<R extends { server: string; round: number }>(
  rows: R[],
  mine: R[],
  base: string,
  g: (r: R, b: R) => number,
): number {
  return median(mine.map((r) => {
    const b = rows.find((x) => x.server === base && x.round === r.round);
    return b ? g(r, b) : NaN;
  }));
}

/**
 * The `--name=value` flags of this bench, each given one a number with its
 * default from `defaults`; other strings stay in `rest`. An argument of
 * another shape is an error.
 */
export function numberFlags<T extends Record<string, number>>(
  defaults: T,
): T & { rest: Record<string, string> } {
  const rest: Record<string, string> = {};
  for (const arg of Deno.args) {
    const m = /^--([a-z]+)=(.*)$/.exec(arg);
    if (!m) throw new Error(`unknown argument ${arg}`);
    rest[m[1]] = m[2];
  }
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(defaults)) out[k] = rest[k] === undefined ? v : Number(rest[k]);
  return { ...(out as T), rest };
}

/** Runs a command to its end; its stdout and stderr, or an error with them if it failed. */
export async function run(cmd: string[], opts: Deno.CommandOptions = {}): Promise<string> {
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdout: "piped",
    stderr: "piped",
    ...opts,
  })
    .output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd.join(" ")} failed:\n${text}`);
  return text;
}

/** Clock ticks per second of `cpuTicks` (`getconf CLK_TCK`). */
export async function clockTicks(): Promise<number> {
  return Number((await run(["getconf", "CLK_TCK"])).trim()) || 100;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * Starts a server pinned to `core` with `env` (its PORT among them) and waits
 * until it prints `Listening on` (30 s at most); its stdout is drained from
 * then on so it never blocks on a full pipe.
 */
export async function startServer(
  cmd: string[],
  env: Record<string, string>,
  core = 0,
): Promise<Deno.ChildProcess> {
  const child = new Deno.Command("taskset", {
    args: ["-c", String(core), ...cmd],
    env,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  const deadline = Date.now() + 30_000;
  while (!seen.includes("Listening on")) {
    const { value, done } = await reader.read();
    if (done || Date.now() > deadline) throw new Error(`${cmd.join(" ")} did not start: ${seen}`);
    seen += value;
  }
  (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })();
  return child;
}

/**
 * Builds a plain-C Mongoose server (`bench/servers/<name>.c`) into `out`
 * with gcc -O2, logging off, and `flags`; Mongoose from MGNET_MONGOOSE_DIR
 * or vendor/mongoose.
 */
export async function buildMongooseC(name: string, out: string, flags: string[] = []): Promise<void> {
  const root = new URL("..", import.meta.url).pathname;
  const dir = Deno.env.get("MGNET_MONGOOSE_DIR") ?? `${root}vendor/mongoose`;
  await Deno.mkdir(out.slice(0, out.lastIndexOf("/")), { recursive: true });
  await run([
    "gcc",
    "-O2",
    "-DMG_ENABLE_LOG=0",
    ...flags,
    `-I${dir}`,
    "-o",
    out,
    `${root}bench/servers/${name}.c`,
    `${dir}/mongoose.c`,
  ]);
}
