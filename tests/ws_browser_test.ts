/**
 * A real browser in the chat: Debian's `chromium`, headless, driven by
 * puppeteer-core, opens examples/ws_chat.ts (`serve:ws-chat`) in two pages;
 * a message typed in one must appear in the other's DOM. Skipped, saying
 * so, where /usr/bin/chromium is missing (`apt-get install -y chromium`;
 * .ci/run installs it).
 */
import assert from "node:assert/strict";
import { readUntil, test } from "./helpers.ts";

const CHROMIUM = "/usr/bin/chromium";
const available = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();
if (!available) {
  console.error(
    `ws_browser_test: ${CHROMIUM} is missing (apt-get install -y chromium): the browser test is skipped`,
  );
}

test(
  "a headless chromium chats through examples/ws_chat.ts: a message sent in one page appears in the other",
  {
    ignore: !available,
    timeoutMs: 20_000,
  },
  async () => {
    const { default: puppeteer } = await import("puppeteer-core");
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-ffi",
        "--allow-env",
        "--allow-read",
        new URL("../examples/ws_chat.ts", import.meta.url).pathname,
      ],
      env: { PORT: "0", HOSTNAME: "127.0.0.1" },
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const profile = await Deno.makeTempDir({ prefix: "mgnet-chromium-" });
    let browser: Awaited<ReturnType<typeof puppeteer.launch>> | undefined;
    try {
      const out = await readUntil(reader, (t) => /Listening on (\S+)\n/.test(t), "ws_chat.ts to listen");
      const url = /Listening on (\S+)\n/.exec(out)![1];
      browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        // The browser is not under test: under `deno task test:asan` it must not
        // inherit the preloaded AddressSanitizer runtime (it hangs at start).
        env: Object.fromEntries(
          Object.entries(Deno.env.toObject()).filter(([k]) => k !== "LD_PRELOAD" && k !== "ASAN_OPTIONS"),
        ),
        timeout: 8_000,
        headless: true,
        userDataDir: profile,
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
        ],
      });
      const open = async () => {
        const page = await browser!.newPage();
        await page.goto(url);
        await page.waitForSelector('body[data-state="open"]', { timeout: 5_000 });
        return page;
      };
      const lines = (page: Awaited<ReturnType<typeof open>>) =>
        page.$$eval("#log > div", (divs) => divs.map((d) => d.textContent ?? ""));
      // Evaluated in the page: the log holds exactly n lines. Polled by a
      // timer: the default (requestAnimationFrame) never runs in a background tab.
      const waitLines = (page: Awaited<ReturnType<typeof open>>, n: number) =>
        page.waitForFunction(`document.querySelectorAll("#log > div").length === ${n}`, {
          timeout: 5_000,
          polling: 50,
        });
      const a = await open();
      // a's page shows its own join before b opens, so the names are fixed.
      await waitLines(a, 1);
      const b = await open();
      await waitLines(a, 2);
      await a.type("#msg", "hello from a real browser");
      await a.keyboard.press("Enter");
      await waitLines(b, 2);
      assert.deepEqual(await lines(b), ["guest2 joined", "guest1: hello from a real browser"]);
      await waitLines(a, 3);
      assert.deepEqual(await lines(a), [
        "guest1 joined",
        "guest2 joined",
        "guest1: hello from a real browser",
      ]);
      assert.equal(
        await a.$eval("#msg", (el) => (el as unknown as { value: string }).value),
        "",
        "the input was cleared",
      );
      await a.close();
      // b hears a leave: the server saw the browser's close.
      await waitLines(b, 3);
      assert.equal((await lines(b))[2], "guest1 left");
      await b.close();
    } finally {
      await browser?.close();
      try {
        child.kill("SIGINT");
      } catch { /* exited */ }
      const status = await child.status;
      await reader.cancel();
      await Deno.remove(profile, { recursive: true });
      assert.equal(status.code, 0, "ws_chat.ts exits cleanly on SIGINT");
    }
  },
);
