/**
 * The Autobahn|Testsuite fuzzing client against examples/ws_echo.ts.
 *
 * Needs Python 2.7 with `autobahntestsuite` (`wstest`): the test is skipped,
 * saying so, where `wstest` is absent. Install it with
 *
 *   ~/.pyenv/versions/2.7.18/bin/python -m pip install --user autobahntestsuite
 *
 * Cases run here: 1–7, 9 (all sizes: the whole group takes ~10 s), 10, and
 * of 12/13 (permessage-deflate; each case sends 1,000 messages through
 * wstest's own slow Python, 12 minutes for all of them) the three smallest
 * sizes of 12.1, 12.3, 13.1, 13.2, 13.3, 13.5 and 13.7. The README has the
 * table of a full run (`WSTEST_ALL=1` runs every case of 12 and 13 here).
 * Any FAILED case (behaviour or closing behaviour) fails the test.
 */
import assert from "node:assert/strict";
import { readUntil, test } from "./helpers.ts";

const WSTEST = Deno.env.get("WSTEST") ?? `${Deno.env.get("HOME")}/.local/bin/wstest`;

function hasWstest(): boolean {
  try {
    return Deno.statSync(WSTEST).isFile;
  } catch {
    return false;
  }
}

const deflateCases = ["12.1", "12.3", "13.1", "13.2", "13.3", "13.5", "13.7"].flatMap((g) =>
  [1, 2, 3].map((i) => `${g}.${i}`)
);
const CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"].concat(
  Deno.env.get("WSTEST_ALL") ? ["12.*", "13.*"] : deflateCases,
);

const available = hasWstest();
if (!available) {
  console.warn(
    `autobahn_test: SKIPPED: no wstest at ${WSTEST} (install Python 2.7's autobahntestsuite, see this file)`,
  );
}

test("Autobahn|Testsuite: no FAILED case against examples/ws_echo.ts", {
  ignore: !available,
  timeoutMs: Deno.env.get("WSTEST_ALL") ? 1_800_000 : 300_000,
}, async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-ffi",
      "--allow-env",
      "--allow-read",
      new URL("../examples/ws_echo.ts", import.meta.url).pathname,
    ],
    env: { PORT: "0" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const dir = await Deno.makeTempDir({ prefix: "mgnet_autobahn_" });
  try {
    const out = await readUntil(reader, (t) => /Listening on (\S+)\n/.test(t), "ws_echo to listen");
    const url = /Listening on (\S+)\n/.exec(out)![1].replace(/\/$/, "");
    const spec = {
      outdir: `${dir}/report`,
      servers: [{ agent: "mgnet", url }],
      cases: CASES,
      "exclude-cases": [],
      "exclude-agent-cases": {},
    };
    await Deno.writeTextFile(`${dir}/spec.json`, JSON.stringify(spec));
    const run = await new Deno.Command(WSTEST, {
      args: ["-m", "fuzzingclient", "-s", `${dir}/spec.json`],
      cwd: dir,
      stdout: "null",
      stderr: "piped",
      env: { LD_PRELOAD: "" },
    }).output();
    assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
    const report = JSON.parse(await Deno.readTextFile(`${dir}/report/index.json`)).mgnet as Record<
      string,
      { behavior: string; behaviorClose: string }
    >;
    const ids = Object.keys(report);
    assert.ok(ids.length >= 250, `only ${ids.length} cases ran`);
    const failed = ids.filter((id) =>
      report[id].behavior === "FAILED" || report[id].behaviorClose === "FAILED"
    )
      .map((id) => `${id} (${report[id].behavior}/${report[id].behaviorClose})`);
    assert.deepEqual(failed, [], `FAILED cases: ${failed.join(", ")}`);
    const counts: Record<string, number> = {};
    for (const id of ids) counts[report[id].behavior] = (counts[report[id].behavior] ?? 0) + 1;
    console.log(`autobahn: ${ids.length} cases: ${JSON.stringify(counts)}`);
  } finally {
    try {
      child.kill("SIGINT");
    } catch { /* exited */ }
    await child.status;
    await reader.cancel();
    await Deno.remove(dir, { recursive: true });
  }
});
