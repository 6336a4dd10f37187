/**
 * A telnet-style line chat: each line a client sends goes to every other
 * client, prefixed with the sender's name. `/nick NAME` renames, `/who`
 * lists who is here, `/quit` leaves. Lines are cut in native code (line
 * framing, at most 1 KiB each: a longer one closes that connection).
 *
 *   PORT=7001 deno task serve:line-chat
 *   nc 127.0.0.1 7001     (or: telnet 127.0.0.1 7001)
 *
 * Prints `Listening on tcp://HOST:PORT/` when ready and exits cleanly on
 * SIGINT or SIGTERM.
 */
import { Manager, type TcpConnection } from "../mod.ts";
import { announce, listenUrl, onStopSignal } from "./_server_env.ts";

interface Member {
  name: string;
}

const mgr = new Manager();
const members = new Set<TcpConnection>();
let guests = 0;

const nameOf = (c: TcpConnection) => (c.data as Member).name;

function broadcast(text: string, except?: TcpConnection): void {
  for (const c of members) {
    // A member that does not read loses lines rather than holding us up.
    if (c !== except && c.queued < 256 * 1024) c.send(text);
  }
}

const listener = mgr.listen(listenUrl("tcp") as `tcp://${string}`, {
  framing: "line",
  maxFrame: 1024,
  onOpen(ev) {
    ev.conn.data = { name: `guest${++guests}` } satisfies Member;
    ev.conn.send(`welcome, ${nameOf(ev.conn)}! /nick NAME, /who, /quit\n`);
    broadcast(`* ${nameOf(ev.conn)} joined\n`, ev.conn);
    members.add(ev.conn);
  },
  onData(ev) {
    const c = ev.conn;
    const line = ev.text().trim();
    if (line === "") return;
    if (line === "/quit") {
      c.send("bye\n");
      c.close();
    } else if (line === "/who") {
      c.send(`here: ${[...members].map(nameOf).join(", ")}\n`);
    } else if (line.startsWith("/nick ")) {
      const name = line.slice(6).trim().replace(/\s+/g, "_").slice(0, 32);
      if (name === "") return void c.send("usage: /nick NAME\n");
      broadcast(`* ${nameOf(c)} is now ${name}\n`, c);
      (c.data as Member).name = name;
      c.send(`you are ${name}\n`);
    } else {
      broadcast(`${nameOf(c)}: ${line}\n`, c);
    }
  },
  onEnd(ev) {
    ev.conn.end();
  },
  onClose(ev) {
    const c = ev.conn as TcpConnection;
    if (members.delete(c)) broadcast(`* ${nameOf(c)} left\n`);
  },
});
announce(listener.port, "tcp");
onStopSignal(() => mgr.close());
await mgr.finished;
