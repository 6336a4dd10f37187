/**
 * Timers: CPU per fire of a manager's timer, native (Mongoose's timer list,
 * a TIMER record in the poll's batch) against a JS timer that feeds the
 * loop (a `setInterval` whose callback must end the loop's native wait with
 * a wake-up, then the event is handed out from JS).
 *
 *   deno task bench:timers [fires=2000] [period_ms=1]
 *
 * Both loops iterate a manager whose loop waits natively (as any server's
 * does); CPU is the process's user+system time (node:process cpuUsage) per
 * fire. The JS variant's cost is a lower bound: it counts the wake-up and
 * the wait's round trip but hands out no event object.
 */
import process from "node:process";
import { Manager } from "../mod.ts";
import { managerLoop } from "../src/manager.ts";

const FIRES = Number(Deno.args[0] ?? 2000);
const PERIOD = Number(Deno.args[1] ?? 1);

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

async function native(): Promise<[number, number]> {
  await using mgr = new Manager();
  const t0 = performance.now(), c0 = cpuUs();
  const timer = mgr.setTimer(PERIOD, { repeat: true, ref: true });
  let n = 0;
  for await (const ev of mgr) {
    if (ev.type === "timer" && ++n === FIRES) break;
  }
  timer.cancel();
  return [(cpuUs() - c0) / FIRES, (performance.now() - t0) / FIRES];
}

async function jsTimer(): Promise<[number, number]> {
  await using mgr = new Manager();
  mgr.postPort(); // keeps the loop in its native wait, like a listener
  const loop = managerLoop(mgr);
  const t0 = performance.now(), c0 = cpuUs();
  let n = 0;
  const done = Promise.withResolvers<void>();
  const id = setInterval(() => {
    loop.kick(); // the loop must wake to hand the event out
    if (++n === FIRES) done.resolve();
  }, PERIOD);
  const it = mgr[Symbol.asyncIterator]();
  void it.next(); // the loop waits natively; each kick ends a wait
  await done.promise;
  clearInterval(id);
  const r: [number, number] = [(cpuUs() - c0) / FIRES, (performance.now() - t0) / FIRES];
  await mgr.close();
  return r;
}

for (let round = 0; round < 3; round++) {
  const [nc, nw] = await native();
  const [jc, jw] = await jsTimer();
  console.log(
    `round ${round}: native ${nc.toFixed(1)} µs CPU/fire (${nw.toFixed(2)} ms/fire)  ` +
      `js setInterval+wake ${jc.toFixed(1)} µs CPU/fire (${jw.toFixed(2)} ms/fire)`,
  );
}
