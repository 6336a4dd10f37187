/**
 * HTTP/1.1 conformance (RFC 9112 and RFC 9110, origin-server duties): one
 * test per audited rule of docs/http-conformance.md. Every test sends the
 * same bytes to mgnet and to Deno.serve and checks both: mgnet against the
 * RFC, Deno.serve against the RFC too unless the audit records that it
 * differs (then its observed behaviour is asserted, so the audit stays true).
 */
import assert from "node:assert/strict";
import type { HttpRequestEvent } from "../mod.ts";
import { type Exchange, exchange, serve, test, toolEnv } from "./helpers.ts";

/** What both servers' handlers answer: method, path, host and body length. */
function describe(method: string, path: string, host: string | undefined, bodyLen: number): string {
  return `${method} ${path} host=${host ?? "-"} body=${bodyLen}`;
}

function mgnetHandler(ev: HttpRequestEvent): void {
  if (ev.path === "/204") return void ev.reply(204);
  if (ev.path === "/304") return void ev.reply(304);
  ev.reply(200, describe(ev.method, ev.path, ev.host, ev.body.length));
}

async function denoHandler(req: Request): Promise<Response> {
  const url = new URL(req.url);
  if (url.pathname === "/204") return new Response(null, { status: 204 });
  if (url.pathname === "/304") return new Response(null, { status: 304 });
  const body = await req.arrayBuffer();
  return new Response(describe(req.method, url.pathname, url.host, body.byteLength));
}

type Check = (r: Exchange) => void;

interface Rule {
  /** Row id in docs/http-conformance.md. */
  id: string;
  title: string;
  request: string;
  /** Options for reading the answer. */
  responses?: number;
  noBody?: boolean[];
  closeWrite?: boolean;
  /** Send one more request after `responses` and record whether it is answered. */
  probe?: boolean;
  /** The RFC's requirement, checked on mgnet (and on Deno.serve unless `deno` is set). */
  expect: Check;
  /** Deno.serve's observed behaviour where it differs from the RFC. */
  deno?: Check;
}

const ok = (body?: string, responses = 1): Check => (r) => {
  assert.equal(r.responses.length, responses, `got ${new TextDecoder().decode(r.raw).slice(0, 200)}`);
  assert.equal(r.responses[0].status, 200);
  if (body !== undefined) assert.equal(r.responses[0].text, body);
};
const rejected = (status: number): Check => (r) => {
  assert.equal(r.responses.length, 1, `got ${new TextDecoder().decode(r.raw).slice(0, 200)}`);
  assert.equal(r.responses[0].status, status);
  assert.equal(r.closed, true, "the connection is closed after the error response");
};
const closedSilently: Check = (r) => {
  assert.equal(r.responses.length, 0);
  assert.equal(r.closed, true);
};

/** The connection carried one head and not a byte more (read to EOF). */
const headOnly = (r: Exchange): boolean => {
  const raw = new TextDecoder().decode(r.raw);
  return r.closed && raw.indexOf("\r\n\r\n") + 4 === raw.length;
};

const CLOSE = "Connection: close\r\n";
const GET = (path = "/", extra = "") => `GET ${path} HTTP/1.1\r\nHost: t\r\n${extra}${CLOSE}\r\n`;

const rules: Rule[] = [
  {
    id: "9112-2.2-empty-lines",
    title: "empty lines before the request-line are ignored",
    request: `\r\n\r\n${GET()}`,
    expect: ok("GET / host=t body=0"),
  },
  {
    id: "9112-2.2-bare-lf",
    title: "a bare LF as line terminator is accepted",
    request: "GET / HTTP/1.1\nHost: t\nConnection: close\n\n",
    expect: ok("GET / host=t body=0"),
  },
  {
    id: "9112-2.2-bare-cr",
    title: "a bare CR inside a field is rejected with 400",
    request: "GET / HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n",
    expect: rejected(400),
  },
  {
    id: "9112-2.2-ws-after-start-line",
    title: "whitespace between the start-line and the first field is rejected",
    request: "GET / HTTP/1.1\r\n Host: t\r\n\r\n",
    expect: rejected(400),
  },
  {
    id: "9112-3-bad-request-line",
    title: "an invalid request-line is answered 400",
    request: "GET /a b HTTP/1.1\r\nHost: t\r\n\r\n",
    expect: rejected(400),
  },
  {
    id: "9112-3-method-case",
    title: "methods are case-sensitive tokens (lower-case is a different method)",
    request: `get / HTTP/1.1\r\nHost: t\r\n${CLOSE}\r\n`,
    expect: ok("get / host=t body=0"),
  },
  {
    id: "9112-2.3-http2-line",
    title: "a request-line with major version 2 is refused",
    request: "GET / HTTP/2.0\r\nHost: t\r\n\r\n",
    expect: rejected(505),
    deno: rejected(400),
  },
  {
    id: "9112-2.3-minor-version",
    title: "HTTP/1.2 (a later minor version) is served as HTTP/1.1",
    request: `GET / HTTP/1.2\r\nHost: t\r\n${CLOSE}\r\n`,
    expect: ok("GET / host=t body=0"),
    deno: rejected(400),
  },
  {
    id: "9112-3-uri-too-long",
    title: "a request-target longer than the server parses is answered 414",
    request: `GET /${"u".repeat(70_000)} HTTP/1.1\r\nHost: t\r\n\r\n`,
    expect: rejected(414),
    deno: rejected(400),
  },
  {
    id: "9112-3.2-no-host",
    title: "an HTTP/1.1 request without Host is answered 400",
    request: "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
    expect: rejected(400),
    deno: ok(),
  },
  {
    id: "9112-3.2-two-hosts",
    title: "an HTTP/1.1 request with two Host fields is answered 400",
    request: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    expect: rejected(400),
  },
  {
    id: "9112-3.2.2-absolute-form",
    title: "absolute-form targets are accepted; their authority replaces Host",
    request: `GET http://example.com/abs/p?q=1 HTTP/1.1\r\nHost: other\r\n${CLOSE}\r\n`,
    expect: ok("GET /abs/p host=example.com body=0"),
  },
  {
    id: "9112-3.2.4-asterisk-form",
    title: "OPTIONS * is accepted",
    request: `OPTIONS * HTTP/1.1\r\nHost: t\r\n${CLOSE}\r\n`,
    expect: ok(),
  },
  {
    id: "9112-5.1-space-before-colon",
    title: "whitespace between a field name and the colon is answered 400",
    request: "GET / HTTP/1.1\r\nHost : t\r\n\r\n",
    expect: rejected(400),
  },
  {
    id: "9112-5.2-obs-fold",
    title: "obsolete line folding is rejected with 400",
    request: "GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n",
    expect: rejected(400),
  },
  {
    id: "9110-5.5-nul-in-value",
    title: "NUL in a field value is rejected",
    request: "GET / HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n",
    expect: rejected(400),
  },
  {
    id: "9112-6.1-te-in-http10",
    title: "Transfer-Encoding in an HTTP/1.0 request is faulty framing",
    request: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    expect: rejected(400),
  },
  {
    id: "9112-6.1-chunked-not-final",
    title: "chunked not being the final coding is answered 400 and closed",
    request: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    expect: rejected(400),
  },
  {
    id: "9112-6.1-unknown-coding",
    title: "a transfer coding the server does not understand is answered 501",
    request: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    expect: rejected(501),
    deno: (r) => {
      assert.equal(r.responses[0].status, 200, "Deno.serve passes gzip-coded bytes on as the body");
    },
  },
  {
    id: "9112-6.1-te-and-cl",
    title: "Transfer-Encoding with Content-Length is refused and the connection closed",
    request: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    expect: rejected(400),
  },
  {
    id: "9112-6.3-invalid-cl",
    title: "an invalid Content-Length is answered 400 and closed",
    request: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +2\r\n\r\nhi",
    expect: rejected(400),
  },
  {
    id: "9112-6.3-conflicting-cl",
    title: "differing Content-Length values are answered 400",
    request: "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi",
    expect: rejected(400),
  },
  {
    id: "9112-6.3-duplicate-cl",
    title: "repeated identical Content-Length values are accepted",
    request: `POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 2\r\n${CLOSE}\r\nhi`,
    expect: ok("POST / host=t body=2"),
  },
  {
    id: "9112-6.3-no-length",
    title: "a request with neither Content-Length nor Transfer-Encoding has no body",
    request: `POST /a HTTP/1.1\r\nHost: t\r\n\r\n${GET("/b")}`,
    responses: 2,
    expect: (r) => {
      assert.deepEqual(r.responses.map((x) => x.text), ["POST /a host=t body=0", "GET /b host=t body=0"]);
    },
  },
  {
    id: "9112-7.1-chunked-extensions-trailers",
    title: "chunked bodies with extensions and trailers are decoded",
    request: `POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n${CLOSE}\r\n` +
      "2;a=b\r\nhi\r\n3 ; c\r\nyou\r\n0\r\nX-Trailer: v\r\n\r\n",
    expect: ok("POST / host=t body=5"),
  },
  {
    id: "9112-7.1-chunk-lf",
    title: "a chunk-size line ended by a bare LF is refused",
    request: "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\nhi\r\n0\r\n\r\n",
    expect: rejected(400),
    deno: closedSilently,
  },
  {
    id: "9112-9.3-persistent",
    title: "HTTP/1.1 connections persist by default",
    request: "GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\n",
    responses: 2,
    probe: true,
    expect: (r) => {
      assert.equal(r.responses.length, 2);
      assert.equal(r.usable, true, "a third request on the connection is answered");
    },
  },
  {
    id: "9112-9.3-http10-close",
    title: "an HTTP/1.0 request without keep-alive is answered, then the connection closes",
    request: "GET / HTTP/1.0\r\n\r\n",
    expect: (r) => {
      assert.equal(r.responses.length, 1);
      assert.equal(r.responses[0].status, 200);
      assert.equal(r.closed, true);
    },
  },
  {
    id: "9112-9.3-http10-keep-alive",
    title: "HTTP/1.0 with Connection: keep-alive persists",
    request:
      "GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    responses: 2,
    probe: true,
    expect: (r) => {
      assert.equal(r.responses.length, 2);
      assert.equal(r.responses[0].headers.get("connection"), "keep-alive");
      assert.equal(r.usable, true, "a third request on the connection is answered");
    },
  },
  {
    id: "9112-9.6-connection-close",
    title: "Connection: close ends the connection after the response; later requests are not served",
    request: "GET /1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\n",
    expect: (r) => {
      assert.equal(r.responses.length, 1);
      assert.equal(r.responses[0].headers.get("connection"), "close");
      assert.equal(r.closed, true);
    },
  },
  {
    id: "9112-9.3.2-pipelining",
    title: "pipelined requests are answered in order",
    request: Array.from({ length: 20 }, (_, i) => `GET /p${i} HTTP/1.1\r\nHost: t\r\n\r\n`).join(""),
    responses: 20,
    expect: (r) => {
      assert.deepEqual(
        r.responses.map((x) => x.text),
        Array.from({ length: 20 }, (_, i) => `GET /p${i} host=t body=0`),
      );
    },
  },
  {
    id: "9110-9.3.2-head",
    title: "HEAD is answered with the GET headers and no body",
    request: `HEAD / HTTP/1.1\r\nHost: t\r\n\r\n${GET("/after")}`,
    responses: 2,
    noBody: [true],
    expect: (r) => {
      assert.equal(r.responses[0].headers.get("content-length"), String("HEAD / host=t body=0".length));
      assert.equal(r.responses[0].body.length, 0);
      assert.equal(r.responses[1].text, "GET /after host=t body=0");
    },
  },
  {
    id: "9110-10.1.1-expect-100",
    title: "Expect: 100-continue gets 100 Continue before the body is sent",
    request: "POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    responses: 1,
    expect: (r) => {
      assert.equal(r.responses[0].status, 100);
    },
  },
  {
    id: "9110-10.1.1-expect-http10",
    title: "an HTTP/1.0 request's 100-continue expectation is ignored (no 1xx to 1.0 clients)",
    request: "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
    expect: (r) => {
      assert.equal(r.responses.length, 1);
      assert.equal(r.responses[0].status, 200);
    },
    deno: (r) => {
      assert.deepEqual(
        r.responses.map((x) => x.status),
        [100, 200],
        "Deno.serve sends a 1xx to an HTTP/1.0 client",
      );
    },
  },
  {
    id: "9110-6.6.1-date",
    title: "responses carry a Date",
    request: GET(),
    expect: (r) => {
      assert.ok(!Number.isNaN(Date.parse(r.responses[0].headers.get("date") ?? "")));
    },
  },
  {
    id: "9110-15.3.5-204",
    title: "204 has no Content-Length and no body",
    request: GET("/204"),
    expect: (r) => {
      assert.equal(r.responses[0].status, 204);
      assert.equal(r.responses[0].headers.get("content-length"), undefined);
      assert.equal(headOnly(r), true, "nothing follows the head");
    },
  },
  {
    id: "9110-15.4.5-304",
    title: "304 has no body",
    request: GET("/304"),
    expect: (r) => {
      assert.equal(r.responses[0].status, 304);
      assert.equal(headOnly(r), true, "nothing follows the head");
    },
  },
  {
    id: "6585-5-header-too-large",
    title: "a header section over the limit is refused (431)",
    request: `GET / HTTP/1.1\r\nHost: t\r\nX: ${"a".repeat(500_000)}\r\n\r\n`,
    expect: rejected(431),
    deno: rejected(400),
  },
  {
    id: "6585-5-too-many-headers",
    title: "more header fields than the limit are refused (431)",
    request: "GET / HTTP/1.1\r\nHost: t\r\n" +
      Array.from({ length: 200 }, (_, i) => `X-${i}: v\r\n`).join("") +
      "\r\n",
    expect: rejected(431),
    deno: rejected(400),
  },
];

for (const rule of rules) {
  test(`[${rule.id}] ${rule.title}`, async (t) => {
    await using mg = serve(mgnetHandler);
    await using dn = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, denoHandler);
    const opts = {
      responses: rule.responses,
      noBody: rule.noBody,
      closeWrite: rule.closeWrite,
      probe: rule.probe,
      timeoutMs: 5000,
    };
    await t.step("mgnet", async () => rule.expect(await exchange(mg.port, rule.request, opts)));
    await t.step(rule.deno ? "Deno.serve (differs from the RFC, see the audit)" : "Deno.serve", async () => {
      (rule.deno ?? rule.expect)(await exchange(dn.addr.port, rule.request, opts));
    });
  });
}

test("[9112-6.3-body-limit] a body over maxBodySize is answered 413 and closed (mgnet only)", async () => {
  await using mg = serve(mgnetHandler, { maxBodySize: 1000 });
  rejected(413)(await exchange(mg.port, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n"));
});

async function ab(port: number): Promise<string> {
  const out = await new Deno.Command("ab", {
    args: ["-q", "-n", "2000", "-c", "10", "-s", "10", `http://127.0.0.1:${port}/`],
    env: toolEnv,
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, text + new TextDecoder().decode(out.stderr));
  return text;
}

test("[9112-9.3-ab] ApacheBench (HTTP/1.0, no keep-alive): 2,000 requests, none failed", async (t) => {
  await using mg = serve(mgnetHandler);
  await using dn = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, denoHandler);
  for (const [name, port] of [["mgnet", mg.port], ["Deno.serve", dn.addr.port]] as const) {
    await t.step(name, async () => {
      const text = await ab(port);
      assert.match(text, /Complete requests:\s+2000/);
      assert.match(text, /Failed requests:\s+0/);
    });
  }
});

test("[9110-10.1.1-curl-5mb] curl's 5 MB upload (Expect: 100-continue) completes", async (t) => {
  await using mg = serve(mgnetHandler);
  await using dn = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, denoHandler);
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeFile(file, new Uint8Array(5 << 20).fill(66));
    for (const [name, port] of [["mgnet", mg.port], ["Deno.serve", dn.addr.port]] as const) {
      await t.step(name, async () => {
        const out = await new Deno.Command("curl", {
          args: ["-s", "-v", "--max-time", "20", "--data-binary", `@${file}`, `http://127.0.0.1:${port}/up`],
          env: toolEnv,
        }).output();
        assert.equal(new TextDecoder().decode(out.stdout), `POST /up host=127.0.0.1:${port} body=${5 << 20}`);
        const log = new TextDecoder().decode(out.stderr);
        assert.match(log, /Expect: 100-continue/);
        assert.match(log, /HTTP\/1\.1 100 Continue/, "the server answered the expectation (no 1 s stall)");
      });
    }
  } finally {
    await Deno.remove(file);
  }
});
