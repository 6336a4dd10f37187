/**
 * File uploads: `/` is a form; `POST /upload` parses the
 * `multipart/form-data` body and saves each file, under a sanitised unique
 * name, in a fresh temporary directory (printed at start, or `UPLOAD_DIR`).
 * Bodies over 16 MiB are refused with 413 before any handler runs.
 *
 *   PORT=8000 HOSTNAME=127.0.0.1 deno task serve:upload
 *
 * Or: `curl -F file=@README.md http://127.0.0.1:8000/upload`.
 */
import { Manager } from "../mod.ts";
import { MultipartError } from "../src/http/multipart.ts";
import { announce, listenUrl, onStopSignal } from "./_server_env.ts";
import { saveUploads } from "./_uploads.ts";

const dir = Deno.env.get("UPLOAD_DIR") ?? await Deno.makeTempDir({ prefix: "mgnet-uploads-" });
const FORM = `<!doctype html><meta charset="utf-8"><title>mgnet upload</title>
<form method="post" action="/upload" enctype="multipart/form-data">
<input name="note" placeholder="a note"> <input type="file" name="file" multiple> <button>Upload</button>
</form>`;

const mgr = new Manager({ maxBodySize: 16 << 20 });
const listener = mgr.listen(listenUrl(), {
  async onRequest(ev) {
    if (ev.path !== "/upload") {
      return void ev.reply(200, FORM, { "content-type": "text/html; charset=utf-8" });
    }
    if (ev.method !== "POST") return void ev.reply(405, "use POST", { allow: "POST" });
    try {
      const saved = await saveUploads(dir, ev.body, ev.header("content-type") ?? "");
      ev.reply(200, JSON.stringify(saved), { "content-type": "application/json" });
    } catch (e) {
      if (!(e instanceof MultipartError)) throw e;
      ev.reply(400, `bad upload: ${e.message}`);
    }
  },
});
announce(listener.port);
console.log(`Uploads are saved in ${dir}`);
onStopSignal(() => mgr.shutdown({ timeout: 1000 }));
await mgr.finished;
