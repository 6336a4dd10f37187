/**
 * The wake paths of an idle loop (src/core/idle_wait.ts): each one serves
 * bursts of requests whose handlers await a timer, survives a shutdown
 * while it waits, and lets the process exit by itself afterwards.
 */
import assert from "node:assert/strict";
import { test } from "./helpers.ts";

const CHILD = new URL("./fixtures/idle_wait_child.ts", import.meta.url).pathname;

for (const path of ["callback", "nonblocking", "doorbell"]) {
  test(`idle wait "${path}": serves, shuts down mid-burst, and the process exits`, async () => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CHILD],
      env: { MGNET_WAKE: path },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // A watcher left running, or a callback left ref'd, keeps the child
    // alive: kill it well before the test's own deadline and say so.
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const out = await child.output();
    clearTimeout(timer);
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(
      out.code,
      0,
      `child failed or hung (killed): ${text}${new TextDecoder().decode(out.stderr)}`,
    );
    const m = /^ok (\w+) (\d+)$/m.exec(text);
    assert.ok(m, text);
    assert.equal(m[1], path);
    assert.ok(Number(m[2]) >= 100, `only ${m[2]} answers`);
  });
}
