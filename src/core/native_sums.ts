/**
 * The sha256 of every prebuilt native library released for this version,
 * keyed by asset name. Written by `deno task release:assets`
 * (scripts/release_assets.ts), which merges this platform's entry into the
 * ones already here; the release workflow gathers every platform's entry
 * before publishing. The loader (src/core/native.ts) refuses a download or
 * a cached file whose sum is not listed here.
 *
 * @module
 */

/** The package version these sums belong to (kept equal to deno.json's `version`). */
export const NATIVE_VERSION = "0.1.0";

/** Asset name to lowercase hex sha256. */
export const NATIVE_SUMS: Readonly<Record<string, string>> = {};
