/**
 * Native utilities against the platform (docs/architecture.md, "Native
 * utilities"): JSON value lookup by path (`mg_json_get` + parsing only the
 * value) against `JSON.parse(doc).a.b[1]`, for 100 B, 10 KB and 1 MB
 * documents, each both as a string (the native side pays UTF-8 encoding)
 * and as bytes (the platform pays UTF-8 decoding); glob match with
 * captures (`mg_match`) against a RegExp and a URLPattern built once.
 *
 *   deno bench --allow-all bench/util_bench.ts
 */
import { jsonGet } from "../src/util/json.ts";
import { globMatch } from "../src/util/glob.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A document of about `size` bytes whose `$.a.b[1]` is "found", placed first or last. */
function doc(size: number, targetLast: boolean): string {
  const filler: Record<string, unknown>[] = [];
  let s = 0;
  for (let i = 0; s < size; i++) {
    const item = { id: i, name: `item ${i}`, tags: ["x", "y"], price: i * 1.5 };
    filler.push(item);
    s += JSON.stringify(item).length + 1;
  }
  const target = { b: [0, "found", 2] };
  return JSON.stringify(targetLast ? { filler, a: target } : { a: target, filler });
}

for (const [label, size] of [["100B", 60], ["10KB", 10_000], ["1MB", 1_000_000]] as const) {
  for (const last of [false, true]) {
    const text = doc(size, last);
    const bytes = enc.encode(text);
    const where = last ? "value last" : "value first";
    const group = `json ${label} ${where}`;
    if (jsonGet(text, "$.a.b[1]") !== "found") throw new Error("bench document is wrong");
    Deno.bench(`JSON.parse(string).a.b[1]`, { group, baseline: true }, () => {
      if ((JSON.parse(text) as any).a.b[1] !== "found") throw new Error();
    });
    Deno.bench(`native jsonGet(string) (encodes)`, { group }, () => {
      if (jsonGet(text, "$.a.b[1]") !== "found") throw new Error();
    });
    Deno.bench(`JSON.parse(decode(bytes)).a.b[1]`, { group }, () => {
      if ((JSON.parse(dec.decode(bytes)) as any).a.b[1] !== "found") throw new Error();
    });
    Deno.bench(`native jsonGet(bytes)`, { group }, () => {
      if (jsonGet(bytes, "$.a.b[1]") !== "found") throw new Error();
    });
  }
}

const path = "/api/users/42/posts/7";
const re = /^\/api\/([^/]*)\/([^/]*)\/posts\/([^/]*)$/;
const pattern = new URLPattern({ pathname: "/api/:a/:b/posts/:c" });
if (globMatch(path, "/api/*/*/posts/*")?.join() !== "users,42,7") throw new Error("glob");
Deno.bench("RegExp (built once) exec", { group: "glob", baseline: true }, () => {
  const m = re.exec(path);
  if (m![3] !== "7") throw new Error();
});
Deno.bench("URLPattern (built once) exec", { group: "glob" }, () => {
  const m = pattern.exec({ pathname: path });
  if (m!.pathname.groups.c !== "7") throw new Error();
});
Deno.bench("native globMatch (mg_match)", { group: "glob" }, () => {
  if (globMatch(path, "/api/*/*/posts/*")![2] !== "7") throw new Error();
});
