/**
 * Writes a request body straight to a file, with a size limit, through a
 * temporary file so a failed upload leaves nothing behind.
 *
 * @module
 */

import type { HttpRequestEvent } from "./request_event.ts";

/** Options of {@linkcode saveBodyToFile}. */
export interface SaveBodyOptions {
  /** Most bytes accepted; a larger body gets 413 and nothing is kept. */
  limit: number;
  /** File mode of the new file (default 0o644, before the umask). */
  mode?: number;
}

/**
 * Writes a request's body to `path` as it arrives, through a temporary
 * file in the same directory that is renamed into place once the body is
 * complete. A body over `limit` (by its `content-length`, or once more
 * bytes than that arrived) is answered `413 Content Too Large` here and
 * the connection closes; a client that leaves midway leaves nothing
 * either: the temporary file is removed in every failure.
 *
 * Works with buffered bodies too; streamed ones (`streamBodiesOver`) never
 * sit in memory whole.
 *
 * @param ev The request.
 * @param path Where the body goes (replaced if it exists).
 * @param options The size limit.
 * @returns The bytes written, or `null` if the body was refused with 413.
 * @throws {ConnectionClosedError} if the client left before the body ended;
 *   file system errors as they come.
 * @example Accepting uploads of up to 1 GiB without holding them in memory
 * ```ts
 * import assert from "node:assert/strict";
 * import { Manager } from "../../mod.ts";
 * import { saveBodyToFile } from "./save_body.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await using mgr = new Manager({ streamBodiesOver: 1 << 20, maxBodySize: 2 ** 31 - 1 });
 * const { port } = mgr.listen("http://127.0.0.1:0", {
 *   async onRequest(ev) {
 *     const n = await saveBodyToFile(ev, `${dir}/upload.bin`, { limit: 1 << 30 });
 *     if (n !== null) ev.reply(201, `stored ${n} bytes`);
 *   },
 * });
 * const res = await fetch(`http://127.0.0.1:${port}/`, { method: "PUT", body: new Uint8Array(3 << 20) });
 * assert.equal(await res.text(), "stored 3145728 bytes");
 * assert.equal((await Deno.stat(`${dir}/upload.bin`)).size, 3 << 20);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveBodyToFile(
  ev: HttpRequestEvent,
  path: string,
  options: SaveBodyOptions,
): Promise<number | null> {
  const limit = options.limit;
  if (!(limit >= 0)) throw new RangeError("limit must be a non-negative number of bytes");
  const declared = Number(ev.header("content-length") ?? NaN);
  const refuse = () => {
    if (!ev.replied && !ev.conn.closed) {
      ev.reply(413, `the body is larger than ${limit} bytes`, { connection: "close" });
    }
    return null;
  };
  if (declared > limit) return refuse();
  const slash = path.lastIndexOf("/");
  const temp = `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.${crypto.randomUUID()}.partial`;
  const file = await Deno.open(temp, { write: true, createNew: true, mode: options.mode ?? 0o644 });
  let written = 0;
  let kept = false;
  try {
    for await (const chunk of ev.bodyChunks()) {
      written += chunk.length;
      if (written > limit) return refuse();
      for (let off = 0; off < chunk.length;) off += await file.write(chunk.subarray(off));
    }
    file.close();
    await Deno.rename(temp, path);
    kept = true;
    return written;
  } finally {
    if (!kept) {
      try {
        file.close();
      } catch { /* closed above */ }
      await Deno.remove(temp).catch(() => {});
    }
  }
}
