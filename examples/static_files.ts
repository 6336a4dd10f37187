/**
 * Static files: `examples/web_root/` served with content types, `ETag` /
 * `Last-Modified` revalidation (304), byte ranges (206/416), HEAD, a
 * redirect for directories without their slash, and no way out of the root.
 *
 *   PORT=8000 HOSTNAME=127.0.0.1 deno task serve:static
 *
 * Try `curl -i -r 0-99 http://127.0.0.1:8000/index.html`.
 */
import { Manager } from "../mod.ts";
import { serveDir } from "../src/http/static_files.ts";
import { announce, listenUrl, onStopSignal } from "./_server_env.ts";

const root = new URL("./web_root/", import.meta.url).pathname;

const mgr = new Manager();
const listener = mgr.listen(listenUrl(), {
  onRequest: (ev) => serveDir(ev, root, { maxAge: 60 }),
});
announce(listener.port);
onStopSignal(() => mgr.shutdown({ timeout: 1000 }));
await mgr.finished;
