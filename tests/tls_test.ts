/**
 * TLS (`https://`, `wss://` on it, `tls://`, mgnet's client): curl,
 * openssl s_client, Deno's fetch and WebSocket as independent clients;
 * openssl s_server and Deno.serve as independent servers. Certificates
 * (P-256 and RSA leaves, an expired one, a chain through an intermediate, a
 * client certificate) are made here with openssl.
 */
import assert from "node:assert/strict";
import {
  acceptWebSocket,
  ClientError,
  ConnectionClosedError,
  Manager,
  type MgEvent,
  MgnetError,
  serve,
  type TcpConnection,
  TcpDataEvent,
  type TlsInfo,
} from "../mod.ts";
import { test, toolEnv, until } from "./helpers.ts";

const dec = new TextDecoder();
const dir = Deno.makeTempDirSync({ prefix: "mgnet_tls_" });

function sh(cmd: string, args: string[]): { code: number; out: string; err: string } {
  const o = new Deno.Command(cmd, {
    args,
    cwd: dir,
    env: toolEnv,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  })
    .outputSync();
  return { code: o.code, out: dec.decode(o.stdout), err: dec.decode(o.stderr) };
}

async function shAsync(cmd: string, args: string[], input = "", ms = 10_000) {
  const child = new Deno.Command(cmd, {
    args,
    cwd: dir,
    env: toolEnv,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(input));
  await w.close();
  const timer = setTimeout(() => child.kill(), ms);
  const o = await child.output();
  clearTimeout(timer);
  return { code: o.code, out: dec.decode(o.stdout), err: dec.decode(o.stderr) };
}

function openssl(...args: string[]): void {
  const r = sh("openssl", args);
  if (r.code !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.err}`);
}

const read = (f: string) => Deno.readTextFileSync(`${dir}/${f}`);

/** curl trusting ca.pem and presenting client.pem (mutual TLS). */
const curlWithClientCert = (url: string) =>
  shAsync("curl", ["-sS", "--cacert", "ca.pem", "--cert", "client.pem", "--key", "client.key", url]);

/** Makes the certificates once: returns their PEM. */
function makeCerts() {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  Deno.writeTextFileSync(
    `${dir}/leaf.ext`,
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
  );
  Deno.writeTextFileSync(`${dir}/other.ext`, "subjectAltName=DNS:other.test\nbasicConstraints=CA:FALSE\n");
  Deno.writeTextFileSync(`${dir}/client.ext`, "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n");
  Deno.writeTextFileSync(
    `${dir}/int.ext`,
    "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
  );
  openssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=mgnet test CA",
  );
  const sign = (name: string, ext: string, ca = "ca", extra: string[] = ["-days", "2"]) => {
    openssl("req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
    openssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${ca}.pem`,
      "-CAkey",
      `${ca}.key`,
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-extfile",
      ext,
      ...extra,
    );
  };
  sign("leaf", "leaf.ext");
  sign("other", "other.ext");
  sign("client", "client.ext");
  // RSA leaf
  openssl(
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "rsa.key",
    "-out",
    "rsa.csr",
    "-subj",
    "/CN=rsa",
  );
  openssl(
    "x509",
    "-req",
    "-in",
    "rsa.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "rsa.pem",
    "-days",
    "2",
    "-extfile",
    "leaf.ext",
  );
  // A chain: CA -> intermediate -> leaf
  sign("int", "int.ext");
  sign("chained", "leaf.ext", "int");
  // Expired (openssl ca sets past dates)
  Deno.writeTextFileSync(
    `${dir}/ca.cnf`,
    "[ca]\ndefault_ca=c\n[c]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\ndefault_md=sha256\npolicy=p\ncopy_extensions=copy\n[p]\ncommonName=supplied\n",
  );
  Deno.writeTextFileSync(`${dir}/index.txt`, "");
  Deno.writeTextFileSync(`${dir}/serial`, "01\n");
  openssl(
    "req",
    ...ec,
    "-keyout",
    "expired.key",
    "-out",
    "expired.csr",
    "-subj",
    "/CN=expired",
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
  );
  openssl(
    "ca",
    "-batch",
    "-config",
    "ca.cnf",
    "-cert",
    "ca.pem",
    "-keyfile",
    "ca.key",
    "-in",
    "expired.csr",
    "-out",
    "expired.pem",
    "-startdate",
    "20200101000000Z",
    "-enddate",
    "20200102000000Z",
  );
  return {
    ca: read("ca.pem"),
    cert: read("leaf.pem"),
    key: read("leaf.key"),
    rsaCert: read("rsa.pem"),
    rsaKey: read("rsa.key"),
    otherCert: read("other.pem"),
    otherKey: read("other.key"),
    clientCert: read("client.pem"),
    clientKey: read("client.key"),
    chain: read("chained.pem") + read("int.pem"),
    chainKey: read("chained.key"),
    expiredCert: read("expired.pem"),
    expiredKey: read("expired.key"),
  };
}

const C = makeCerts();
addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

/** An https:// hello server with handlers. */
function hello(tls: Record<string, unknown> = {}) {
  const mgr = new Manager();
  const l = mgr.listen("https://127.0.0.1:0", {
    cert: C.cert,
    key: C.key,
    ...tls,
    onRequest: (ev) =>
      void ev.reply(200, JSON.stringify({ hello: "world", path: ev.path }), {
        "content-type": "application/json",
      }),
  });
  return { mgr, port: l.port, listener: l, [Symbol.asyncDispose]: () => mgr.close() };
}

test("https:// answers curl --cacert, two requests on one keep-alive connection", async () => {
  await using s = hello();
  const r = await shAsync("curl", [
    "-sS",
    "-v",
    "--cacert",
    "ca.pem",
    `https://localhost:${s.port}/a`,
    `https://localhost:${s.port}/b`,
  ]);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, '{"hello":"world","path":"/a"}{"hello":"world","path":"/b"}');
  assert.match(r.err, /Re-using existing connection/);
  assert.match(r.err, /ALPN: server accepted http\/1.1/);
});

test("https:// answers Deno's fetch with caCerts, with a P-256, an RSA and a chained certificate", async () => {
  const client = Deno.createHttpClient({ caCerts: [C.ca] });
  try {
    for (const [cert, key] of [[C.cert, C.key], [C.rsaCert, C.rsaKey], [C.chain, C.chainKey]]) {
      await using s = hello({ cert, key });
      const res = await fetch(`https://localhost:${s.port}/x`, { client });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { hello: "world", path: "/x" });
    }
  } finally {
    client.close();
  }
});

test("openssl s_client: the chain is sent, ALPN http/1.1, and -reconnect resumes the session", async () => {
  await using s = hello({ cert: C.chain, key: C.chainKey });
  const r = await shAsync("openssl", [
    "s_client",
    "-connect",
    `127.0.0.1:${s.port}`,
    "-servername",
    "localhost",
    "-CAfile",
    "ca.pem",
    "-alpn",
    "http/1.1",
    "-verify_return_error",
    "-showcerts",
    "-ign_eof",
  ], "GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
  assert.match(r.out, /Verify return code: 0 \(ok\)/);
  assert.match(r.out, /ALPN protocol: http\/1.1/);
  assert.match(r.out, / 1 s:CN ?= ?int/);
  assert.match(r.out, /\{"hello":"world","path":"\/"\}/);
  // TLS 1.2: -reconnect connects 5 more times with the first session.
  const again = await shAsync("openssl", [
    "s_client",
    "-connect",
    `127.0.0.1:${s.port}`,
    "-CAfile",
    "ca.pem",
    "-reconnect",
    "-tls1_2",
  ]);
  assert.equal(again.out.match(/^New, TLSv1.2/gm)?.length, 1, again.out.slice(-1500));
  assert.equal(again.out.match(/^Reused, TLSv1.2/gm)?.length, 5, again.out.slice(-1500));
  // TLS 1.3 tickets come after the handshake: a client that reads (a request)
  // keeps one (-sess_out) and resumes with it (-sess_in).
  const first = await shAsync(
    "openssl",
    [
      "s_client",
      "-connect",
      `127.0.0.1:${s.port}`,
      "-tls1_3",
      "-CAfile",
      "ca.pem",
      "-sess_out",
      "sess13",
      "-ign_eof",
    ],
    "GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
  );
  assert.match(first.out, /^New, TLSv1.3/m);
  const second = await shAsync("openssl", [
    "s_client",
    "-connect",
    `127.0.0.1:${s.port}`,
    "-tls1_3",
    "-CAfile",
    "ca.pem",
    "-sess_in",
    "sess13",
  ]);
  assert.match(second.out, /^Reused, TLSv1.3/m, second.out.slice(-1500));
});

test("listen fails with Invalid naming the cause: bad PEM, no key, mismatched key, encrypted key, no cert", async () => {
  await using mgr = new Manager();
  const bad = (o: Record<string, unknown>, re: RegExp) =>
    assert.throws(
      () => mgr.listen("https://127.0.0.1:0", o as never),
      (e) => e instanceof MgnetError && e.code === "Invalid" && re.test(e.message),
    );
  bad({ cert: "not a pem", key: C.key }, /cert: no CERTIFICATE block/);
  bad({ cert: C.cert, key: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" }, /key: /);
  bad({ cert: C.cert, key: C.otherKey }, /key does not match the certificate/);
  const enc = sh("openssl", ["pkey", "-in", "leaf.key", "-aes256", "-passout", "pass:x"]).out;
  bad({ cert: C.cert, key: enc }, /encrypted PEM keys are not supported/);
  bad({ cert: C.cert, key: C.key, requestCert: true }, /requestCert needs ca/);
  assert.throws(() => mgr.listen("https://127.0.0.1:0", {} as never), /needs TLS settings/);
  // Nothing was bound by the failures; a good one still works.
  const l = mgr.listen("https://127.0.0.1:0", { cert: C.cert, key: C.key });
  assert.ok(l.port > 0);
});

test("a failed handshake closes only that connection: junk, plain HTTP and an untrusting client", async () => {
  const events: MgEvent[] = [];
  await using mgr = new Manager();
  const { port } = mgr.listen("https://127.0.0.1:0", { cert: C.cert, key: C.key });
  const loop = (async () => {
    for await (const ev of mgr) {
      events.push(ev);
      if (ev.type === "http") ev.reply(200, "ok");
    }
  })();
  const junk = await Deno.connect({ hostname: "127.0.0.1", port });
  await junk.write(new TextEncoder().encode("GET / HTTP/1.1\r\nhost: x\r\n\r\n"));
  const buf = new Uint8Array(256);
  const n = await junk.read(buf).catch(() => null);
  // an alert record (21) or nothing: never an HTTP response
  assert.ok(n === null || buf[0] === 21, `got ${n} bytes starting ${buf[0]}`);
  junk.close();
  const r = await shAsync("curl", ["-sS", `https://127.0.0.1:${port}/`]); // no CA: refuses the server
  assert.notEqual(r.code, 0);
  await until(() => events.filter((e) => e.type === "error").length >= 1);
  const errors = events.filter((e) => e.type === "error").map((e) => (e as { message: string }).message);
  assert.ok(errors.some((m) => /^TLS handshake failed: /.test(m)), errors.join("; "));
  assert.ok(!events.some((e) => e.type === "http"), "no request came through a failed handshake");
  const client = Deno.createHttpClient({ caCerts: [C.ca] });
  const res = await fetch(`https://127.0.0.1:${port}/`, { client });
  assert.equal(await res.text(), "ok");
  client.close();
  await mgr.close();
  await loop;
});

test("mgnet's client verifies: a given CA, an unknown CA, an expired and a mismatched certificate (openssl s_server)", async () => {
  const server = async (cert: string, key: string, f: (port: number) => Promise<void>) => {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const child = new Deno.Command("openssl", {
      args: ["s_server", "-accept", `127.0.0.1:${port}`, "-cert", cert, "-key", key, "-www"],
      cwd: dir,
      env: toolEnv,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      await until(async () => {
        try {
          (await Deno.connect({ hostname: "127.0.0.1", port })).close();
          return true;
        } catch {
          return false;
        }
      });
      await f(port);
    } finally {
      try {
        child.kill();
      } catch { /* exited */ }
      await child.status;
    }
  };
  await using mgr = new Manager();
  await server("leaf.pem", "leaf.key", async (port) => {
    const res = await mgr.request(`https://localhost:${port}/`, { ca: C.ca });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /s_server|Ciphers/);
  });
  const fails = async (cert: string, key: string, url: (p: number) => string, re: RegExp, opts = {}) =>
    await server(cert, key, async (port) => {
      await assert.rejects(
        mgr.request(url(port), { ca: C.ca, ...opts }),
        (e) => e instanceof ClientError && e.kind === "tls" && re.test(e.message),
      );
    });
  await fails("leaf.pem", "leaf.key", (p) => `https://localhost:${p}/`, /UnknownIssuer/, { ca: C.otherCert });
  await fails("expired.pem", "expired.key", (p) => `https://localhost:${p}/`, /certificate expired/);
  await fails(
    "other.pem",
    "other.key",
    (p) => `https://localhost:${p}/`,
    /not valid for name|NotValidForName/,
  );
  await assert.rejects(
    mgr.request("https://localhost:1/", { ca: "junk" }),
    (e) => e instanceof ClientError && e.kind === "tls" && /ca: /.test(e.message),
  );
});

test("mgnet's client talks to Deno.serve over TLS, and with insecure to a server it cannot verify", async () => {
  const ac = new AbortController();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: C.cert,
    key: C.key,
    signal: ac.signal,
    onListen() {},
  }, (req) => new Response(`deno ${new URL(req.url).pathname}`));
  try {
    await using mgr = new Manager();
    const res = await mgr.request(`https://localhost:${server.addr.port}/p`, { ca: C.ca });
    assert.equal(await res.text(), "deno /p");
    const res2 = await mgr.request(`https://localhost:${server.addr.port}/q`, { insecure: true });
    assert.equal(await res2.text(), "deno /q");
  } finally {
    ac.abort();
    await server.finished;
  }
});

test("wss://: Deno's WebSocket (a subprocess with --cert) echoes through an https:// listener", async () => {
  await using mgr = new Manager();
  const { port } = mgr.listen("https://127.0.0.1:0", { cert: C.cert, key: C.key });
  const loop = (async () => {
    for await (const ev of mgr) {
      if (ev.type === "http") acceptWebSocket(ev);
      if (ev.type === "ws-message") ev.socket.send(ev.data);
    }
  })();
  const script = `const ws = new WebSocket("wss://localhost:${port}/");
ws.onopen = () => ws.send("ping over tls");
ws.onmessage = (e) => { console.log(e.data); ws.close(); };
ws.onerror = (e) => { console.log("error", e.message); Deno.exit(1); };`;
  const r = await shAsync(
    Deno.execPath(),
    ["run", "--quiet", "--allow-net", "--cert", `${dir}/ca.pem`, "-"],
    script,
    20_000,
  );
  assert.equal(r.out.trim(), "ping over tls", r.err);
  await mgr.close();
  await loop;
});

test("wss:// with mgnet's WebSocket client: verified with ca, refused without, mutual TLS with cert/key", async () => {
  await using mgr = new Manager();
  const { port } = mgr.listen("https://127.0.0.1:0", {
    cert: C.cert,
    key: C.key,
    ca: C.ca,
    requestCert: true,
  });
  const loop = (async () => {
    for await (const ev of mgr) {
      if (ev.type === "http") acceptWebSocket(ev);
      if (ev.type === "ws-message") ev.socket.send(ev.data);
    }
  })();
  await using client = new Manager();
  const ws = await client.connect(`wss://localhost:${port}/`, {
    ca: C.ca,
    cert: C.clientCert,
    key: C.clientKey,
  });
  const got = new Promise<string>((resolve) =>
    ws.addEventListener("message", (e) => resolve(String((e as MessageEvent).data)))
  );
  ws.send("hello wss");
  assert.equal(await got, "hello wss");
  ws.close();
  await assert.rejects(
    client.connect(`wss://localhost:${port}/`, { ca: C.otherCert, cert: C.clientCert, key: C.clientKey }),
    (e) => e instanceof ClientError && e.kind === "tls" && /UnknownIssuer/.test(e.message),
  );
  await assert.rejects(
    client.connect(`wss://localhost:${port}/`, { ca: "junk" }),
    (e) => e instanceof ClientError && e.kind === "tls" && /ca: /.test(e.message),
  );
  await mgr.close();
  await loop;
});

test("tls:// raw TCP: Deno.connectTls with caCerts echoes lines", async () => {
  await using mgr = new Manager();
  const l = mgr.listen("tls://127.0.0.1:0", { cert: C.cert, key: C.key, framing: "line", maxFrame: 1024 });
  const loop = (async () => {
    for await (const ev of mgr) {
      if (ev instanceof TcpDataEvent) ev.conn.send(`echo ${ev.text()}\n`);
    }
  })();
  const conn = await Deno.connectTls({ hostname: "localhost", port: l.port, caCerts: [C.ca] });
  await conn.write(new TextEncoder().encode("one\ntwo\n"));
  let got = "";
  const buf = new Uint8Array(1024);
  while (got.split("\n").length < 3) {
    const n = await conn.read(buf);
    if (n === null) break;
    got += dec.decode(buf.subarray(0, n));
  }
  assert.equal(got, "echo one\necho two\n");
  conn.close();
  await mgr.close();
  await loop;
});

test("tls:// half-close both ways: close_notify is the peer's end (an end event, still writable), end() sends ours", async () => {
  await using mgr = new Manager();
  const l = mgr.listen("tls://127.0.0.1:0", { cert: C.cert, key: C.key });
  const events: string[] = [];
  const loop = (async () => {
    for await (const ev of mgr) {
      events.push(ev.type);
      if (ev instanceof TcpDataEvent) ev.conn.send(ev.bytes);
      else if (ev.type === "end") {
        // The peer has ended its writing: we still answer, then end ours.
        ev.conn.send("|after your end");
        ev.conn.end();
      }
    }
  })();
  // Deno's TLS client: closeWrite() sends close_notify (and a FIN); it then
  // reads to a clean end: a FIN without close_notify would be an
  // UnexpectedEof error here.
  const conn = await Deno.connectTls({ hostname: "localhost", port: l.port, caCerts: [C.ca] });
  await conn.write(new TextEncoder().encode("request"));
  await conn.closeWrite();
  let got = "";
  const buf = new Uint8Array(1024);
  for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
    got += dec.decode(buf.subarray(0, n));
  }
  assert.equal(got, "request|after your end");
  conn.close();
  await until(() => events.includes("close"));
  assert.deepEqual(events.filter((e) => e !== "data"), ["open", "end", "close"]);

  // mgnet's tls:// client against Deno.listenTls: our end() is a clean end
  // of stream there; the server answers after it, ends, and we see its end.
  const server = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: C.cert, key: C.key });
  const served = (async () => {
    const c = await server.accept();
    let text = "";
    for (let n = await c.read(buf); n !== null; n = await c.read(buf)) text += dec.decode(buf.subarray(0, n));
    await c.write(new TextEncoder().encode(`got ${text}`));
    await c.closeWrite();
    c.close();
    return text;
  })();
  await using mgr2 = new Manager();
  const client = await mgr2.connect(`tls://localhost:${server.addr.port}`, { ca: C.ca });
  client.send("question");
  client.end();
  let answer = "";
  let ended = false;
  for await (const ev of client) {
    if (ev instanceof TcpDataEvent) answer += ev.text();
    else if (ev.type === "end") ended = true;
  }
  assert.equal(await served, "question");
  assert.equal(answer, "got question");
  assert.ok(ended, "the server's close_notify was an end event");
  server.close();
  await mgr.close();
  await loop;
});

test("startTls(): a line protocol upgrades in-band with Deno.startTls as the client; injected plaintext is dropped", async () => {
  await using mgr = new Manager();
  const seen: string[] = [];
  let serverInfo: TlsInfo | undefined;
  let ended = false;
  const l = mgr.listen("tcp://127.0.0.1:0", {
    framing: "line",
    onData: async (ev) => {
      const text = ev.text();
      seen.push(text);
      if (text === "STARTTLS") {
        ev.conn.send("GO\n");
        await ev.conn.startTls({ isServer: true, cert: C.cert, key: C.key });
        serverInfo = ev.conn.tlsInfo();
      } else ev.conn.send(`secret: ${text}\n`);
    },
    onEnd: (ev) => {
      ended = true;
      ev.conn.send("bye\n");
      ev.conn.end();
    },
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
  // A line after the command in the same write: plaintext past the point of
  // the upgrade, which must never reach the application.
  await conn.write(new TextEncoder().encode("STARTTLS\nINJECTED\n"));
  const buf = new Uint8Array(1024);
  let got = "";
  while (!got.includes("\n")) got += dec.decode(buf.subarray(0, (await conn.read(buf))!));
  assert.equal(got, "GO\n");
  const tls = await Deno.startTls(conn, { hostname: "localhost", caCerts: [C.ca] });
  await tls.write(new TextEncoder().encode("hello\n"));
  await tls.closeWrite();
  let answer = "";
  for (let n = await tls.read(buf); n !== null; n = await tls.read(buf)) {
    answer += dec.decode(buf.subarray(0, n));
  }
  tls.close();
  assert.equal(answer, "secret: hello\nbye\n");
  assert.deepEqual(seen, ["STARTTLS", "hello"]);
  assert.equal(serverInfo?.protocol, "TLSv1.3");
  assert.ok(ended);
});

test("startTls(): refusals are typed (twice, on tls://, bad PEM, no serverName); a failed handshake rejects and closes", async () => {
  await using mgr = new Manager();
  const accepted = Promise.withResolvers<TcpConnection>();
  const l = mgr.listen("tcp://127.0.0.1:0", { onOpen: (ev) => accepted.resolve(ev.conn as TcpConnection) });
  await using client = new Manager();
  const c = await client.connect(`tcp://127.0.0.1:${l.port}`);
  const server = await accepted.promise;
  await assert.rejects(
    server.startTls({ isServer: true, cert: "not a pem", key: "nor this" }),
    (e) => e instanceof MgnetError && e.code === "Invalid",
  );
  await assert.rejects(c.startTls({ serverName: "" }), TypeError);
  // The server trusts nothing of the client's: the client does not trust the server's certificate.
  const serverUp = server.startTls({ isServer: true, cert: C.cert, key: C.key });
  await assert.rejects(
    server.startTls({ isServer: true, cert: C.cert, key: C.key }),
    (e) => e instanceof MgnetError && e.code === "State",
  );
  const clientUp = c.startTls({ serverName: "localhost", ca: C.otherCert });
  await assert.rejects(
    clientUp,
    (e) => e instanceof MgnetError && /UnknownIssuer|certificate/i.test(e.message),
  );
  await assert.rejects(serverUp, (e) => e instanceof MgnetError || e instanceof ConnectionClosedError);
  await until(() => c.closed && server.closed);

  const t = mgr.listen("tls://127.0.0.1:0", { cert: C.cert, key: C.key, onOpen: () => {} });
  const conn = await client.connect(`tls://localhost:${t.port}`, { ca: C.ca });
  await assert.rejects(
    conn.startTls({ serverName: "localhost", ca: C.ca }),
    (e) => e instanceof MgnetError && e.code === "State",
  );
  conn.close();
});

test("a large response before a close arrives whole: HTTPS with Connection: close to a slow reader, tls:// close after a big send", async () => {
  const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 7 + (i >> 12)) & 0xff);
  const sha = async (b: Uint8Array) =>
    new Uint8Array(await crypto.subtle.digest("SHA-256", b.slice())).join(",");
  await using mgr = new Manager();
  const https = mgr.listen("https://127.0.0.1:0", { cert: C.cert, key: C.key });
  const tcp = mgr.listen("tls://127.0.0.1:0", { cert: C.cert, key: C.key });
  const loop = (async () => {
    for await (const ev of mgr) {
      if (ev.type === "http") ev.reply(200, big, { "content-type": "application/octet-stream" });
      if (ev.type === "open" && ev.listenerId === tcp.id) {
        (ev.conn as unknown as { send(b: Uint8Array): void; close(): void }).send(big);
        ev.conn.close();
      }
    }
  })();
  const out = `${dir}/big.bin`;
  const r = await shAsync(
    "curl",
    [
      "-sS",
      "--cacert",
      "ca.pem",
      "--limit-rate",
      "6M",
      "-H",
      "connection: close",
      "-o",
      out,
      `https://localhost:${https.port}/`,
    ],
    "",
    20_000,
  );
  assert.equal(r.code, 0, r.err);
  assert.equal(await sha(Deno.readFileSync(out)), await sha(big));
  const conn = await Deno.connectTls({ hostname: "localhost", port: tcp.port, caCerts: [C.ca] });
  const got = new Uint8Array(big.length + 1);
  let n = 0;
  for (;;) {
    const k = await conn.read(got.subarray(n)).catch(() => null);
    if (k === null) break;
    n += k;
  }
  conn.close();
  assert.equal(n, big.length);
  assert.equal(await sha(got.subarray(0, n)), await sha(big));
  await mgr.close();
  await loop;
});

test("tls:// client: mgnet's TCP client over TLS to openssl s_server and to mgnet; an unknown CA fails with kind tls", async () => {
  await using mgr = new Manager();
  const l = mgr.listen("tls://127.0.0.1:0", {
    cert: C.chain,
    key: C.chainKey,
    framing: "line",
    maxFrame: 1024,
  });
  const served: number[] = [];
  const loop = (async () => {
    for await (const ev of mgr) {
      if (ev instanceof TcpDataEvent && !served.includes(ev.conn.id)) ev.conn.send(`echo ${ev.text()}\n`);
    }
  })();
  const conn = await mgr.connect(`tls://localhost:${l.port}`, { ca: C.ca, framing: "line", maxFrame: 1024 });
  served.push(conn.id);
  conn.send("over tls\n");
  for await (const ev of conn) {
    if (ev instanceof TcpDataEvent) {
      assert.equal(ev.text(), "echo over tls");
      break;
    }
  }
  conn.close();
  await assert.rejects(
    mgr.connect(`tls://localhost:${l.port}`, { ca: C.otherCert }),
    (e) => e instanceof ClientError && e.kind === "tls" && /UnknownIssuer/.test(e.message),
  );
  await mgr.close();
  await loop;
});

test("SNI picks the certificate per host name; reloadTls changes it for new handshakes", async () => {
  await using s = hello({ sni: { "other.test": { cert: C.otherCert, key: C.otherKey } } });
  const subject = async (name: string) => {
    const r = await shAsync("openssl", [
      "s_client",
      "-connect",
      `127.0.0.1:${s.port}`,
      "-servername",
      name,
      "-CAfile",
      "ca.pem",
    ], "");
    return r.out.match(/subject=.*CN ?= ?([\w.]+)/)?.[1];
  };
  assert.equal(await subject("other.test"), "other");
  assert.equal(await subject("localhost"), "leaf");
  s.listener.reloadTls({ cert: C.rsaCert, key: C.rsaKey });
  assert.equal(await subject("localhost"), "rsa");
  assert.equal(await subject("other.test"), "rsa"); // the reload replaced the SNI table too
  assert.throws(() => s.listener.reloadTls({ cert: C.cert, key: C.otherKey }), /does not match/);
  assert.equal(await subject("localhost"), "rsa"); // a failed reload keeps the old settings
});

test("mutual TLS: requestCert refuses clients without a certificate; curl and mgnet's client with one get in", async () => {
  await using s = hello({ ca: C.ca, requestCert: true });
  const without = await shAsync("curl", ["-sS", "--cacert", "ca.pem", `https://localhost:${s.port}/`]);
  assert.notEqual(without.code, 0);
  const withCert = await curlWithClientCert(`https://localhost:${s.port}/m`);
  assert.equal(withCert.out, '{"hello":"world","path":"/m"}', withCert.err);
  await using mgr = new Manager();
  const res = await mgr.request(`https://localhost:${s.port}/n`, {
    ca: C.ca,
    cert: C.clientCert,
    key: C.clientKey,
  });
  assert.deepEqual(await res.json(), { hello: "world", path: "/n" });
  await assert.rejects(mgr.request(`https://localhost:${s.port}/n`, { ca: C.ca }), ClientError);
});

test("serve({ cert, key }) serves HTTPS like Deno.serve", async () => {
  const server = serve(
    { port: 0, hostname: "127.0.0.1", cert: C.cert, key: C.key, onListen: false },
    (req) => Response.json({ url: new URL(req.url).protocol }),
  );
  const client = Deno.createHttpClient({ caCerts: [C.ca] });
  try {
    const res = await fetch(`https://localhost:${server.addr.port}/`, { client });
    assert.deepEqual(await res.json(), { url: "https:" });
  } finally {
    client.close();
    await server.shutdown();
  }
});

/** The DER of each certificate in a PEM text, in order. */
function ders(pem: string): Uint8Array[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----([^-]+)-----END CERTIFICATE-----/g)].map((m) =>
    Uint8Array.from(atob(m[1].replace(/\s+/g, "")), (ch) => ch.charCodeAt(0))
  );
}

test("tlsInfo(): protocol, suite, ALPN, SNI and the peer's certificates on both sides; undefined without TLS", async () => {
  // Mutual TLS over HTTPS: the server sees curl's client certificate.
  const seen: (TlsInfo | undefined)[] = [];
  await using mgr = new Manager();
  const https = mgr.listen("https://127.0.0.1:0", {
    cert: C.cert,
    key: C.key,
    ca: C.ca,
    requestCert: true,
    onRequest: (ev) => {
      seen.push(ev.conn.tlsInfo());
      ev.reply(200, "ok");
    },
  });
  const r = await curlWithClientCert(`https://localhost:${https.port}/`);
  assert.equal(r.out, "ok", r.err);
  const s = seen[0]!;
  assert.equal(s.protocol, "TLSv1.3");
  assert.match(s.cipherSuite, /^TLS13_/);
  assert.equal(s.alpnProtocol, "http/1.1");
  assert.equal(s.serverName, "localhost");
  // Leaf first; curl (OpenSSL) may append its issuer from the CA file.
  assert.deepEqual(s.peerCertificates[0], ders(C.clientCert)[0]);
  // tls:// with a chain: the client gets leaf and intermediate; the server
  // sees the SNI name and no client certificate; TLS 1.2 when the client
  // only offers it (openssl s_client).
  const mgr2 = new Manager();
  const tcp = mgr2.listen("tls://127.0.0.1:0", { cert: C.chain, key: C.chainKey });
  const serverSide: (TlsInfo | undefined)[] = [];
  let plainInfo: TlsInfo | undefined | "unset" = "unset";
  const plain = mgr2.listen("tcp://127.0.0.1:0");
  const loop = (async () => {
    for await (const ev of mgr2) {
      if (!(ev instanceof TcpDataEvent)) continue;
      if (ev.conn.localAddr?.port === plain.port) plainInfo = ev.conn.tlsInfo();
      else serverSide.push(ev.conn.tlsInfo());
      ev.conn.send("x");
      ev.conn.close(); // so openssl s_client (which waits past its input) ends
    }
  })();
  const conn = await mgr2.connect(`tls://localhost:${tcp.port}`, { ca: C.ca });
  const c = conn.tlsInfo()!;
  assert.equal(c.protocol, "TLSv1.3");
  assert.equal(c.serverName, "");
  assert.equal(c.alpnProtocol, "");
  const chain = ders(C.chain);
  assert.equal(chain.length, 2);
  assert.deepEqual(c.peerCertificates, chain);
  conn.send("hi");
  await until(() => serverSide.length === 1, "the server's data event");
  assert.equal(serverSide[0]!.serverName, "localhost");
  assert.deepEqual(serverSide[0]!.peerCertificates, []);
  const old = await shAsync("openssl", [
    "s_client",
    "-connect",
    `127.0.0.1:${tcp.port}`,
    "-tls1_2",
    "-servername",
    "localhost",
    "-CAfile",
    "ca.pem",
    "-quiet",
  ], "v12\n");
  await until(() => serverSide.length === 2, `the TLS 1.2 client's data: ${old.err}`);
  assert.equal(serverSide[1]!.protocol, "TLSv1.2");
  assert.match(serverSide[1]!.cipherSuite, /^TLS_ECDHE_/);
  // No TLS: undefined; a closed connection: ConnectionClosedError.
  const raw = await Deno.connect({ hostname: "127.0.0.1", port: plain.port });
  await raw.write(new TextEncoder().encode("plain"));
  await until(() => plainInfo !== "unset", "the plain connection's data");
  assert.equal(plainInfo, undefined);
  raw.close();
  conn.close();
  await until(() => conn.closed, "the client connection to close");
  assert.throws(() => conn.tlsInfo(), ConnectionClosedError);
  await mgr2.close();
  await loop;
});
