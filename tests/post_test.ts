/**
 * Posting into a manager from a Worker and from the same thread: order,
 * no loss over 100,000 messages, the mailbox bound, wake-up latency, and
 * either side closing.
 */
import assert from "node:assert/strict";
import {
  Manager,
  ManagerClosedError,
  MgnetError,
  openPoster,
  POST_MAX_BYTES,
  POST_MAX_COUNT,
  type PostPort,
} from "../mod.ts";
import { test } from "./helpers.ts";

const WORKER = new URL("./fixtures/post_worker.ts", import.meta.url).href;

/** A worker and a way to wait for its next report. */
function worker(): { w: Worker; next: () => Promise<any> } & Disposable {
  const w = new Worker(WORKER, { type: "module" });
  const inbox: any[] = [];
  let wake: (() => void) | undefined;
  w.onmessage = (e) => {
    inbox.push(e.data);
    wake?.();
  };
  w.onerror = (e) => {
    inbox.push({ error: `worker error: ${e.message}` });
    wake?.();
  };
  return {
    w,
    async next() {
      while (inbox.length === 0) await new Promise<void>((r) => wake = r);
      return inbox.shift();
    },
    [Symbol.dispose]: () => w.terminate(),
  };
}

test(
  "post: a Worker posts 100,000 messages; the manager receives all, in order",
  { timeoutMs: 60_000 },
  async () => {
    await using mgr = new Manager();
    using wk = worker();
    const N = 100_000;
    wk.w.postMessage({ port: mgr.postPort(), mode: "count", n: N });
    let expected = 0;
    for await (const ev of mgr) {
      if (ev.type !== "post") continue;
      assert.equal(ev.isText, true);
      const text = ev.text();
      if (text !== String(expected)) assert.fail(`message ${expected} arrived as ${JSON.stringify(text)}`);
      if (++expected === N) break;
    }
    assert.equal(expected, N);
    assert.deepEqual(await wk.next(), { done: N });
  },
);

test("post: the mailbox holds exactly POST_MAX_COUNT messages; send() waits for room", async () => {
  await using mgr = new Manager();
  using poster = openPoster(mgr.postPort());
  // Nobody polls the manager yet: the mailbox fills up.
  for (let i = 0; i < POST_MAX_COUNT; i++) {
    assert.equal(poster.post(new Uint8Array([i & 255])), true, `post ${i}`);
  }
  assert.equal(poster.post("one too many"), false);
  const sent = poster.send("after room"); // waits off the JS thread
  let n = 0;
  let last = "";
  for await (const ev of mgr) {
    if (ev.type !== "post") continue;
    if (n < POST_MAX_COUNT) assert.deepEqual([...ev.bytes], [n & 255]);
    else last = ev.text();
    if (++n === POST_MAX_COUNT + 1) break;
  }
  await sent;
  assert.equal(last, "after room");
});

test("post: a message over POST_MAX_BYTES is refused with Invalid; bytes arrive exact", async () => {
  await using mgr = new Manager();
  using poster = openPoster(mgr.postPort());
  assert.throws(
    () => poster.post(new Uint8Array(POST_MAX_BYTES + 1)),
    (e) => e instanceof MgnetError && e.code === "Invalid",
  );
  const big = new Uint8Array(1 << 20).map((_, i) => (i * 7) & 255);
  assert.equal(poster.post(big), true);
  assert.equal(poster.post(""), true);
  assert.equal(poster.post("é€😀"), true);
  const got: [Uint8Array, boolean][] = [];
  for await (const ev of mgr) {
    if (ev.type === "post") got.push([ev.bytes, ev.isText]);
    if (got.length === 3) break;
  }
  assert.deepEqual(got[0], [big, false]);
  assert.deepEqual(got[1], [new Uint8Array(0), true]);
  assert.deepEqual(got[2], [new TextEncoder().encode("é€😀"), true]);
});

test("post: a post wakes a waiting loop at once (not at its 1 s wait timeout)", async () => {
  await using mgr = new Manager();
  using poster = openPoster(mgr.postPort());
  const delays: number[] = [];
  let sentAt = 0;
  const post = () =>
    setTimeout(() => {
      sentAt = performance.now();
      poster.post("x");
    }, 30); // the loop is in its native wait by then
  post();
  for await (const ev of mgr) {
    if (ev.type !== "post") continue;
    delays.push(performance.now() - sentAt);
    if (delays.length === 3) break;
    post();
  }
  // The wait would otherwise last up to 1000 ms.
  assert.ok(delays.every((d) => d < 500), delays.join(", "));
});

test("post: a Worker posting after the manager closed gets ManagerClosedError; so does openPoster", async () => {
  const mgr = new Manager();
  const port = mgr.postPort();
  using wk = worker();
  wk.w.postMessage({ port, mode: "open" });
  assert.deepEqual(await wk.next(), { opened: true });
  await mgr.close();
  wk.w.postMessage({ mode: "post" });
  assert.deepEqual(await wk.next(), { error: "ManagerClosedError", after: 0 });
  assert.throws(() => openPoster(port), ManagerClosedError);
  assert.throws(() => mgr.postPort(), ManagerClosedError);
  assert.throws(() => openPoster({ kind: "x", token: 1 } as unknown as PostPort), /not a post port/);
});

test("post: the manager closing while a Worker floods it does not crash; the Worker gets ManagerClosedError", async () => {
  const mgr = new Manager();
  using wk = worker();
  wk.w.postMessage({ port: mgr.postPort(), mode: "flood" });
  let n = 0;
  for await (const ev of mgr) {
    if (ev.type !== "post") continue;
    assert.deepEqual([...ev.bytes], [n & 255, (n >> 8) & 255]);
    if (++n === 20_000) break; // breaking out closes the manager while the worker posts
  }
  assert.equal(mgr.closed, true);
  const report = await wk.next();
  assert.equal(report.error, "ManagerClosedError");
  assert.ok(report.after >= 20_000, `the worker had posted ${report.after}`);
  // Liveness: a new manager and mailbox work.
  await using again = new Manager();
  using poster = openPoster(again.postPort());
  poster.post("alive");
  for await (const ev of again) if (ev.type === "post") break;
});

test("post: onPost receives posts in handler mode; a second, different onPost is refused", async () => {
  await using mgr = new Manager();
  const got: string[] = [];
  const two = Promise.withResolvers<void>();
  const onPost = (ev: { text(): string }) => {
    got.push(ev.text());
    if (got.length === 2) two.resolve();
  };
  const port = mgr.postPort({ onPost });
  assert.equal(mgr.postPort({ onPost }), port, "one port per manager");
  assert.throws(() => mgr.postPort({ onPost() {} }), (e) => e instanceof MgnetError && e.code === "State");
  using poster = openPoster(port);
  poster.post("a");
  poster.post("b");
  await two.promise;
  assert.deepEqual(got, ["a", "b"]);
  poster.close();
  assert.throws(() => poster.post("c"), /poster is closed/);
});
