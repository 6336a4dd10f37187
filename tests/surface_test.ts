/**
 * The public surface as a user of the package sees it: every entry point in
 * deno.json documents cleanly, and what `mod.ts` exposes holds no native
 * handle, FFI table, internal tag, or name that shadows a Deno global.
 */
import assert from "node:assert/strict";
import { test } from "./helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

async function deno(args: string[]): Promise<{ ok: boolean; out: string }> {
  const r = await new Deno.Command(Deno.execPath(), { args, cwd: ROOT, stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  return { ok: r.success, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

async function entryPoints(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  return Object.values(config.exports as Record<string, string>);
}

test("surface: deno doc --lint over every entry point together is clean", async () => {
  const entries = await entryPoints();
  assert.ok(entries.includes("./mod.ts"));
  const r = await deno(["doc", "--lint", ...entries]);
  assert.ok(r.ok, r.out);
});

test("surface: mod.ts exposes no handle, FFI table, @internal member or shadowing name", async () => {
  const r = await deno(["doc", "--json", "mod.ts"]);
  assert.ok(r.ok, r.out);
  const doc = JSON.parse(r.out);
  const text = JSON.stringify(doc);
  const names: string[] = Object.values(doc.nodes as Record<string, { symbols: { name: string }[] }>)
    .flatMap((n) => n.symbols.map((s) => s.name));
  assert.ok(names.includes("Manager") && names.includes("serve"), "the doc was read");
  for (const shadow of ["HeadersInit", "BodyInit", "ErrorEvent", "CloseEvent"]) {
    assert.ok(!names.includes(shadow), `${shadow} shadows a Deno global`);
  }
  for (
    const internal of ["SYNC_WAIT_MS", "YIELD_MS", "STREAM_HIGH_WATER", "Loop", "ConnectionHost", "Symbols"]
  ) {
    assert.ok(!names.includes(internal), `${internal} is internal`);
  }
  assert.doesNotMatch(text, /"kind":\s*"internal"/, "no @internal tag");
  assert.doesNotMatch(text, /"repr":\s*"(ConnectionHost|Symbols|Loop)"/, "no internal type in a signature");
  assert.doesNotMatch(
    text,
    /"name":\s*"(sym|handle|slot)",\s*"kind":\s*"(property|getter)"/,
    "no native slot or handle",
  );
});
