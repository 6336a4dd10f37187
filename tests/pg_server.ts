/**
 * A throwaway PostgreSQL server from Debian's packages, for
 * tests/postgres_test.ts and bench/pg.ts: initdb in a temp dir, started on a
 * free port, stopped and removed by `stop()`.
 */

/** The bin dir of the newest installed PostgreSQL, or undefined. */
export function pgBin(): string | undefined {
  try {
    const versions = [...Deno.readDirSync("/usr/lib/postgresql")].map((e) => e.name).filter((n) =>
      /^\d+$/.test(n)
    );
    versions.sort((a, b) => Number(b) - Number(a));
    for (const v of versions) {
      const bin = `/usr/lib/postgresql/${v}/bin`;
      try {
        Deno.statSync(`${bin}/postgres`);
        return bin;
      } catch { /* next */ }
    }
  } catch { /* not installed */ }
  return undefined;
}

const CLEAN_ENV = { LD_PRELOAD: "", ASAN_OPTIONS: "" };

/** A running PostgreSQL: its port, and how to stop it. */
export interface PgServer {
  port: number;
  stop(): Promise<void>;
}

/** Options of {@linkcode startPostgres}. */
export interface PgOptions {
  /** Pins the server (`taskset -c`). */
  cpus?: string;
  /** Turns SSL on with this PEM certificate and key (`ssl=on`). */
  ssl?: { cert: string; key: string };
}

/**
 * initdb in a temp dir and start postgres on a free port (as the `postgres`
 * user when running as root: postgres refuses to run as root), trust auth.
 */
export async function startPostgres(bin: string, options: PgOptions = {}): Promise<PgServer> {
  const { cpus, ssl } = options;
  const dir = await Deno.makeTempDir({ prefix: "mgnet-pg-" });
  const root = Deno.uid() === 0;
  /** The postgres user's uid or gid (`id -u` / `id -g`). */
  const idOf = (flag: string) =>
    Number(new TextDecoder().decode(
      new Deno.Command("id", { args: [flag, "postgres"], stdout: "piped" }).outputSync().stdout,
    ));
  const owner = root ? { uid: idOf("-u"), gid: idOf("-g") } : undefined;
  /** Gives `path` to the postgres user (when we are root). */
  const own = (path: string) => {
    if (owner) Deno.chownSync(path, owner.uid, owner.gid);
  };
  own(dir);
  /** `cmd args` as the postgres user if we are root, pinned to `pin` if given. */
  const as = (cmd: string, args: string[], pin?: string) => {
    let argv = root ? ["runuser", "-u", "postgres", "--", cmd, ...args] : [cmd, ...args];
    if (pin) argv = ["taskset", "-c", pin, ...argv];
    // Not under the test suite's AddressSanitizer preload (deno task test:asan): that is for mgnet's library.
    return new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdout: "piped",
      stderr: "piped",
      env: CLEAN_ENV,
    });
  };
  const data = `${dir}/data`;
  const init = await as(`${bin}/initdb`, ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    .output();
  if (!init.success) throw new Error(`initdb failed: ${new TextDecoder().decode(init.stderr)}`);
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const serverArgs = [
    "-D",
    data,
    "-p",
    String(port),
    "-k",
    dir,
    "-c",
    "listen_addresses=127.0.0.1",
    "-c",
    "fsync=off",
  ];
  if (ssl) {
    // postgres wants the key readable by its own user only.
    for (const [name, pem] of [["server.crt", ssl.cert], ["server.key", ssl.key]]) {
      Deno.writeTextFileSync(`${dir}/${name}`, pem, { mode: 0o600 });
      Deno.chmodSync(`${dir}/${name}`, 0o600);
      own(`${dir}/${name}`);
    }
    serverArgs.push(
      "-c",
      "ssl=on",
      "-c",
      `ssl_cert_file=${dir}/server.crt`,
      "-c",
      `ssl_key_file=${dir}/server.key`,
    );
  }
  const child = as(`${bin}/postgres`, serverArgs, cpus).spawn();
  let log = "";
  const logging = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (t) => void (log += t) }),
  ).catch(() => {});
  child.stdout.cancel();
  // Ready once it accepts a startup (pg_isready), polled with a deadline.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await new Deno.Command(`${bin}/pg_isready`, {
      args: ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres"],
      stdout: "null",
      stderr: "null",
      env: CLEAN_ENV,
    }).output();
    if (r.success) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`postgres did not start: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    async stop() {
      await as(`${bin}/pg_ctl`, ["-D", data, "stop", "-m", "fast"]).output();
      await child.status;
      await logging;
      await Deno.remove(dir, { recursive: true });
    },
  };
}
