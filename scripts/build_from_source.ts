/**
 * Builds mgnet's native library from source into the cache folder the
 * loader reads, for platforms without a prebuilt release asset or for
 * users who prefer their own build:
 *
 *     deno run -A jsr:@mgnet/mgnet/build
 *
 * Needs cargo (https://rustup.rs), a C compiler, libclang (for bindgen) and
 * python3 with pip (the pinned Mongoose sources are fetched from PyPI and
 * checked against `vendor/mongoose/mongoose.lock.json`). The published
 * package carries the Rust sources, the build script and the Mongoose lock,
 * never the Mongoose sources. When run from JSR, those files are
 * downloaded into a temporary folder (each checked against the sha256 JSR
 * lists for this version) and built there; from a local copy, they are
 * built in place. cargo's target folder is temporary either way. The result
 * is `<cache>/libmgnet-<os>-<arch>-source.<ext>` with its sha256 beside it,
 * which the loader prefers to a downloaded library.
 *
 * @example Build programmatically (what the command line does)
 * ```ts ignore
 * import { buildFromSource } from "jsr:@mgnet/mgnet/build";
 * const path = await buildFromSource();
 * console.log(`built ${path}`);
 * ```
 *
 * @module
 */

import { buildNative, SetupError } from "./build.ts";
import { cacheDir, platform, sha256Hex, sourceAssetName } from "../src/core/native.ts";

const PACKAGE_ROOT = new URL("../", import.meta.url);

/** Files of the package a build needs, by path prefix. */
const BUILD_PREFIXES = ["rust/", "vendor/mongoose/"];

/** Downloads the build's files of a remote (JSR) package into `dir`. */
async function downloadSources(root: URL, dir: string): Promise<void> {
  // JSR lists a version's files with their checksums at `<version>_meta.json`.
  const metaUrl = root.href.replace(/\/$/, "") + "_meta.json";
  const res = await fetch(metaUrl);
  if (!res.ok) throw new SetupError(`could not list the package's files at ${metaUrl}: HTTP ${res.status}`);
  const meta = await res.json() as { manifest: Record<string, { checksum: string }> };
  const files = Object.entries(meta.manifest).filter(([p]) =>
    BUILD_PREFIXES.some((x) => p.startsWith(`/${x}`))
  );
  if (!files.some(([p]) => p === "/rust/Cargo.toml")) {
    throw new SetupError(`${metaUrl} lists no rust/Cargo.toml: this version does not carry its sources`);
  }
  for (const [path, { checksum }] of files) {
    const url = new URL(path.slice(1), root);
    const r = await fetch(url);
    if (!r.ok) throw new SetupError(`could not download ${url}: HTTP ${r.status}`);
    const data = new Uint8Array(await r.arrayBuffer());
    const got = `sha256-${await sha256Hex(data)}`;
    if (got !== checksum) throw new SetupError(`${url} has ${got}, the registry lists ${checksum}`);
    const dest = `${dir}/${path.slice(1)}`;
    await Deno.mkdir(dest.slice(0, dest.lastIndexOf("/")), { recursive: true });
    await Deno.writeFile(dest, data);
  }
}

/**
 * Builds the native library from source and installs it into the cache.
 *
 * @returns The installed library's path.
 * @throws {SetupError} When a prerequisite is missing or the build fails; the message says what to do.
 */
export async function buildFromSource(): Promise<string> {
  const dir = cacheDir();
  if (!dir) throw new SetupError("no cache folder (HOME is unset): set MGNET_CACHE_DIR");
  const work = await Deno.makeTempDir({ prefix: "mgnet-build-" });
  try {
    let root: string;
    if (PACKAGE_ROOT.protocol === "file:") {
      root = decodeURIComponent(PACKAGE_ROOT.pathname);
    } else {
      console.error(`mgnet: downloading the sources from ${PACKAGE_ROOT.href} ...`);
      await downloadSources(PACKAGE_ROOT, `${work}/src`);
      root = `${work}/src/`;
    }
    const built = await buildNative(root, `${work}/target`);
    const data = await Deno.readFile(built);
    await Deno.mkdir(dir, { recursive: true });
    const dest = `${dir}/${sourceAssetName(platform())}`;
    const tmp = await Deno.makeTempFile({ dir, prefix: ".build.", suffix: ".part" });
    await Deno.writeFile(tmp, data);
    await Deno.writeTextFile(`${dest}.sha256`, `${await sha256Hex(data)}\n`);
    await Deno.rename(tmp, dest);
    return dest;
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  try {
    const path = await buildFromSource();
    console.log(`mgnet: built ${path}; the loader will use it`);
  } catch (e) {
    if (e instanceof SetupError) {
      console.error(`mgnet build: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  }
}
