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
 * ```ts ignore
 * const mgr = new Manager({ streamBodiesOver: 1 << 20, maxBodySize: 2 ** 31 - 1 });
 * mgr.listen("http://127.0.0.1:8000", {
 *   async onRequest(ev) {
 *     const n = await saveBodyToFile(ev, "/srv/upload.bin", { limit: 1 << 30 });
 *     if (n !== null) ev.reply(201, `stored ${n} bytes`);
 *   },
 * });
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
