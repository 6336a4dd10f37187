/**
 * HTTP client: fetches a URL with mgnet's client and prints the status
 * line, the headers and the body (streamed as it arrives).
 *
 *   deno task client [URL] [--method=POST] [--data=BODY] [--insecure]
 *
 * The URL defaults to the showcase's `http://127.0.0.1:8000/api/hello`.
 * `https:` URLs are verified against the system's CA bundle unless
 * `--insecure` is given. Failures print their kind (dns, refused, tls,
 * timeout, ...) and exit with status 1.
 */
import { ClientError, Manager } from "../mod.ts";

const flags = new Map<string, string>();
let url = "http://127.0.0.1:8000/api/hello";
for (const arg of Deno.args) {
  const m = /^--([a-z]+)(?:=(.*))?$/.exec(arg);
  if (m) flags.set(m[1], m[2] ?? "");
  else url = arg;
}

await using mgr = new Manager();
try {
  const res = await mgr.request(url, {
    method: flags.get("method") ?? (flags.has("data") ? "POST" : "GET"),
    body: flags.get("data"),
    headers: flags.has("data") ? { "content-type": "application/json" } : {},
    insecure: flags.has("insecure"),
    timeout: 10_000,
  });
  console.log(`${res.httpVersion} ${res.status} ${res.statusText}`);
  for (const [name, value] of res.headers) console.log(`${name}: ${value}`);
  console.log();
  for await (const chunk of res.body) await Deno.stdout.write(chunk);
} catch (e) {
  if (!(e instanceof ClientError)) throw e;
  console.error(`request failed (${e.kind}): ${e.message}`);
  Deno.exitCode = 1;
}
