/**
 * RSS per idle WebSocket, with and without permessage-deflate: a server in
 * a child process (this file with `server`), N mgnet clients that each
 * send one message (so a compressed socket has its inflater) and stay.
 * Then the server's CPU over 5 s of that idleness; in mode `ping` the
 * server keeps every socket alive with `pingInterval: 1000` (N pings and
 * pongs a second), in `ping30` with `pingInterval: 30000` (armed, never due),
 * and in `deno-ping` the server is `Deno.upgradeWebSocket` with
 * `idleTimeout: 2` (also a ping a second, by a JS timer per socket).
 *
 *   deno run -A bench/ws_rss.ts [N] [mode...]
 */
import { acceptWebSocket, Manager, type MgWebSocket } from "../mod.ts";

const rss = () => Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/self/status"))![1]) * 1024;

if (Deno.args[0] === "server" && Deno.args[1] === "deno-ping") {
  // The same with Deno.upgradeWebSocket and idleTimeout 2 (a ping per second).
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req, { idleTimeout: 2 });
    socket.onmessage = (e) => socket.send(e.data === "rss?" ? `rss ${rss()}` : e.data);
    return response;
  });
  console.log(`port ${server.addr.port}`);
} else if (Deno.args[0] === "server") {
  const mgr = new Manager();
  const deflate = Deno.args[1] === "deflate"
    ? true
    : Deno.args[1] === "reset"
    ? { clientNoContextTakeover: true }
    : false;
  const { port } = mgr.listen("http://127.0.0.1:0");
  console.log(`port ${port}`);
  let n = 0;
  const pingInterval = Deno.args[1] === "ping" ? 1000 : Deno.args[1] === "ping30" ? 30_000 : undefined;
  for await (const ev of mgr) {
    if (ev.type === "http") acceptWebSocket(ev, { deflate, pingInterval });
    if (ev.type === "ws-message") {
      ev.socket.send(ev.data);
      if (++n % 1000 === 0) console.log(`rss ${rss()}`);
      if (ev.data === "rss?") ev.socket.send(`rss ${rss()}`);
    }
  }
} else {
  const n = Number(Deno.args[0] ?? 2000);
  const modes = Deno.args.length > 1 ? Deno.args.slice(1) : ["plain", "deflate", "reset", "ping30", "ping"];
  const cpuTicks = (pid: number) => {
    const f = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
    return Number(f[11]) + Number(f[12]); // utime + stime
  };
  for (const mode of modes) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", import.meta.filename!, "server", mode],
      stdout: "piped",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    const line = async (re: RegExp) => {
      for (;;) {
        const m = re.exec(buf);
        if (m) {
          buf = buf.slice(m.index + m[0].length);
          return m[1];
        }
        const { value } = await lines.read();
        buf += value;
      }
    };
    const port = Number(await line(/port (\d+)\n/));
    const mgr = new Manager();
    const probe = await mgr.connect(`ws://127.0.0.1:${port}/`);
    const ask = async () => {
      probe.send("rss?");
      for await (const ev of probe) {
        if (ev.type === "ws-message" && String(ev.data).startsWith("rss ")) {
          return Number(String(ev.data).slice(4));
        }
      }
      return 0;
    };
    await ask();
    const before = await ask();
    const socks: MgWebSocket[] = [];
    for (let i = 0; i < n; i += 100) {
      const batch = await Promise.all(
        Array.from(
          { length: 100 },
          () => mgr.connect(`ws://127.0.0.1:${port}/`, { deflate: mode === "deflate" || mode === "reset" }),
        ),
      );
      for (const s of batch) s.send("hello hello hello hello hello hello");
      socks.push(...batch);
    }
    await new Promise((r) => setTimeout(r, 500));
    const after = await ask();
    const t0 = cpuTicks(child.pid);
    await new Promise((r) => setTimeout(r, 5000));
    const cpu = (cpuTicks(child.pid) - t0) / 5; // ticks of 10 ms per s = % of a core
    console.log(
      `${mode}: ${n} idle sockets, server RSS +${((after - before) / n / 1024).toFixed(1)} KiB each (${
        socks[0].extensions || "no extension"
      }); server CPU over 5 s idle: ${cpu.toFixed(1)}% of a core`,
    );
    await mgr.close();
    child.kill();
    await child.status;
    await lines.cancel();
  }
}
