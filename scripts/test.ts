/**
 * Runs the whole test suite and ends with one line `N passed, N failed`.
 *
 *   deno task test            # cargo test + deno test (incl. JSDoc examples)
 *   deno task test --asan     # the deno tests against an AddressSanitizer build
 *
 * Exits non-zero when anything fails.
 */

const ROOT = new URL("..", import.meta.url).pathname;
const asan = Deno.args.includes("--asan");
const filter = Deno.args.find((a) => a.startsWith("--filter="));

interface Counts {
  passed: number;
  failed: number;
  ok: boolean;
}

async function runStep(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  parse: (out: string) => Counts,
) {
  console.log(`\n$ ${cmd} ${args.join(" ")}`);
  const child = new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "inherit", cwd: ROOT }).spawn();
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    await Deno.stdout.write(chunk);
    text += decoder.decode(chunk, { stream: true });
  }
  const status = await child.status;
  // deno-lint-ignore no-control-regex
  const counts = parse(text.replace(/\x1b\[[0-9;]*m/g, ""));
  if (!status.success && counts.failed === 0) counts.failed = 1; // crashed or failed to start
  counts.ok = status.success && counts.failed === 0;
  return counts;
}

function parseCargo(out: string): Counts {
  let passed = 0, failed = 0;
  for (const m of out.matchAll(/test result: \w+\. (\d+) passed; (\d+) failed/g)) {
    passed += Number(m[1]);
    failed += Number(m[2]);
  }
  return { passed, failed, ok: true };
}

function parseDeno(out: string): Counts {
  const m = /(?:ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/.exec(out);
  return m ? { passed: Number(m[1]), failed: Number(m[2]), ok: true } : { passed: 0, failed: 0, ok: false };
}

const steps: Counts[] = [];
const env: Record<string, string> = {};
if (asan) {
  const lib = (await new Deno.Command("gcc", { args: ["-print-file-name=libasan.so"] }).output()).stdout;
  env.LD_PRELOAD = new TextDecoder().decode(lib).trim();
  // A small quarantine: freed blocks are still checked for a while, but
  // ASan's default 256 MB hold-back would break the tests that bound RSS.
  env.ASAN_OPTIONS = "detect_leaks=0:abort_on_error=1:quarantine_size_mb=16";
  env.MGNET_LIB_PATH = `${ROOT}rust/target/asan/release/libmgnet.so`;
} else {
  steps.push(
    await runStep("cargo", ["test", "--release", "--manifest-path", "rust/Cargo.toml"], {}, parseCargo),
  );
}
const denoArgs = ["test", "--allow-all", "--doc", "--parallel"];
if (filter) denoArgs.push(filter);
denoArgs.push("tests/", "mod.ts", "src/");
steps.push(await runStep(Deno.execPath(), denoArgs, env, parseDeno));

const passed = steps.reduce((a, s) => a + s.passed, 0);
const failed = steps.reduce((a, s) => a + s.failed, 0);
console.log(`\n${passed} passed, ${failed} failed`);
Deno.exit(steps.every((s) => s.ok) ? 0 : 1);
