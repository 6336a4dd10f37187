/**
 * Finds the native library for this process, downloading a prebuilt one
 * when it has to. Protocol-free: it knows file names, folders and URLs,
 * nothing of what the library does.
 *
 * The order, first found wins:
 *
 * 1. `MGNET_LIB_PATH`: an explicit path, used as is (no checksum).
 * 2. A local build, when running from a checkout (a `file:` URL with a
 *    `rust/` folder beside `src/`): `rust/target/release/libmgnet.so`
 *    (`.dylib`, `mgnet.dll`).
 * 3. A library built from source into the cache by
 *    `deno run -A jsr:@mgnet/mgnet/build`: `<cache>/libmgnet-<os>-<arch>-source.<ext>`,
 *    checked against the sha256 the build wrote beside it.
 * 4. A cached download: `<cache>/libmgnet-<os>-<arch>.<ext>`, checked
 *    against the sums shipped in the package (src/core/native_sums.ts); a
 *    mismatch means a corrupted entry, which is downloaded again.
 * 5. A download of that asset from `MGNET_BINARY_BASE` (default: this
 *    version's GitHub release), checked against the same sums, written to a
 *    temporary file in the cache folder and renamed into place. Off when
 *    `MGNET_NO_DOWNLOAD=1`.
 *
 * `<cache>` is `MGNET_CACHE_DIR/<version>` when set, else
 * `$XDG_CACHE_HOME/mgnet/<version>` or `~/.cache/mgnet/<version>`
 * (`~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows).
 *
 * Permissions, the narrowest that work for a downloaded library:
 * `--allow-ffi --allow-read=<cache> --allow-write=<cache> --allow-net=<download host>
 * --allow-env=HOME,XDG_CACHE_HOME,MGNET_LIB_PATH,MGNET_CACHE_DIR,MGNET_BINARY_BASE,MGNET_NO_DOWNLOAD`;
 * once cached, `--allow-write` and `--allow-net` are no longer used.
 *
 * @module
 */

import { NATIVE_SUMS, NATIVE_VERSION } from "./native_sums.ts";

/** Where release assets are downloaded from unless `MGNET_BINARY_BASE` says otherwise. */
export const DEFAULT_BINARY_BASE = `https://github.com/mgnet/mgnet/releases/download/v${NATIVE_VERSION}`;

/** The environment variables the loader reads. */
export const LOADER_ENV = [
  "MGNET_LIB_PATH",
  "MGNET_CACHE_DIR",
  "MGNET_BINARY_BASE",
  "MGNET_NO_DOWNLOAD",
  "XDG_CACHE_HOME",
  "HOME",
  "LOCALAPPDATA",
] as const;

/** How the build-from-source command is spelled for users. */
export const BUILD_COMMAND = "deno run -A jsr:@mgnet/mgnet/build";

/** A library that could not be found, built or downloaded; the message says what to do. */
export class NativeLibraryError extends Error {
  override name = "NativeLibraryError";
}

/** The asset naming for one platform. */
export interface Platform {
  /** `Deno.build.os`: linux, darwin, windows. */
  os: string;
  /** `Deno.build.arch`: x86_64, aarch64. */
  arch: string;
  /** so, dylib or dll. */
  ext: string;
  /** The release asset name, e.g. `libmgnet-linux-x86_64.so`. */
  asset: string;
  /** The name cargo gives the library, e.g. `libmgnet.so`. */
  cargoName: string;
}

/**
 * The asset naming for a platform (this one by default).
 *
 * @param os `Deno.build.os`.
 * @param arch `Deno.build.arch`.
 * @returns The names.
 */
export function platform(os: string = Deno.build.os, arch: string = Deno.build.arch): Platform {
  const ext = os === "windows" ? "dll" : os === "darwin" ? "dylib" : "so";
  return {
    os,
    arch,
    ext,
    asset: `libmgnet-${os}-${arch}.${ext}`,
    cargoName: os === "windows" ? "mgnet.dll" : `libmgnet.${ext}`,
  };
}

/** The name a from-source build takes in the cache, e.g. `libmgnet-linux-x86_64-source.so`. */
export function sourceAssetName(p: Platform = platform()): string {
  return `libmgnet-${p.os}-${p.arch}-source.${p.ext}`;
}

const envDenied = new Set<string>();

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable) envDenied.add(name);
    return undefined;
  }
}

/**
 * This version's cache folder, or undefined when no home folder is known.
 *
 * @returns An absolute path.
 */
export function cacheDir(): string | undefined {
  const explicit = readEnv("MGNET_CACHE_DIR");
  if (explicit) return `${explicit.replace(/[\\/]+$/, "")}/${NATIVE_VERSION}`;
  let root: string | undefined;
  if (Deno.build.os === "windows") {
    root = readEnv("LOCALAPPDATA");
  } else if (Deno.build.os === "darwin") {
    const home = readEnv("HOME");
    root = home && `${home}/Library/Caches`;
  } else {
    const home = readEnv("HOME");
    root = readEnv("XDG_CACHE_HOME") ?? (home && `${home}/.cache`);
  }
  return root ? `${root}/mgnet/${NATIVE_VERSION}` : undefined;
}

/**
 * The base URL assets are downloaded from.
 *
 * @returns The URL, without a trailing slash.
 */
export function binaryBase(): string {
  return (readEnv("MGNET_BINARY_BASE") ?? DEFAULT_BINARY_BASE).replace(/\/+$/, "");
}

/**
 * The flags a run needs to load (and, if need be, download) the library.
 *
 * @returns One line of `deno run` flags.
 */
export function neededFlags(): string {
  const dir = cacheDir() ?? "<cache folder>";
  let host = "<download host>";
  try {
    host = new URL(binaryBase()).host;
  } catch { /* a malformed MGNET_BINARY_BASE: the download says so */ }
  return `--allow-ffi --allow-read=${dir} --allow-write=${dir} --allow-net=${host} ` +
    `--allow-env=${LOADER_ENV.join(",")}`;
}

function denied(e: Deno.errors.NotCapable): Deno.errors.NotCapable {
  return new Deno.errors.NotCapable(
    `${e.message}\nmgnet: loading its native library needs these permissions: ${neededFlags()} ` +
      `(once cached, --allow-write and --allow-net are not used; with MGNET_LIB_PATH only --allow-ffi)`,
    { cause: e },
  );
}

/**
 * Lowercase hex sha256 of some bytes.
 *
 * @param data The bytes.
 * @returns 64 hex digits.
 */
export async function sha256Hex(data: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Reads a file, undefined when missing; a denied permission is thrown with the flags to add. */
async function readIfThere(path: string): Promise<Uint8Array<ArrayBuffer> | undefined> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    if (e instanceof Deno.errors.NotCapable) throw denied(e);
    throw e;
  }
}

/** The local build's path when running from a checkout, else undefined. */
function checkoutLibrary(p: Platform): { rust: boolean; path?: string } {
  const here = new URL("../../rust/", import.meta.url);
  if (here.protocol !== "file:") return { rust: false };
  const lib = new URL(`target/release/${p.cargoName}`, here);
  try {
    Deno.statSync(lib);
    return { rust: true, path: decodeURIComponent(lib.pathname) };
  } catch (e) {
    // Without --allow-read the old behaviour stands: try the checkout's build and let dlopen speak.
    if (e instanceof Deno.errors.NotCapable) return { rust: true, path: decodeURIComponent(lib.pathname) };
  }
  try {
    Deno.statSync(here);
    return { rust: true };
  } catch {
    return { rust: false };
  }
}

/** Where the library was found and how. */
export interface Located {
  /** The path to pass to `Deno.dlopen`. */
  path: string;
  /** Which step of the order found it. */
  source: "env" | "checkout" | "source-build" | "cache" | "download";
}

/**
 * Finds the library, downloading it when no local copy will do. Synchronous
 * in effect when `MGNET_LIB_PATH` or a checkout build is there (no await
 * does any work).
 *
 * @returns Where it is.
 * @throws {NativeLibraryError} When nothing works; the message names the URL, platform, cause and remedy.
 * @throws {Deno.errors.NotCapable} When a permission is denied; the message lists the flags to add.
 */
export async function locateLibrary(): Promise<Located> {
  const explicit = readEnv("MGNET_LIB_PATH");
  if (explicit) return { path: explicit, source: "env" };
  const p = platform();
  const checkout = checkoutLibrary(p);
  if (checkout.path) return { path: checkout.path, source: "checkout" };

  const dir = cacheDir();
  if (!dir) {
    if (envDenied.size > 0) {
      throw denied(new Deno.errors.NotCapable(`Requires env access to ${[...envDenied].join(", ")}`));
    }
    throw new NativeLibraryError(
      "mgnet: no cache folder for the native library (HOME is unset): set MGNET_CACHE_DIR or MGNET_LIB_PATH",
    );
  }

  // A from-source build the user made with the build command.
  const built = `${dir}/${sourceAssetName(p)}`;
  const builtBytes = await readIfThere(built);
  if (builtBytes) {
    const want = new TextDecoder().decode(await readIfThere(`${built}.sha256`) ?? new Uint8Array()).trim();
    if (want === await sha256Hex(builtBytes)) return { path: built, source: "source-build" };
    console.error(`mgnet: ignoring ${built}: its sha256 does not match ${built}.sha256 (rebuild it)`);
  }

  const expected = NATIVE_SUMS[p.asset];
  const cached = `${dir}/${p.asset}`;
  const cachedBytes = await readIfThere(cached);
  let corrupted = false;
  if (cachedBytes) {
    if (expected && await sha256Hex(cachedBytes) === expected) return { path: cached, source: "cache" };
    corrupted = true;
  }

  const remedy = `build it from source with \`${BUILD_COMMAND}\` (needs cargo and libclang)` +
    (checkout.rust ? " or `deno task build` in this checkout" : "") +
    ", or set MGNET_LIB_PATH to a libmgnet you built";
  const where = `${p.os}-${p.arch}, mgnet ${NATIVE_VERSION}`;
  if (!expected) {
    throw new NativeLibraryError(
      `mgnet: no prebuilt native library is released for ${where} (no sha256 for ${p.asset} in the package): ${remedy}`,
    );
  }
  const url = `${binaryBase()}/${p.asset}`;
  if (readEnv("MGNET_NO_DOWNLOAD") === "1") {
    throw new NativeLibraryError(
      `mgnet: the native library for ${where} is ${
        corrupted ? `corrupted in the cache (${cached})` : "not cached"
      } ` +
        `and MGNET_NO_DOWNLOAD=1 forbids fetching ${url}: unset it, or ${remedy}`,
    );
  }
  if (corrupted) console.error(`mgnet: ${cached} does not match its sha256; downloading it again`);

  let bytes: Uint8Array<ArrayBuffer>;
  try {
    const res = await fetch(url);
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`HTTP ${res.status} ${res.statusText}`.trim());
    }
    bytes = new Uint8Array(await res.arrayBuffer());
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable) throw denied(e);
    throw new NativeLibraryError(
      `mgnet: could not download the native library for ${where} from ${url}: ` +
        `${
          e instanceof Error ? e.message : String(e)
        }. Check the network (or MGNET_BINARY_BASE), or ${remedy}`,
      { cause: e },
    );
  }
  const got = await sha256Hex(bytes);
  if (got !== expected) {
    throw new NativeLibraryError(
      `mgnet: refused the native library downloaded from ${url} for ${where}: its sha256 is ${got}, ` +
        `the package expects ${expected} (a tampered or wrong asset; nothing was cached). ` +
        `Check MGNET_BINARY_BASE, or ${remedy}`,
    );
  }
  try {
    await Deno.mkdir(dir, { recursive: true });
    const tmp = await Deno.makeTempFile({ dir, prefix: `.${p.asset}.`, suffix: ".part" });
    try {
      await Deno.writeFile(tmp, bytes);
      await Deno.rename(tmp, cached);
    } catch (e) {
      await Deno.remove(tmp).catch(() => {});
      throw e;
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable) throw denied(e);
    throw new NativeLibraryError(
      `mgnet: could not write the native library into ${dir}: ${
        e instanceof Error ? e.message : String(e)
      }. ` +
        "Set MGNET_CACHE_DIR to a writable folder",
      { cause: e },
    );
  }
  return { path: cached, source: "download" };
}
