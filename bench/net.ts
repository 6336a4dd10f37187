/**
 * `deno task bench:net`: the TCP echo bench (bench/net_tcp.ts), then the UDP
 * echo bench (bench/net_udp.ts), each against its Deno baseline in the same
 * run. `--duration=N` and `--rounds=N` go to both; other flags to the one
 * that knows them (`--connections`/`--inflight` TCP, `--sockets`/`--window`
 * UDP, `--size` both).
 */
const shared = Deno.args.filter((a) => /^--(duration|rounds|size)=/.test(a));
const only = (names: string[]) => Deno.args.filter((a) => names.some((n) => a.startsWith(`--${n}=`)));
let ok = true;
for (
  const [script, args] of [
    ["net_tcp.ts", [...shared, ...only(["connections", "inflight"])]],
    ["net_udp.ts", [...shared, ...only(["sockets", "window"])]],
  ] as const
) {
  console.log(`\n## ${script}\n`);
  const status = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL(script, import.meta.url).pathname, ...args],
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  ok &&= status.success;
}
Deno.exit(ok ? 0 : 1);
