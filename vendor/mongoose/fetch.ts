// Fetches the pinned, unmodified Mongoose sources (see README.md beside this
// file) and checks every byte against mongoose.lock.json.
//
// Usage: deno run --allow-read --allow-write --allow-run --allow-env vendor/mongoose/fetch.ts
//
// The files are never committed: they are git-ignored and fetched on first
// build. Set MGNET_MONGOOSE_DIR to a folder holding your own mongoose.c and
// mongoose.h to skip the fetch and build against that copy instead.

/** The shape of mongoose.lock.json. */
interface MongooseLock {
  mongoose: string;
  source: {
    package: string;
    version: string;
    archive: string;
    archiveSha256: string;
    folder: string;
  };
  files: Record<string, string>;
}

/** A failed prerequisite: its message is the one line shown to the user. */
export class SetupError extends Error {
  override name = "SetupError";
}

import lockJson from "./mongoose.lock.json" with { type: "json" };

const HERE = new URL(".", import.meta.url);
const lock: MongooseLock = lockJson;

/** Hex sha256 of a byte array. */
export async function sha256Hex(data: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

async function fileMatches(path: URL | string, sha: string): Promise<boolean> {
  try {
    return await sha256Hex(await Deno.readFile(path)) === sha;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function run(cmd: string, args: string[]): Promise<{ ok: boolean; stderr: string }> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" })
      .output();
    return { ok: out.success, stderr: new TextDecoder().decode(out.stderr) };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { ok: false, stderr: `${cmd}: not found` };
    throw e;
  }
}

/** The folder holding the two Mongoose files the build should use. */
export function mongooseDir(): string {
  const custom = readEnv("MGNET_MONGOOSE_DIR");
  return custom ?? new URL(".", HERE).pathname.replace(/\/$/, "");
}

/** `into` (a folder path) or this file's folder, as a URL ending in a slash. */
function targetFolder(into?: string): URL {
  if (into === undefined) return HERE;
  return new URL(`file://${into.replace(/\/*$/, "/")}`);
}

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined; // env permission denied: behave as if unset
  }
}

/**
 * Makes sure mongoose.c and mongoose.h are present and are the pinned ones.
 * Does nothing when MGNET_MONGOOSE_DIR points at a user's own copy (only
 * checks the files exist there). Throws SetupError with a one-line message.
 *
 * @param into The folder to write them into (default: this file's folder,
 *   which is what rust/build.rs reads as `../vendor/mongoose/`).
 */
export async function ensureMongoose(into?: string): Promise<void> {
  const dest = targetFolder(into);
  const custom = readEnv("MGNET_MONGOOSE_DIR");
  if (custom) {
    for (const f of ["mongoose.c", "mongoose.h"]) {
      try {
        await Deno.stat(`${custom}/${f}`);
      } catch {
        throw new SetupError(
          `MGNET_MONGOOSE_DIR=${custom} has no ${f}: point it at a folder holding mongoose.c and mongoose.h`,
        );
      }
    }
    return;
  }
  let allPresent = true;
  for (const [name, sha] of Object.entries(lock.files)) {
    if (!(await fileMatches(new URL(name, dest), sha))) allPresent = false;
  }
  if (allPresent) return;

  const tmp = await Deno.makeTempDir({ prefix: "mgnet-mongoose-" });
  try {
    const spec = `${lock.source.package}==${lock.source.version}`;
    console.error(`mgnet: fetching Mongoose ${lock.mongoose} (${spec} source distribution from PyPI)...`);
    const pip = await run("python3", [
      "-m",
      "pip",
      "download",
      "--quiet",
      "--no-deps",
      "--no-binary",
      lock.source.package,
      spec,
      "-d",
      tmp,
    ]);
    if (!pip.ok) {
      const why = pip.stderr.includes("No module named pip")
        ? "pip is missing (install python3-pip)"
        : pip.stderr.includes("not found")
        ? "python3 is missing (install python3 and python3-pip)"
        : "is PyPI reachable? " + lastLine(pip.stderr);
      throw new SetupError(`could not download ${spec} with pip: ${why}`);
    }
    const archive = `${tmp}/${lock.source.archive}`;
    const archiveSha = await sha256Hex(await Deno.readFile(archive));
    if (archiveSha !== lock.source.archiveSha256) {
      throw new SetupError(
        `${lock.source.archive} has sha256 ${archiveSha}, expected ${lock.source.archiveSha256}: refusing to build from an unverified download`,
      );
    }
    const members = Object.keys(lock.files).map((f) => `${lock.source.folder}/${f}`);
    const tar = await run("tar", ["-xzf", archive, "-C", tmp, ...members]);
    if (!tar.ok) {
      throw new SetupError(`could not extract Mongoose from ${lock.source.archive}: ${lastLine(tar.stderr)}`);
    }
    for (const [name, sha] of Object.entries(lock.files)) {
      const data = await Deno.readFile(`${tmp}/${lock.source.folder}/${name}`);
      const got = await sha256Hex(data);
      if (got !== sha) {
        throw new SetupError(`${name} from ${lock.source.archive} has sha256 ${got}, expected ${sha}`);
      }
      await Deno.writeFile(new URL(name, dest), data);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

function lastLine(s: string): string {
  const lines = s.trim().split("\n");
  return lines[lines.length - 1] ?? "";
}

if (import.meta.main) {
  try {
    await ensureMongoose();
    console.log(`Mongoose sources ready in ${mongooseDir()}`);
  } catch (e) {
    if (e instanceof SetupError) {
      console.error(`mgnet setup: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  }
}
