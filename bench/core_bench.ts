/**
 * Micro costs of mgnet's core: FFI calls, one idle poll, and lazy decoding
 * of a request event. `deno task bench` runs this file.
 *
 * The request events come from a real manager: 64 pipelined requests are
 * sent over a socket and collected once, then their fields are read in the
 * benchmarks (decoding is lazy, so every read decodes from the batch).
 */
import { type HttpRequestEvent, Manager } from "../mod.ts";
import { lib } from "../src/core/ffi.ts";

const sym = lib();
const idle = sym.mgnet_manager_new(0, 0, 0, 0, -1);
const arena = new Uint8Array(1 << 20);
const epfd = sym.mgnet_wait_fd(idle);

const mgr = new Manager();
const { port } = mgr.listen("http://127.0.0.1:0");
const conn = await Deno.connect({ hostname: "127.0.0.1", port });
const request = "POST /api/items?id=42&sort=desc HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench/1.0\r\n" +
  "Accept: application/json\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n" +
  '{"name":"widget"}';
await conn.write(new TextEncoder().encode(request.repeat(64)));
const events: HttpRequestEvent[] = [];
for await (const ev of mgr) {
  if (ev.type === "http") events.push(ev);
  if (events.length === 64) break;
}
conn.close();
let i = 0;
const next = () => events[i++ & 63];

Deno.bench("ffi: call floor (mgnet_abi_version)", () => {
  sym.mgnet_abi_version();
});
Deno.bench("ffi: mgnet_next_timeout", () => {
  sym.mgnet_next_timeout(idle);
});
Deno.bench("ffi: one idle poll (flush + mg_mgr_poll(0) + copy)", () => {
  sym.mgnet_poll(idle, arena, 0, arena.length);
});
Deno.bench("ffi: readiness check (poll(2) on the epoll fd)", () => {
  sym.mgnet_wait_sync(epfd, 0);
});
Deno.bench("decode: method + path", () => {
  const ev = next();
  ev.method;
  ev.path;
});
Deno.bench("decode: one header by name", () => {
  next().header("content-type");
});
Deno.bench("decode: body view + text()", () => {
  next().text();
});
Deno.bench("decode: searchParams", () => {
  next().searchParams.get("id");
});
Deno.bench("decode: headers as a Headers object", () => {
  next().headers;
});

const hello = JSON.stringify({ message: "Hello, World!" });
const scratch = new Uint8Array(1024);
const enc = new TextEncoder();
Deno.bench("encode: TextEncoder.encodeInto, 27-char body", { group: "encode", baseline: true }, () => {
  enc.encodeInto(hello, scratch);
});
Deno.bench("encode: ASCII loop (what reply() uses), 27-char body", { group: "encode" }, () => {
  for (let j = 0; j < hello.length; j++) scratch[j] = hello.charCodeAt(j);
});

globalThis.addEventListener("unload", () => {
  sym.mgnet_manager_free(idle);
});
