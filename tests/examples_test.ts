import assert from "node:assert/strict";

/** Starts an example with PORT=0, returns its base URL and the process. */
async function startExample(file: string, env: Record<string, string> = {}) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-ffi",
      "--allow-env",
      "--allow-read",
      new URL(`../examples/${file}`, import.meta.url).pathname,
    ],
    env: { PORT: "0", ...env },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!/Listening on (\S+)\n/.test(out)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`example exited early: ${out}`);
    out += value;
  }
  const url = /Listening on (\S+)\n/.exec(out)![1];
  return { child, url, reader };
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.test(`examples/hello.ts answers every path and exits cleanly on ${signal}`, async () => {
    const { child, url, reader } = await startExample("hello.ts");
    try {
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      for (const path of ["", "any/path?x=1"]) {
        const res = await fetch(url + path);
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("content-type"), "application/json");
        assert.deepEqual(await res.json(), { message: "Hello, World!" });
      }
    } finally {
      child.kill(signal);
      const status = await child.status;
      await reader.cancel();
      assert.equal(status.code, 0);
    }
  });
}

Deno.test("examples/hello.ts honours HOSTNAME (IPv6)", async () => {
  const { child, url, reader } = await startExample("hello.ts", { HOSTNAME: "::1" });
  try {
    assert.match(url, /^http:\/\/\[::1\]:\d+\/$/);
    assert.equal((await (await fetch(url)).json()).message, "Hello, World!");
  } finally {
    child.kill("SIGINT");
    await child.status;
    await reader.cancel();
  }
});

Deno.test("examples/showcase.ts serves every route and exits cleanly with an event stream open", async () => {
  const { child, url, reader } = await startExample("showcase.ts");
  try {
    const page = await fetch(url);
    assert.match(page.headers.get("content-type") ?? "", /text\/html/);
    assert.match(await page.text(), /<h1>mgnet<\/h1>/);
    assert.deepEqual(await (await fetch(`${url}api/hello?name=Deno`)).json(), { message: "Hello, Deno!" });
    const echo = await fetch(`${url}api/echo`, {
      method: "POST",
      body: '{"a":1}',
      headers: { "content-type": "application/json" },
    });
    assert.equal(echo.headers.get("content-type"), "application/json");
    assert.equal(await echo.text(), '{"a":1}');
    const t1 = await (await fetch(`${url}api/time`)).json();
    const t2 = await (await fetch(`${url}api/time`)).json();
    assert.equal(t1.time, t2.time, "the second answer came from the native cache");
    assert.equal((await (await fetch(`${url}stream`)).arrayBuffer()).byteLength, 1 << 20);
    const missing = await fetch(`${url}nope`);
    assert.equal(missing.status, 404);
    await missing.text();
    const events = await fetch(`${url}sse`);
    assert.equal(events.headers.get("content-type"), "text/event-stream");
    const sse = events.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("event: tick")) text += (await sse.read()).value ?? "";
    assert.match(text, /id: 1\nevent: tick\ndata: 1\n\n/);
    child.kill("SIGINT");
    assert.equal((await child.status).code, 0);
    await sse.cancel().catch(() => {});
  } finally {
    try {
      child.kill("SIGINT");
    } catch { /* already exited */ }
    await child.status;
    await reader.cancel();
  }
});
