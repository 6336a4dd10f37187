/**
 * Writes the release assets and the sha256 sums the package ships.
 *
 *     deno task release:assets              # build this platform, copy into dist/, record its sum
 *     deno task release:assets --no-build   # the same from the existing rust/target build
 *     deno task release:assets --sums-only  # record the sums of every dist/libmgnet-* (the release
 *                                           # workflow runs this after gathering all platforms)
 *
 * Output: `dist/libmgnet-<os>-<arch>.<so|dylib|dll>`, `dist/SHA256SUMS`
 * (sha256sum format), and `src/core/native_sums.ts`, whose entries are
 * merged (the other platforms' sums stay) and whose version is deno.json's.
 */
import { buildNative, SetupError } from "./build.ts";
import { platform, sha256Hex } from "../src/core/native.ts";
import { NATIVE_SUMS } from "../src/core/native_sums.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const DIST = `${ROOT}dist`;
const SUMS_FILE = `${ROOT}src/core/native_sums.ts`;
const ASSET = /^libmgnet-[a-z0-9]+-[a-z0-9_]+\.(so|dylib|dll)$/;

/**
 * The text of src/core/native_sums.ts for these sums.
 *
 * @param version The package version.
 * @param sums Asset name to hex sha256.
 * @param old The file's current text (its head comment is kept).
 * @returns The file's text (formatted as `deno fmt` would).
 */
export function sumsModule(version: string, sums: Record<string, string>, old: string): string {
  const head = old.slice(0, old.indexOf("/** The package version"));
  const entries = Object.keys(sums).sort().map((k) => `  "${k}": "${sums[k]}",\n`).join("");
  return head +
    "/** The package version these sums belong to (kept equal to deno.json's `version`). */\n" +
    `export const NATIVE_VERSION = "${version}";\n\n` +
    "/** Asset name to lowercase hex sha256. */\n" +
    `export const NATIVE_SUMS: Readonly<Record<string, string>> = {${entries ? `\n${entries}` : ""}};\n`;
}

async function main(args: string[]): Promise<void> {
  const version = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).version as string;
  await Deno.mkdir(DIST, { recursive: true });
  if (!args.includes("--sums-only")) {
    const built = args.includes("--no-build")
      ? `${ROOT}rust/target/release/${platform().cargoName}`
      : await buildNative();
    await Deno.copyFile(built, `${DIST}/${platform().asset}`);
  }
  // --sums-only lists exactly what dist/ holds; a platform build keeps the other platforms' sums.
  const sums: Record<string, string> = args.includes("--sums-only") ? {} : { ...NATIVE_SUMS };
  for await (const e of Deno.readDir(DIST)) {
    if (e.isFile && ASSET.test(e.name)) {
      sums[e.name] = await sha256Hex(await Deno.readFile(`${DIST}/${e.name}`));
    }
  }
  await Deno.writeTextFile(
    `${DIST}/SHA256SUMS`,
    Object.keys(sums).sort().map((k) => `${sums[k]}  ${k}\n`).join(""),
  );
  await Deno.writeTextFile(SUMS_FILE, sumsModule(version, sums, await Deno.readTextFile(SUMS_FILE)));
  for (const k of Object.keys(sums).sort()) console.log(`${sums[k]}  ${k}`);
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    if (e instanceof SetupError) {
      console.error(`mgnet release: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  }
}
