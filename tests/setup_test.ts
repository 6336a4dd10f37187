/**
 * The setup path a fresh machine takes (`deno task build`, run by both README
 * commands): each missing prerequisite ends in one clear line, with the
 * permissions the task grants. `.ci/run` cannot see this path break, since a
 * CI machine has everything installed by the time it runs the suite.
 */
import assert from "node:assert/strict";
import { test } from "./helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** The permission flags of the `build` task, as deno.json grants them. */
async function buildFlags(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  const cmd: string = config.tasks.build;
  return cmd.split(/\s+/).filter((a) => a.startsWith("--allow"));
}

/** A folder whose only command is `deno`: a PATH without cargo, python3 or apt-get. */
async function bareBin(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "mgnet-bin-" });
  await Deno.symlink(Deno.execPath(), `${dir}/deno`);
  return dir;
}

async function runScript(script: string, env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...await buildFlags(), script],
    env: { NO_COLOR: "1", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
    cwd: ROOT,
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  const lines = stderr.trim().split("\n").filter((l) => l.trim() !== "");
  return { code: out.code, lines, stderr };
}

function assertOneClearLine(r: { code: number; lines: string[]; stderr: string }, expected: RegExp) {
  assert.equal(r.code, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /Uncaught|NotCapable|at file:/, "no stack trace");
  const setup = r.lines.filter((l) => l.startsWith("mgnet setup:"));
  assert.equal(setup.length, 1, r.stderr);
  assert.match(setup[0], expected);
  assert.equal(r.lines[r.lines.length - 1], setup[0], "it is the last line");
}

for (const apt of ["1", "0"]) {
  const how = apt === "1" ? "and no way to install it" : "and apt-get, as root, cannot make it appear there";
  test(`setup: without libclang (${how}) the build ends in one clear line`, async () => {
    // With apt-get allowed this also runs the install path (root check, apt-get) with the
    // task's own permissions: scripts/build.ts once called Deno.uid(), which the task's flags
    // (no --allow-sys) refuse, and a machine without libclang stopped with NotCapable.
    const bin = await bareBin();
    try {
      const r = await runScript("scripts/build.ts", {
        PATH: `${bin}:/usr/bin:/bin`,
        HOME: Deno.env.get("HOME") ?? "/root",
        MGNET_LIBCLANG_DIRS: "/nonexistent",
        MGNET_NO_APT: apt,
        DEBIAN_FRONTEND: "noninteractive",
      });
      assert.doesNotMatch(r.stderr, /NotCapable|Requires sys access/);
      assertOneClearLine(
        r,
        apt === "1"
          ? /^mgnet setup: libclang is missing \(bindgen needs it\): .*apt-get install libclang-dev/
          : /^mgnet setup: (libclang is missing|could not install libclang-dev)/,
      );
    } finally {
      await Deno.remove(bin, { recursive: true });
    }
  });
}

test("setup: without cargo the build ends in one clear line", async () => {
  const bin = await bareBin();
  try {
    const r = await runScript("scripts/build.ts", {
      PATH: bin, // no cargo (and nothing else) on the PATH
      HOME: Deno.env.get("HOME") ?? "/root",
      LIBCLANG_PATH: "/usr/lib", // stands for a found libclang; cargo is checked next
    });
    assertOneClearLine(r, /^mgnet setup: cargo is missing: install Rust/);
  } finally {
    await Deno.remove(bin, { recursive: true });
  }
});

test("setup: without python3 the Mongoose fetch ends in one clear line", async () => {
  // A copy of the fetch step in a folder without the Mongoose sources, so it
  // must download them.
  const dir = await Deno.makeTempDir({ prefix: "mgnet-fetch-" });
  const bin = await bareBin();
  try {
    for (const f of ["fetch.ts", "mongoose.lock.json"]) {
      await Deno.copyFile(`${ROOT}/vendor/mongoose/${f}`, `${dir}/${f}`);
    }
    const r = await runScript(`${dir}/fetch.ts`, { PATH: bin, HOME: Deno.env.get("HOME") ?? "/root" });
    assertOneClearLine(r, /^mgnet setup: could not download cymongoose==[\d.]+ with pip: python3 is missing/);
    assert.equal(
      await Deno.stat(`${dir}/mongoose.c`).then(() => true, () => false),
      false,
      "nothing written",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(bin, { recursive: true });
  }
});
