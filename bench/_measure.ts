/**
 * What every server bench measures the same way: a process's CPU time from
 * /proc, and medians over interleaved rounds.
 */

/** utime + stime of a process, in clock ticks (`getconf CLK_TCK` per second). */
export function cpuTicks(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

/** The median of the finite values, NaN when there are none. */
export function median(xs: number[]): number {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
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
