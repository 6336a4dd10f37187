import assert from "node:assert/strict";
import { serve as mgServe } from "../mod.ts";
import {
  serveDir,
  type ServeDirOptions,
  serveDirResponse,
  serveFile,
  serveFileResponse,
} from "../src/http/static_files.ts";
import { exchange, serve, test, toolEnv } from "./helpers.ts";

const SECRET = "TOP SECRET: outside the root";

/** A web root beside a secret file, with symlinks in and out of the root. */
function makeTree(): { dir: string; root: string; big: Uint8Array } {
  const dir = Deno.makeTempDirSync({ prefix: "mgnet-static-" });
  const root = `${dir}/root`;
  Deno.mkdirSync(`${root}/sub`, { recursive: true });
  Deno.mkdirSync(`${root}/empty`);
  Deno.writeTextFileSync(`${dir}/outside.txt`, SECRET);
  Deno.writeTextFileSync(`${root}/index.html`, "<h1>home</h1>");
  Deno.writeTextFileSync(`${root}/a.txt`, "0123456789abcdefghij");
  Deno.writeTextFileSync(`${root}/style.css`, "body{}");
  Deno.writeTextFileSync(`${root}/sub/index.html`, "<p>sub</p>");
  Deno.writeTextFileSync(`${root}/space name.txt`, "spaced");
  Deno.writeTextFileSync(`${root}/.secret`, "dotfile");
  Deno.writeTextFileSync(`${root}/404.html`, "<h1>custom not found</h1>");
  Deno.symlinkSync(`${dir}/outside.txt`, `${root}/link_out`);
  Deno.symlinkSync(dir, `${root}/dir_out`);
  Deno.symlinkSync(`${root}/a.txt`, `${root}/link_in`);
  const big = new Uint8Array(1 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 8)) & 0xff;
  Deno.writeFileSync(`${root}/big.bin`, big);
  return { dir, root, big };
}

const tree = makeTree();
globalThis.addEventListener("unload", () => Deno.removeSync(tree.dir, { recursive: true }));
const opts = { prefix: "/static", notFoundPage: `${tree.root}/404.html` };

/** Ways out of the root, sent as raw bytes (nothing may normalise them). */
const TRAVERSALS = [
  "/static/../outside.txt",
  "/static/%2e%2e/outside.txt",
  "/static/%2E%2E/outside.txt",
  "/static/..%2foutside.txt",
  "/static/..%2Foutside.txt",
  "/static/%2e%2e%2foutside.txt",
  "/static/sub/../../outside.txt",
  "/static/sub/%2e%2e/%2e%2e/outside.txt",
  "/static/..%5coutside.txt",
  "/static/..\\outside.txt",
  "/static/%252e%252e/outside.txt",
  "/static/.%2e/outside.txt",
  "/static//etc/passwd",
  "/static/%2fetc%2fpasswd",
  "/static/link_out",
  "/static/dir_out/outside.txt",
  "/static/.secret",
  "/static/a.txt%00.html",
  "/static/%00",
  "/../outside.txt",
  "/static/%e0%a4%a",
  "/static/../../../../../../../../etc/passwd",
  "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
  "/static/..%2f..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
];

function staticServer() {
  return serve((ev) => {
    if (ev.path === "/hello") return void ev.reply(200, "hello");
    if (ev.path === "/stream") {
      const out = ev.respond(200);
      out.write("chunk-1;");
      out.write("chunk-2");
      return out.end();
    }
    if (ev.path === "/readme") return void serveFile(ev, `${tree.root}/a.txt`, { maxAge: 60 });
    serveDir(ev, tree.root, opts).catch((e) => console.error(e));
  });
}

test("static: a file with its type, validators and length", async () => {
  await using srv = staticServer();
  const res = await fetch(`http://127.0.0.1:${srv.port}/static/a.txt`);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "0123456789abcdefghij");
  assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.equal(res.headers.get("content-length"), "20");
  assert.equal(res.headers.get("accept-ranges"), "bytes");
  assert.match(res.headers.get("etag") ?? "", /^"[0-9a-f]+-[0-9a-f]+"$/);
  const mtime = Deno.statSync(`${tree.root}/a.txt`).mtime!;
  assert.equal(res.headers.get("last-modified"), mtime.toUTCString());
  const css = await fetch(`http://127.0.0.1:${srv.port}/static/style.css`);
  assert.equal(css.headers.get("content-type"), "text/css; charset=utf-8");
  await css.body?.cancel();
  const spaced = await fetch(`http://127.0.0.1:${srv.port}/static/space%20name.txt`);
  assert.equal(await spaced.text(), "spaced");
  const single = await fetch(`http://127.0.0.1:${srv.port}/readme`);
  assert.equal(single.headers.get("cache-control"), "max-age=60");
  assert.equal(await single.text(), "0123456789abcdefghij");
});

test("static: directories serve index.html; without a slash they redirect", async () => {
  await using srv = staticServer();
  const home = await fetch(`http://127.0.0.1:${srv.port}/static/`);
  assert.equal(home.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(await home.text(), "<h1>home</h1>");
  const r = await exchange(srv.port, "GET /static/sub?x=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  assert.equal(r.responses[0].status, 301);
  assert.equal(r.responses[0].headers.get("location"), "/static/sub/?x=1");
  const sub = await fetch(`http://127.0.0.1:${srv.port}/static/sub`); // fetch follows the redirect
  assert.equal(await sub.text(), "<p>sub</p>");
  const empty = await fetch(`http://127.0.0.1:${srv.port}/static/empty/`);
  assert.equal(empty.status, 404);
  assert.equal(await empty.text(), "<h1>custom not found</h1>");
});

test("static: the custom 404 page, also for HEAD; 405 for other methods", async () => {
  await using srv = staticServer();
  const res = await fetch(`http://127.0.0.1:${srv.port}/static/missing.txt`);
  assert.equal(res.status, 404);
  assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(await res.text(), "<h1>custom not found</h1>");
  const post = await fetch(`http://127.0.0.1:${srv.port}/static/a.txt`, { method: "POST", body: "x" });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
  await post.body?.cancel();
  const r = await exchange(srv.port, "HEAD /static/nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", {
    noBody: [true],
  });
  assert.equal(r.responses[0].status, 404);
  assert.equal(r.responses[0].headers.get("content-length"), "25");
  assert.ok(new TextDecoder().decode(r.raw).endsWith("\r\n\r\n"));
});

test("static: HEAD gets the length and validators, no body", async () => {
  await using srv = staticServer();
  const r = await exchange(
    srv.port,
    "HEAD /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\nGET /static/a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    { noBody: [true, false] },
  );
  assert.equal(r.responses.length, 2);
  assert.equal(r.responses[0].status, 200);
  assert.equal(r.responses[0].headers.get("content-length"), String(1 << 20));
  assert.ok(r.responses[0].headers.get("etag"));
  assert.equal(r.responses[1].text, "0123456789abcdefghij"); // no stray body bytes before it
});

test("static: If-None-Match and If-Modified-Since give 304; If-Match a 412", async () => {
  await using srv = staticServer();
  const url = `http://127.0.0.1:${srv.port}/static/a.txt`;
  const first = await fetch(url);
  await first.body?.cancel();
  const etag = first.headers.get("etag")!;
  const lastModified = first.headers.get("last-modified")!;
  const conditions: Record<string, string>[] = [
    { "if-none-match": etag },
    { "if-none-match": `"other", W/${etag}` }, // weak comparison
    { "if-none-match": "*" },
    { "if-modified-since": lastModified },
  ];
  for (const headers of conditions) {
    const res = await fetch(url, { headers });
    assert.equal(res.status, 304, JSON.stringify(headers));
    assert.equal(res.headers.get("etag"), etag);
    assert.equal(await res.text(), "");
  }
  // If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3).
  const changed = await fetch(url, {
    headers: { "if-none-match": '"other"', "if-modified-since": lastModified },
  });
  assert.equal(changed.status, 200);
  await changed.body?.cancel();
  const old = await fetch(url, { headers: { "if-modified-since": "Thu, 01 Jan 1970 00:00:00 GMT" } });
  assert.equal(old.status, 200);
  await old.body?.cancel();
  const mismatch = await fetch(url, { headers: { "if-match": '"other"' } });
  assert.equal(mismatch.status, 412);
  await mismatch.body?.cancel();
  const match = await fetch(url, { headers: { "if-match": etag } });
  assert.equal(match.status, 200);
  await match.body?.cancel();
  const unmodified = await fetch(url, {
    headers: { "if-unmodified-since": "Thu, 01 Jan 1970 00:00:00 GMT" },
  });
  assert.equal(unmodified.status, 412);
  await unmodified.body?.cancel();
});

test("static: single ranges, suffixes, open ends and If-Range", async () => {
  await using srv = staticServer();
  const url = `http://127.0.0.1:${srv.port}/static/a.txt`;
  const cases: [string, string, string][] = [
    ["bytes=0-4", "01234", "bytes 0-4/20"],
    ["bytes=15-", "fghij", "bytes 15-19/20"],
    ["bytes=-3", "hij", "bytes 17-19/20"],
    ["bytes=18-100", "ij", "bytes 18-19/20"],
    ["bytes=-100", "0123456789abcdefghij", "bytes 0-19/20"],
  ];
  for (const [range, body, contentRange] of cases) {
    const res = await fetch(url, { headers: { range } });
    assert.equal(res.status, 206, range);
    assert.equal(res.headers.get("content-range"), contentRange);
    assert.equal(res.headers.get("content-length"), String(body.length));
    assert.equal(await res.text(), body);
  }
  const etag = (await fetch(url, { method: "HEAD" })).headers.get("etag")!;
  const current = await fetch(url, { headers: { range: "bytes=0-1", "if-range": etag } });
  assert.equal(current.status, 206);
  await current.body?.cancel();
  const stale = await fetch(url, { headers: { range: "bytes=0-1", "if-range": '"stale"' } });
  assert.equal(stale.status, 200);
  assert.equal(await stale.text(), "0123456789abcdefghij");
});

test("static: unsatisfiable ranges get 416; malformed ones are ignored", async () => {
  await using srv = staticServer();
  const url = `http://127.0.0.1:${srv.port}/static/a.txt`;
  for (const range of ["bytes=20-", "bytes=100-200", "bytes=50-60, 70-80, 90-"]) {
    const res = await fetch(url, { headers: { range } });
    assert.equal(res.status, 416, range);
    assert.equal(res.headers.get("content-range"), "bytes */20");
    await res.body?.cancel();
  }
  for (const range of ["bytes=5-2", "items=0-1", "bytes=abc", "bytes=", "bytes=-"]) {
    const res = await fetch(url, { headers: { range } });
    assert.equal(res.status, 200, range);
    assert.equal(await res.text(), "0123456789abcdefghij");
  }
});

test("static: several ranges arrive as multipart/byteranges", async () => {
  await using srv = staticServer();
  const res = await fetch(`http://127.0.0.1:${srv.port}/static/a.txt`, {
    headers: { range: "bytes=0-1, 100-200, -2" },
  });
  assert.equal(res.status, 206);
  const type = res.headers.get("content-type")!;
  const boundary = /^multipart\/byteranges; boundary=(.+)$/.exec(type)?.[1];
  assert.ok(boundary, type);
  const body = await res.text();
  assert.equal(Number(res.headers.get("content-length")), new TextEncoder().encode(body).length);
  const parts = body.split(`--${boundary}`);
  assert.equal(parts.length, 4); // "", two parts, "--\r\n"
  assert.match(parts[1], /content-range: bytes 0-1\/20\r\n\r\n01\r\n$/);
  assert.match(
    parts[2],
    /content-type: text\/plain; charset=utf-8\r\ncontent-range: bytes 18-19\/20\r\n\r\nij\r\n$/,
  );
  assert.equal(parts[3], "--\r\n");
});

test("static: a large file streams whole, and ranges of it too", async () => {
  await using srv = staticServer();
  const res = await fetch(`http://127.0.0.1:${srv.port}/static/big.bin`);
  assert.equal(res.headers.get("content-type"), "application/octet-stream");
  assert.equal(res.headers.get("content-length"), String(tree.big.length));
  assert.deepEqual(new Uint8Array(await res.arrayBuffer()), tree.big);
  const part = await fetch(`http://127.0.0.1:${srv.port}/static/big.bin`, {
    headers: { range: "bytes=1000-700000" },
  });
  assert.equal(part.status, 206);
  assert.deepEqual(new Uint8Array(await part.arrayBuffer()), tree.big.subarray(1000, 700001));
});

test("static: curl downloads a range and a whole file", async () => {
  await using srv = staticServer();
  const out = await new Deno.Command("curl", {
    args: ["-s", "-r", "2-5", "-w", " %{http_code}", `http://127.0.0.1:${srv.port}/static/a.txt`],
    env: toolEnv,
  }).output();
  assert.equal(new TextDecoder().decode(out.stdout), "2345 206");
  const whole = await new Deno.Command("curl", {
    args: ["-s", `http://127.0.0.1:${srv.port}/static/big.bin`],
    env: toolEnv,
  }).output();
  assert.deepEqual(whole.stdout, tree.big);
});

test("static: no way out of the root (dot segments, encodings, symlinks, dotfiles)", async () => {
  await using srv = staticServer();
  for (const path of TRAVERSALS) {
    const r = await exchange(srv.port, `GET ${path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`);
    const res = r.responses[0];
    if (res === undefined) {
      assert.equal(r.closed, true, path); // refused by the parser (e.g. a raw backslash is fine, NUL is not)
      continue;
    }
    assert.ok(res.status === 404 || res.status === 400, `${path}: ${res.status}`);
    assert.ok(!res.text.includes(SECRET) && !res.text.includes("root:"), path);
  }
  // curl with --path-as-is sends the dot segments unchanged.
  const out = await new Deno.Command("curl", {
    args: ["-s", "--path-as-is", `http://127.0.0.1:${srv.port}/static/../../../../etc/passwd`],
    env: toolEnv,
  }).output();
  assert.ok(!new TextDecoder().decode(out.stdout).includes("root:"));
  // A symlink that stays inside the root is followed.
  const inside = await fetch(`http://127.0.0.1:${srv.port}/static/link_in`);
  assert.equal(await inside.text(), "0123456789abcdefghij");
});

test("static: a pipelined mix of replies, chunked streams and files keeps its order", async () => {
  await using srv = staticServer();
  const paths = [
    "/static/a.txt",
    "/stream",
    "/hello",
    "/static/missing",
    "/static/big.bin",
    "/hello",
    "/stream",
  ];
  const req = paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: t\r\n\r\n`).join("");
  const r = await exchange(srv.port, req, { responses: paths.length });
  assert.deepEqual(r.responses.map((x) => x.status), [200, 200, 200, 404, 200, 200, 200]);
  assert.equal(r.responses[0].text, "0123456789abcdefghij");
  assert.equal(r.responses[1].text, "chunk-1;chunk-2");
  assert.equal(r.responses[2].text, "hello");
  assert.equal(r.responses[3].text, "<h1>custom not found</h1>");
  assert.deepEqual(r.responses[4].body, tree.big);
  assert.equal(r.responses[5].text, "hello");
  assert.equal(r.responses[6].text, "chunk-1;chunk-2");
});

test("static: serveDirResponse() in a serve() handler", async () => {
  await using server = mgServe(
    { port: 0, hostname: "127.0.0.1", onListen: false },
    (req) => serveDirResponse(req, tree.root, opts),
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  const res = await fetch(`${base}/static/a.txt`);
  assert.equal(await res.text(), "0123456789abcdefghij");
  const etag = res.headers.get("etag")!;
  const cachedRes = await fetch(`${base}/static/a.txt`, { headers: { "if-none-match": etag } });
  assert.equal(cachedRes.status, 304);
  await cachedRes.body?.cancel();
  const range = await fetch(`${base}/static/a.txt`, { headers: { range: "bytes=-4" } });
  assert.equal(range.status, 206);
  assert.equal(await range.text(), "ghij");
  const big = await fetch(`${base}/static/big.bin`);
  assert.equal(big.headers.get("content-length"), String(tree.big.length));
  assert.deepEqual(new Uint8Array(await big.arrayBuffer()), tree.big);
  // Traversal attempts go as raw bytes: fetch would normalise "/static/../x"
  // to "/x" before sending, and the server would never see the dot segments.
  for (const path of TRAVERSALS) {
    const r = await exchange(
      server.addr.port,
      `GET ${path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`,
    );
    const res = r.responses[0];
    if (res === undefined) {
      assert.equal(r.closed, true, path); // refused by the parser
      continue;
    }
    assert.ok(res.status === 404 || res.status === 400, `${path}: ${res.status}`);
    assert.ok(!res.text.includes(SECRET) && !res.text.includes("root:"), path);
  }
  const head = await exchange(server.addr.port, "HEAD /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n", {
    responses: 1,
    noBody: [true],
  });
  assert.equal(head.responses[0].headers.get("content-length"), String(tree.big.length));
});

test("static: serveFileResponse() answers GET, HEAD, conditionals, ranges, 404 and 405", async () => {
  await using server = mgServe(
    { port: 0, hostname: "127.0.0.1", onListen: false },
    (req) => {
      const p = new URL(req.url).pathname;
      if (p === "/missing") return serveFileResponse(req, `${tree.root}/nope.txt`, opts);
      return serveFileResponse(req, `${tree.root}/a.txt`, { maxAge: 30 });
    },
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  const res = await fetch(`${base}/file`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.equal(res.headers.get("cache-control"), "max-age=30");
  assert.equal(await res.text(), "0123456789abcdefghij");
  const etag = res.headers.get("etag")!;
  const again = await fetch(`${base}/file`, { headers: { "if-none-match": etag } });
  assert.equal(again.status, 304);
  await again.body?.cancel();
  const range = await fetch(`${base}/file`, { headers: { range: "bytes=3-5" } });
  assert.equal(range.status, 206);
  assert.equal(await range.text(), "345");
  const head = await exchange(
    server.addr.port,
    "HEAD /file HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    {
      noBody: [true],
    },
  );
  assert.equal(head.responses[0].headers.get("content-length"), "20");
  const raw = new TextDecoder().decode(head.raw);
  assert.equal(raw.indexOf("\r\n\r\n") + 4, raw.length, "HEAD: nothing after the head");
  const missing = await fetch(`${base}/missing`);
  assert.equal(missing.status, 404);
  assert.equal(await missing.text(), "<h1>custom not found</h1>");
  const post = await fetch(`${base}/file`, { method: "POST", body: "x" });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
  await post.body?.cancel();
});

test("static options: index, dotfiles, headers and contentTypes (serveDir and serveDirResponse)", async (t) => {
  Deno.writeTextFileSync(`${tree.root}/sub/default.htm`, "<p>default</p>");
  Deno.writeTextFileSync(`${tree.root}/data.custom`, "custom type");
  const variants: [string, Record<string, unknown>][] = [
    ["default index", {}],
    ["index: default.htm", { index: "default.htm" }],
    ["index: false", { index: false }],
    ["dotfiles: true", { dotfiles: true }],
    ["headers", { headers: { "x-extra": "on files", "x-frame-options": "DENY" } }],
    ["contentTypes", { contentTypes: { txt: "text/x-override", custom: "application/x-custom" } }],
  ];
  const servers = {
    serveDir: (o: ServeDirOptions) => serve((ev) => void serveDir(ev, tree.root, o)),
    serveDirResponse: (o: ServeDirOptions) => {
      const s = mgServe(
        { port: 0, hostname: "127.0.0.1", onListen: false },
        (req) => serveDirResponse(req, tree.root, o),
      );
      return Object.assign(s, { port: s.addr.port });
    },
  };
  for (const [api, make] of Object.entries(servers)) {
    await t.step(api, async () => {
      const got: Record<string, string[]> = {};
      for (const [name, o] of variants) {
        await using srv = make(o as ServeDirOptions);
        const ask = async (p: string) => {
          const r = await fetch(`http://127.0.0.1:${srv.port}${p}`);
          const text = await r.text();
          return `${r.status} ${r.headers.get("content-type")} ${r.headers.get("x-extra")} ${text}`;
        };
        got[name] = [
          await ask("/sub/"),
          await ask("/.secret"),
          await ask("/a.txt"),
          await ask("/data.custom"),
        ];
      }
      const plain = "text/plain; charset=utf-8";
      const html = "text/html; charset=utf-8";
      const nf = `404 ${plain} null Not Found`;
      assert.deepEqual(got, {
        "default index": [
          `200 ${html} null <p>sub</p>`,
          nf,
          `200 ${plain} null 0123456789abcdefghij`,
          `200 application/octet-stream null custom type`,
        ],
        "index: default.htm": [
          `200 ${html} null <p>default</p>`,
          nf,
          `200 ${plain} null 0123456789abcdefghij`,
          `200 application/octet-stream null custom type`,
        ],
        "index: false": [
          nf,
          nf,
          `200 ${plain} null 0123456789abcdefghij`,
          `200 application/octet-stream null custom type`,
        ],
        "dotfiles: true": [
          `200 ${html} null <p>sub</p>`,
          "200 application/octet-stream null dotfile",
          `200 ${plain} null 0123456789abcdefghij`,
          `200 application/octet-stream null custom type`,
        ],
        "headers": [
          `200 ${html} on files <p>sub</p>`,
          nf,
          `200 ${plain} on files 0123456789abcdefghij`,
          `200 application/octet-stream on files custom type`,
        ],
        "contentTypes": [
          `200 ${html} null <p>sub</p>`,
          nf,
          "200 text/x-override null 0123456789abcdefghij",
          "200 application/x-custom null custom type",
        ],
      });
    });
  }
});
