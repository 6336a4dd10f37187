/**
 * Plays the JSR user: the files `deno publish --dry-run` lists, copied alone
 * into a temporary folder (no rust/target, no Mongoose sources), with
 * `MGNET_BINARY_BASE` pointing at a local HTTP server that serves a dist/
 * folder and an empty cache folder. A child process importing the copy's
 * mod.ts, with the narrow permissions src/core/native.ts documents, must
 * download, verify, cache and load the library, and serve a request.
 *
 * dist/ holds this checkout's build under its release name; the copy's
 * src/core/native_sums.ts is rewritten with its sha256, as
 * `deno task release:assets` does for a release.
 */
import assert from "node:assert/strict";
import { test } from "./helpers.ts";
import { LOADER_ENV, platform, sha256Hex } from "../src/core/native.ts";
import { sumsModule } from "../scripts/release_assets.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const DENO = Deno.execPath();
const P = platform();

/** The files `deno publish --dry-run` would publish, relative to the root. */
async function publishedFiles(): Promise<string[]> {
  const out = await new Deno.Command(DENO, {
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `deno publish --dry-run failed:\n${text}`);
  const prefix = `file://${ROOT}`;
  const files: string[] = [];
  for (const line of text.split("\n")) {
    const m = line.trim().match(/^(file:\/\/\S+) \([0-9.]+[KMG]?B\)$/);
    if (m && m[1].startsWith(prefix)) files.push(decodeURIComponent(m[1].slice(prefix.length)));
  }
  return files;
}

/** A static file server on an ephemeral port that counts requests. */
function serveDir(dir: string): { base: string; hits: () => number; close: () => Promise<void> } {
  let hits = 0;
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    hits++;
    const name = new URL(req.url).pathname.slice(1);
    try {
      return new Response(await Deno.readFile(`${dir}/${name}`));
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  return {
    base: `http://127.0.0.1:${server.addr.port}`,
    hits: () => hits,
    close: () => server.shutdown(),
  };
}

interface Run {
  ok: boolean;
  out: string;
  err: string;
}

/** Runs the user's program against the copy, with the narrow permissions the loader documents. */
async function runUser(
  tmp: string,
  cache: string,
  base: string,
  opts: { env?: Record<string, string>; noWrite?: boolean } = {},
): Promise<Run> {
  const flags = [
    "--allow-ffi",
    `--allow-read=${tmp}/pkg,${cache}`,
    ...(opts.noWrite ? [] : [`--allow-write=${cache}`]),
    "--allow-net=127.0.0.1",
    `--allow-env=${LOADER_ENV.join(",")}`,
  ];
  const out = await new Deno.Command(DENO, {
    args: ["run", "--no-config", "--no-lock", ...flags, `${tmp}/user.ts`],
    cwd: tmp,
    stdout: "piped",
    stderr: "piped",
    env: {
      NO_COLOR: "1",
      MGNET_LIB_PATH: "",
      MGNET_NO_DOWNLOAD: "",
      MGNET_CACHE_DIR: cache,
      MGNET_BINARY_BASE: base,
      ...opts.env,
    },
  }).output();
  return {
    ok: out.success,
    out: new TextDecoder().decode(out.stdout),
    err: new TextDecoder().decode(out.stderr),
  };
}

const USER_PROGRAM = `import { serve } from "./pkg/mod.ts";
const server = serve({ port: 0, hostname: "127.0.0.1", onListen: false }, () => new Response("hello from jsr"));
const res = await fetch(\`http://127.0.0.1:\${server.addr.port}/\`);
console.log(res.status, await res.text());
await server.shutdown();
`;

async function cacheListing(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) names.push(e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return names.sort();
}

test(
  "jsr user: the published files download, verify, cache and load the library",
  { timeoutMs: 180_000 },
  async (t) => {
    const built = `${ROOT}rust/target/release/${P.cargoName}`;
    const library = await Deno.readFile(built); // deno task test builds it first
    const sum = await sha256Hex(library);
    const tmp = await Deno.makeTempDir({ prefix: "mgnet-jsr-user-" });
    try {
      const files = await publishedFiles();
      assert.ok(files.includes("mod.ts") && files.includes("src/core/native.ts"), files.join(" "));
      for (const need of ["rust/Cargo.toml", "rust/Cargo.lock", "rust/build.rs", "rust/src/lib.rs"]) {
        assert.ok(files.includes(need), `the package carries ${need}`);
      }
      assert.ok(
        files.includes("vendor/mongoose/mongoose.lock.json") && files.includes("vendor/mongoose/fetch.ts"),
      );
      assert.ok(files.includes("scripts/build_from_source.ts"));
      assert.deepEqual(
        files.filter((f) =>
          f.startsWith("rust/target/") || /^vendor\/mongoose\/mongoose\.[ch]$/.test(f) ||
          f.startsWith("node_modules/")
        ),
        [],
      );
      for (const f of files) {
        await Deno.mkdir(`${tmp}/pkg/${f}`.replace(/\/[^/]*$/, ""), { recursive: true });
        await Deno.copyFile(`${ROOT}${f}`, `${tmp}/pkg/${f}`);
      }
      // What `deno task release:assets` produces for this platform, without touching the checkout.
      const sumsPath = `${tmp}/pkg/src/core/native_sums.ts`;
      const version = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).version;
      await Deno.writeTextFile(
        sumsPath,
        sumsModule(version, { [P.asset]: sum }, await Deno.readTextFile(sumsPath)),
      );
      await Deno.mkdir(`${tmp}/dist`);
      await Deno.writeFile(`${tmp}/dist/${P.asset}`, library);
      const tampered = library.slice();
      tampered[tampered.length >> 1] ^= 0xff;
      await Deno.mkdir(`${tmp}/evil`);
      await Deno.writeFile(`${tmp}/evil/${P.asset}`, tampered);
      await Deno.writeTextFile(`${tmp}/user.ts`, USER_PROGRAM);

      const cache = `${tmp}/cache`;
      const entry = `${cache}/${version}/${P.asset}`;

      await t.step("first run: downloads from MGNET_BINARY_BASE and serves a request", async () => {
        const server = serveDir(`${tmp}/dist`);
        try {
          const r = await runUser(tmp, cache, server.base);
          assert.ok(r.ok, r.err);
          assert.equal(r.out, "200 hello from jsr\n");
          assert.equal(server.hits(), 1);
          assert.equal(await sha256Hex(await Deno.readFile(entry)), sum);
          assert.deepEqual(await cacheListing(`${cache}/${version}`), [P.asset], "no temporary file is left");
        } finally {
          await server.close();
        }
      });

      await t.step("second run: the server is gone, the cache serves", async () => {
        const server = serveDir(`${tmp}/dist`);
        const base = server.base;
        await server.close();
        const r = await runUser(tmp, cache, base, { noWrite: true });
        assert.ok(r.ok, r.err);
        assert.equal(r.out, "200 hello from jsr\n");
      });

      await t.step("a corrupted cache entry is detected and replaced", async () => {
        const bad = library.slice(0, 4096);
        await Deno.writeFile(entry, bad);
        const server = serveDir(`${tmp}/dist`);
        try {
          const r = await runUser(tmp, cache, server.base);
          assert.ok(r.ok, r.err);
          assert.equal(r.out, "200 hello from jsr\n");
          assert.match(r.err, /does not match its sha256; downloading it again/);
          assert.equal(server.hits(), 1);
          assert.equal(await sha256Hex(await Deno.readFile(entry)), sum);
        } finally {
          await server.close();
        }
      });

      await t.step("a tampered asset is refused with a clear error and nothing is cached", async () => {
        const server = serveDir(`${tmp}/evil`);
        const fresh = `${tmp}/cache2`;
        try {
          const r = await runUser(tmp, fresh, server.base);
          assert.equal(r.ok, false);
          assert.equal(r.out, "");
          const url = `${server.base}/${P.asset}`;
          assert.ok(
            r.err.includes(`refused the native library downloaded from ${url} for ${P.os}-${P.arch}`),
            r.err,
          );
          assert.ok(r.err.includes(`the package expects ${sum}`), r.err);
          assert.ok(r.err.includes("nothing was cached"), r.err);
          assert.ok(r.err.includes("deno run -A jsr:@mgnet/mgnet/build"), r.err);
          assert.equal(server.hits(), 1);
          assert.deepEqual(await cacheListing(`${fresh}/${version}`), []);
        } finally {
          await server.close();
        }
      });

      await t.step("a missing asset names the URL and the HTTP status", async () => {
        const server = serveDir(`${tmp}/nowhere`);
        try {
          const r = await runUser(tmp, `${tmp}/cache3`, server.base);
          assert.equal(r.ok, false);
          assert.ok(
            r.err.includes(
              `could not download the native library for ${P.os}-${P.arch}, mgnet ${version} from ` +
                `${server.base}/${P.asset}: HTTP 404 Not Found`,
            ),
            r.err,
          );
        } finally {
          await server.close();
        }
      });

      await t.step("MGNET_NO_DOWNLOAD=1 with an empty cache fetches nothing and says so", async () => {
        const server = serveDir(`${tmp}/dist`);
        try {
          const r = await runUser(tmp, `${tmp}/cache4`, server.base, { env: { MGNET_NO_DOWNLOAD: "1" } });
          assert.equal(r.ok, false);
          assert.ok(r.err.includes("is not cached and MGNET_NO_DOWNLOAD=1 forbids fetching"), r.err);
          assert.equal(server.hits(), 0);
        } finally {
          await server.close();
        }
      });

      await t.step("a denied write reaches the user as itself, with the flags to add", async () => {
        const server = serveDir(`${tmp}/dist`);
        const fresh = `${tmp}/cache5`;
        try {
          const r = await runUser(tmp, fresh, server.base, { noWrite: true });
          assert.equal(r.ok, false);
          assert.match(r.err, /NotCapable: Requires write access/);
          assert.ok(r.err.includes(`--allow-write=${fresh}/${version}`), r.err);
          assert.deepEqual(await cacheListing(`${fresh}/${version}`), []);
        } finally {
          await server.close();
        }
      });
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
);
