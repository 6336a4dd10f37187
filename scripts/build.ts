/**
 * Builds what mgnet needs, once: the pinned Mongoose sources, libclang for
 * bindgen (installed from Debian's packages when missing and possible) and
 * the native library `rust/target/release/libmgnet.so`.
 *
 *   deno task build
 *
 * Every missing prerequisite ends the build with one line saying what to do.
 * Set MGNET_SANITIZE=address to build an AddressSanitizer variant into
 * rust/target/asan/ (see scripts/test.ts --asan).
 */
import { ensureMongoose, SetupError } from "../vendor/mongoose/fetch.ts";
import { platform } from "../src/core/native.ts";

export { SetupError };

const ROOT = new URL("..", import.meta.url).pathname;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function tryRun(cmd: string, args: string[], inherit = false): Promise<boolean> {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      stdout: inherit ? "inherit" : "null",
      stderr: inherit ? "inherit" : "null",
    }).output();
    return out.success;
  } catch {
    return false; // the command is not installed
  }
}

/** Reads an environment variable, treating a denied permission as unset. */
function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The folders searched for libclang: MGNET_LIBCLANG_DIRS (colon-separated)
 * when set, which is how tests stand in for a machine without it; else the
 * usual Debian, Fedora and LLVM locations.
 */
async function libclangDirs(): Promise<string[]> {
  const given = env("MGNET_LIBCLANG_DIRS");
  if (given !== undefined) return given.split(":").filter((d) => d !== "");
  const dirs = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
  ];
  try {
    for await (const e of Deno.readDir("/usr/lib")) {
      if (e.name.startsWith("llvm-")) dirs.unshift(`/usr/lib/${e.name}/lib`);
    }
  } catch { /* no /usr/lib */ }
  return dirs;
}

async function findLibclang(): Promise<string | undefined> {
  const explicit = env("LIBCLANG_PATH");
  if (explicit) return explicit;
  const dirs = await libclangDirs();
  for (const d of dirs) {
    try {
      for await (const e of Deno.readDir(d)) {
        if (/^libclang(-\d+)?\.so(\.\d+)*$/.test(e.name)) return `${d}/${e.name}`;
      }
    } catch { /* missing folder */ }
  }
  return undefined;
}

/**
 * Whether this process runs as root, asked of `id -u` (a command, so the
 * build task needs no --allow-sys).
 */
async function isRoot(): Promise<boolean> {
  try {
    const out = await new Deno.Command("id", { args: ["-u"], stdout: "piped", stderr: "null" }).output();
    return out.success && new TextDecoder().decode(out.stdout).trim() === "0";
  } catch {
    return false;
  }
}

/**
 * Makes sure bindgen can find libclang; installs Debian's libclang-dev when
 * root and apt-get is there (MGNET_NO_APT=1 turns the install off).
 */
async function ensureLibclang(): Promise<void> {
  if (await findLibclang()) return;
  if (env("MGNET_NO_APT") !== "1" && await isRoot() && await tryRun("apt-get", ["--version"])) {
    console.error("mgnet: installing libclang-dev (bindgen needs libclang)...");
    const env = ["-y", "-qq", "-o", "Dpkg::Use-Pty=0", "install", "libclang-dev"];
    if (
      !await tryRun("apt-get", env) &&
      !(await tryRun("apt-get", ["-qq", "update"]) && await tryRun("apt-get", env))
    ) {
      throw new SetupError(
        "could not install libclang-dev with apt-get: install libclang (Debian: apt-get install libclang-dev) or set LIBCLANG_PATH",
      );
    }
    if (await findLibclang()) return;
  }
  throw new SetupError(
    "libclang is missing (bindgen needs it): run `sudo apt-get install libclang-dev` or set LIBCLANG_PATH to its folder",
  );
}

/**
 * Runs cargo to build the native library.
 *
 * @param root The package folder (holding `rust/` and `vendor/mongoose/`), ending in a slash.
 * @param targetDir cargo's `--target-dir`.
 * @returns The path of the built library.
 */
export async function cargoBuild(root: string = ROOT, targetDir?: string): Promise<string> {
  if (!await tryRun("cargo", ["--version"])) {
    throw new SetupError(
      "cargo is missing: install Rust (https://rustup.rs) to build mgnet's native library",
    );
  }
  const asan = env("MGNET_SANITIZE") === "address";
  targetDir ??= asan ? `${root}rust/target/asan` : `${root}rust/target`;
  const built = `${targetDir}/release/${platform().cargoName}`;
  if (!await exists(built)) {
    console.error("mgnet: building the native library (the first build takes about a minute)...");
  }
  const ok = await tryRun("cargo", [
    "build",
    "--release",
    "--quiet",
    "--manifest-path",
    `${root}rust/Cargo.toml`,
    "--target-dir",
    targetDir,
  ], true);
  if (!ok) throw new SetupError("cargo build failed (see the errors above)");
  return built;
}

/**
 * Everything `deno task build` does: the Mongoose sources, libclang, cargo.
 *
 * @param root The package folder, ending in a slash.
 * @param targetDir cargo's `--target-dir` (default `rust/target`).
 * @returns The path of the built library.
 */
export async function buildNative(root: string = ROOT, targetDir?: string): Promise<string> {
  await ensureMongoose(`${root}vendor/mongoose`);
  await ensureLibclang();
  return await cargoBuild(root, targetDir);
}

if (import.meta.main) {
  try {
    await buildNative();
  } catch (e) {
    if (e instanceof SetupError) {
      console.error(`mgnet setup: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  }
}
