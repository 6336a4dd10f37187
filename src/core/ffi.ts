/**
 * The native library: its symbol table (one entry per C export, with the C
 * prototype beside it) and the loader. Nothing here is re-exported to users;
 * handles and file descriptors stay inside `src/`.
 *
 * Loading order (see src/core/native.ts): `MGNET_LIB_PATH`, a checkout's
 * `rust/target/release/` build, a from-source build in the cache, a cached
 * download, a verified download from this version's release assets.
 *
 * @module
 */

import { errorFromStatus } from "./errors.ts";
import { BUILD_COMMAND, type Located, locateLibrary, NativeLibraryError } from "./native.ts";

/** The ABI version this TypeScript expects (`mgnet_abi_version`). */
export const ABI_VERSION = 6;

/** Every symbol of the C ABI (`rust/src/lib.rs`). */
export const symbols = {
  // uint32_t mgnet_abi_version(void)
  mgnet_abi_version: { parameters: [], result: "u32" },
  // int32_t mgnet_mongoose_version(uint8_t *out, uint32_t cap)
  mgnet_mongoose_version: { parameters: ["buffer", "u32"], result: "i32" },
  // int32_t mgnet_last_error(uint8_t *out, uint32_t cap)
  mgnet_last_error: { parameters: ["buffer", "u32"], result: "i32" },
  // int32_t mgnet_manager_new(uint32_t max_head, uint32_t max_headers, uint32_t max_uri, double max_body,
  //   double stream_over /* < 0: never */)
  mgnet_manager_new: { parameters: ["u32", "u32", "u32", "f64", "f64"], result: "i32" },
  // int32_t mgnet_client_want_drain(uint32_t h, uint32_t slot, double id, uint32_t mark)
  mgnet_client_want_drain: { parameters: ["u32", "u32", "f64", "u32"], result: "i32" },
  // int32_t mgnet_client_ack(uint32_t h, uint32_t slot, double id, uint32_t n)
  mgnet_client_ack: { parameters: ["u32", "u32", "f64", "u32"], result: "i32" },
  // int32_t mgnet_body_ack(uint32_t h, uint32_t slot, double id, uint32_t n)
  mgnet_body_ack: { parameters: ["u32", "u32", "f64", "u32"], result: "i32" },
  // int32_t mgnet_manager_free(uint32_t h)
  mgnet_manager_free: { parameters: ["u32"], result: "i32" },
  // int32_t mgnet_listen(uint32_t h, const uint8_t *url, uint32_t url_len, uint8_t out[16])
  mgnet_listen: { parameters: ["u32", "buffer", "u32", "buffer"], result: "i32" },
  // int32_t mgnet_poll(uint32_t h, uint8_t *buf, uint32_t off, uint32_t cap)
  mgnet_poll: { parameters: ["u32", "buffer", "u32", "u32"], result: "i32" },
  // int32_t mgnet_take(uint32_t h, uint8_t *buf, uint32_t cap)
  mgnet_take: { parameters: ["u32", "buffer", "u32"], result: "i32" },
  // int32_t mgnet_http_reply(uint32_t h, uint32_t slot, double id, uint32_t seq, uint32_t status,
  //   uint32_t flags, const uint8_t *head, uint32_t head_len, const uint8_t *body,
  //   uint32_t body_off, uint32_t body_len)
  mgnet_http_reply: {
    parameters: ["u32", "u32", "f64", "u32", "u32", "u32", "buffer", "u32", "buffer", "u32", "u32"],
    result: "i32",
  },
  // int32_t mgnet_http_start(uint32_t h, uint32_t slot, double id, uint32_t seq, uint32_t status,
  //   uint32_t flags, const uint8_t *head, uint32_t head_len, double length /* < 0: unknown */)
  mgnet_http_start: {
    parameters: ["u32", "u32", "f64", "u32", "u32", "u32", "buffer", "u32", "f64"],
    result: "i32",
  },
  // int32_t mgnet_http_write(uint32_t h, uint32_t slot, double id, uint32_t seq, const uint8_t *data,
  //   uint32_t off, uint32_t len)
  mgnet_http_write: { parameters: ["u32", "u32", "f64", "u32", "buffer", "u32", "u32"], result: "i32" },
  // int32_t mgnet_http_end(uint32_t h, uint32_t slot, double id, uint32_t seq, uint32_t close)
  mgnet_http_end: { parameters: ["u32", "u32", "f64", "u32", "u32"], result: "i32" },
  // int32_t mgnet_want_drain(uint32_t h, uint32_t slot, double id, uint32_t seq, uint32_t threshold)
  mgnet_want_drain: { parameters: ["u32", "u32", "f64", "u32", "u32"], result: "i32" },
  // int32_t mgnet_cache_set(uint32_t h, const uint8_t *target, uint32_t target_len, uint32_t status,
  //   const uint8_t *head, uint32_t head_len, const uint8_t *body, uint32_t body_len,
  //   const uint8_t *etag, uint32_t etag_len, double ttl_ms, const uint8_t *tags, uint32_t tags_len)
  mgnet_cache_set: {
    parameters: [
      "u32",
      "buffer",
      "u32",
      "u32",
      "buffer",
      "u32",
      "buffer",
      "u32",
      "buffer",
      "u32",
      "f64",
      "buffer",
      "u32",
    ],
    result: "i32",
  },
  // int32_t mgnet_cache_delete(uint32_t h, const uint8_t *target, uint32_t target_len)
  mgnet_cache_delete: { parameters: ["u32", "buffer", "u32"], result: "i32" },
  // int32_t mgnet_cache_invalidate(uint32_t h, const uint8_t *tag, uint32_t tag_len)
  mgnet_cache_invalidate: { parameters: ["u32", "buffer", "u32"], result: "i32" },
  // int32_t mgnet_flush(uint32_t h)
  mgnet_flush: { parameters: ["u32"], result: "i32" },
  // int32_t mgnet_close(uint32_t h, uint32_t slot, double id, uint32_t drain)
  mgnet_close: { parameters: ["u32", "u32", "f64", "u32"], result: "i32" },
  // int32_t mgnet_connect(uint32_t h, const uint8_t *addr, uint32_t addr_len, uint32_t flags,
  //   const uint8_t *name, uint32_t name_len, const uint8_t *ca, uint32_t ca_len, uint8_t *out)
  mgnet_connect: {
    parameters: ["u32", "buffer", "u32", "u32", "buffer", "u32", "buffer", "u32", "buffer"],
    result: "i32",
  },
  // int32_t mgnet_send(uint32_t h, uint32_t slot, double id, const uint8_t *data, uint32_t off, uint32_t len)
  mgnet_send: { parameters: ["u32", "u32", "f64", "buffer", "u32", "u32"], result: "i32" },
  // int32_t mgnet_shutdown(uint32_t h)
  mgnet_shutdown: { parameters: ["u32"], result: "i32" },
  // int32_t mgnet_wait_fd(uint32_t h)
  mgnet_wait_fd: { parameters: ["u32"], result: "i32" },
  // int32_t mgnet_next_timeout(uint32_t h)
  mgnet_next_timeout: { parameters: ["u32"], result: "i32" },
  // int32_t mgnet_wake(uint32_t h)
  mgnet_wake: { parameters: ["u32"], result: "i32" },
  // int32_t mgnet_wait(int32_t epoll_fd, int32_t timeout_ms) -- runs off the JS thread
  mgnet_wait: { parameters: ["i32", "i32"], result: "i32", nonblocking: true },
  // the same function, called on the JS thread (short waits while busy)
  mgnet_wait_sync: { name: "mgnet_wait", parameters: ["i32", "i32"], result: "i32" },
  // int32_t mgnet_watcher_new(uint32_t h, void (*cb)(int32_t), uint8_t fd_out[4])
  mgnet_watcher_new: { parameters: ["u32", "function", "buffer"], result: "i32" },
  // int32_t mgnet_watcher_arm(uint32_t id, int32_t timeout_ms)
  mgnet_watcher_arm: { parameters: ["u32", "i32"], result: "i32" },
  // int32_t mgnet_watcher_free(uint32_t id)
  mgnet_watcher_free: { parameters: ["u32"], result: "i32" },
  // int32_t mgnet_awaiting(uint32_t h)
  mgnet_awaiting: { parameters: ["u32"], result: "i32" },
  // int32_t mgnet_stats(uint32_t h, uint8_t out[32]) -- polls, accepted, requests, cache hits as doubles
  mgnet_stats: { parameters: ["u32", "buffer"], result: "i32" },
  // --- TCP (src/net/, rust/src/net/) ---
  // int32_t mgnet_tcp_framing(uint32_t h, uint32_t slot, double id, uint32_t kind, uint32_t prefix,
  //   uint32_t max_frame)
  mgnet_tcp_framing: { parameters: ["u32", "u32", "f64", "u32", "u32", "u32"], result: "i32" },
  // int32_t mgnet_tcp_connect(uint32_t h, const uint8_t *addr, uint32_t addr_len, uint32_t kind,
  //   uint32_t prefix, uint32_t max_frame, uint8_t *out)
  mgnet_tcp_connect: { parameters: ["u32", "buffer", "u32", "u32", "u32", "u32", "buffer"], result: "i32" },
  // int32_t mgnet_tcp_send(uint32_t h, uint32_t slot, double id, const uint8_t *data, uint32_t off, uint32_t len)
  mgnet_tcp_send: { parameters: ["u32", "u32", "f64", "buffer", "u32", "u32"], result: "i32" },
  // int32_t mgnet_tcp_queued(uint32_t h, uint32_t slot, double id)
  mgnet_tcp_queued: { parameters: ["u32", "u32", "f64"], result: "i32" },
  // int32_t mgnet_tcp_want_drain(uint32_t h, uint32_t slot, double id, uint32_t mark)
  mgnet_tcp_want_drain: { parameters: ["u32", "u32", "f64", "u32"], result: "i32" },
  // int32_t mgnet_tcp_end(uint32_t h, uint32_t slot, double id)
  mgnet_tcp_end: { parameters: ["u32", "u32", "f64"], result: "i32" },
  // int32_t mgnet_tcp_pause(uint32_t h, uint32_t slot, double id, uint32_t paused)
  mgnet_tcp_pause: { parameters: ["u32", "u32", "f64", "u32"], result: "i32" },

  // --- UDP, DNS, SNTP (src/net/, rust/src/net/) ---
  // int32_t mgnet_udp_bind(uint32_t h, const uint8_t *url, uint32_t url_len, uint32_t max, uint32_t flags,
  //   uint32_t rcvbuf, uint8_t out[24])
  mgnet_udp_bind: { parameters: ["u32", "buffer", "u32", "u32", "u32", "u32", "buffer"], result: "i32" },
  // int32_t mgnet_udp_send(uint32_t h, uint32_t slot, double id, const uint8_t *addr, uint32_t addr_off,
  //   uint32_t port, uint32_t flags, const uint8_t *data, uint32_t off, uint32_t len)
  mgnet_udp_send: {
    parameters: ["u32", "u32", "f64", "buffer", "u32", "u32", "u32", "buffer", "u32", "u32"],
    result: "i32",
  },
  // int32_t mgnet_dns_query(uint32_t h, const uint8_t addr[16], uint32_t port, uint32_t flags,
  //   const uint8_t *name, uint32_t name_len, uint32_t types, uint8_t out[8])
  mgnet_dns_query: {
    parameters: ["u32", "buffer", "u32", "u32", "buffer", "u32", "u32", "buffer"],
    result: "i32",
  },
  // int32_t mgnet_sntp_query(uint32_t h, const uint8_t addr[16], uint32_t port, uint32_t flags, uint8_t out[8])
  mgnet_sntp_query: { parameters: ["u32", "buffer", "u32", "u32", "buffer"], result: "i32" },
  // net: timers, posting into a manager, the keep-alive count; util: JSON lookup, glob match
  // int32_t mgnet_timer_add(uint32_t h, double ms, uint32_t flags /* 1 repeat, 2 ref */, uint8_t out[8])
  mgnet_timer_add: { parameters: ["u32", "f64", "u32", "buffer"], result: "i32" },
  // int32_t mgnet_timer_cancel(uint32_t h, double id)
  mgnet_timer_cancel: { parameters: ["u32", "f64"], result: "i32" },
  // int32_t mgnet_timer_ref(uint32_t h, double id, uint32_t ref)
  mgnet_timer_ref: { parameters: ["u32", "f64", "u32"], result: "i32" },
  // int32_t mgnet_refs(uint32_t h)
  mgnet_refs: { parameters: ["u32"], result: "i32" },
  // int32_t mgnet_post_open(uint32_t h, uint8_t out[8])
  mgnet_post_open: { parameters: ["u32", "buffer"], result: "i32" },
  // int32_t mgnet_poster_open(double token) -- any thread
  mgnet_poster_open: { parameters: ["f64"], result: "i32" },
  // int32_t mgnet_post(uint32_t p, const uint8_t *data, uint32_t off, uint32_t len, uint32_t flags /* 1 text */)
  mgnet_post: { parameters: ["u32", "buffer", "u32", "u32", "u32"], result: "i32" },
  // int32_t mgnet_poster_wait(uint32_t p, uint32_t len, uint32_t ms) -- blocks: runs off the JS thread
  mgnet_poster_wait: { parameters: ["u32", "u32", "u32"], result: "i32", nonblocking: true },
  // int32_t mgnet_poster_close(uint32_t p)
  mgnet_poster_close: { parameters: ["u32"], result: "i32" },
  // int32_t mgnet_json_get(const uint8_t *json, uint32_t json_len, const uint8_t *path, uint32_t path_len,
  //   uint8_t out[4] /* token length, 0: not found */) -- returns the token's offset
  mgnet_json_get: { parameters: ["buffer", "u32", "buffer", "u32", "buffer"], result: "i32" },
  // int32_t mgnet_glob_match(const uint8_t *s, uint32_t s_len, const uint8_t *pattern, uint32_t pattern_len,
  //   uint8_t *caps /* u32 offset, u32 length pairs */, uint32_t caps_n)
  mgnet_glob_match: { parameters: ["buffer", "u32", "buffer", "u32", "buffer", "u32"], result: "i32" },

  // --- WebSocket (src/ws/, rust/src/ws/) ---
  // int32_t mgnet_ws_accept(uint32_t h, uint32_t slot, double id, uint32_t seq, const uint8_t *key,
  //   uint32_t key_len, const uint8_t *proto, uint32_t proto_len, const uint8_t *offer, uint32_t offer_len,
  //   const uint8_t *head, uint32_t head_len, double max_message, uint32_t close_timeout_ms, uint32_t flags)
  mgnet_ws_accept: {
    parameters: [
      "u32",
      "u32",
      "f64",
      "u32",
      "buffer",
      "u32",
      "buffer",
      "u32",
      "buffer",
      "u32",
      "buffer",
      "u32",
      "f64",
      "u32",
      "u32",
    ],
    result: "i32",
  },
  // int32_t mgnet_ws_send(uint32_t h, uint32_t slot, double id, uint32_t opcode, uint32_t compress,
  //   const uint8_t *data, uint32_t off, uint32_t len)
  mgnet_ws_send: { parameters: ["u32", "u32", "f64", "u32", "u32", "buffer", "u32", "u32"], result: "i32" },
  // int32_t mgnet_ws_close(uint32_t h, uint32_t slot, double id, uint32_t code, const uint8_t *reason,
  //   uint32_t reason_len)
  mgnet_ws_close: { parameters: ["u32", "u32", "f64", "u32", "buffer", "u32"], result: "i32" },
  // int32_t mgnet_ws_broadcast(uint32_t h, const uint8_t *targets /* f64 slot, id pairs */, uint32_t count,
  //   uint32_t opcode, const uint8_t *data, uint32_t off, uint32_t len)
  mgnet_ws_broadcast: { parameters: ["u32", "buffer", "u32", "u32", "buffer", "u32", "u32"], result: "i32" },
  // int32_t mgnet_ws_want_drain(uint32_t h, uint32_t slot, double id, uint32_t mark)
  mgnet_ws_want_drain: { parameters: ["u32", "u32", "f64", "u32"], result: "i32" },
  // int32_t mgnet_tls_info(uint32_t h, uint32_t slot, double id, uint8_t *out, uint32_t cap)
  mgnet_tls_info: { parameters: ["u32", "u32", "f64", "buffer", "u32"], result: "i32" },
  // int32_t mgnet_ws_hold(uint32_t h, uint32_t slot, double id, uint32_t on)
  mgnet_ws_hold: { parameters: ["u32", "u32", "f64", "u32"], result: "i32" },
  // int32_t mgnet_ws_connect(uint32_t h, const uint8_t *addr, uint32_t addr_len, uint32_t flags,
  //   const uint8_t *name, uint32_t name_len, const uint8_t *ca, uint32_t ca_len, const uint8_t *head,
  //   uint32_t head_len, const uint8_t *protocols, uint32_t protocols_len, double max_message,
  //   uint32_t close_timeout_ms, uint32_t ws_flags, uint8_t *out)
  mgnet_ws_connect: {
    parameters: [
      "u32",
      "buffer",
      "u32",
      "u32",
      "buffer",
      "u32",
      "buffer",
      "u32",
      "buffer",
      "u32",
      "buffer",
      "u32",
      "f64",
      "u32",
      "u32",
      "buffer",
    ],
    result: "i32",
  },
  // --- WebSocket keep-alive and send buffer limit (src/ws/, rust/src/ws/, issue 12) ---
  // int32_t mgnet_ws_tune(uint32_t h, uint32_t slot, double id, uint32_t ping_ms, uint32_t pong_ms,
  //   double max_buffered)
  mgnet_ws_tune: { parameters: ["u32", "u32", "f64", "u32", "u32", "f64"], result: "i32" },
  // TLS (rust/src/tls/)
  // int32_t mgnet_tls_listen(uint32_t h, const uint8_t *url, uint32_t url_len, const uint8_t *spec,
  //   uint32_t spec_len, uint8_t out[16])
  mgnet_tls_listen: { parameters: ["u32", "buffer", "u32", "buffer", "u32", "buffer"], result: "i32" },
  // int32_t mgnet_tls_reload(uint32_t h, uint32_t slot, double id, const uint8_t *spec, uint32_t spec_len)
  mgnet_tls_reload: { parameters: ["u32", "u32", "f64", "buffer", "u32"], result: "i32" },
  // int32_t mgnet_tls_self_signed(const uint8_t *names, uint32_t names_len, uint8_t *out, uint32_t cap)
  mgnet_tls_self_signed: { parameters: ["buffer", "u32", "buffer", "u32"], result: "i32" },
  // int32_t mgnet_tls_tcp_connect(uint32_t h, const uint8_t *addr, uint32_t addr_len, uint32_t kind,
  //   uint32_t prefix, uint32_t max_frame, const uint8_t *name, uint32_t name_len, const uint8_t *spec,
  //   uint32_t spec_len, uint8_t *out)
  mgnet_tls_tcp_connect: {
    parameters: ["u32", "buffer", "u32", "u32", "u32", "u32", "buffer", "u32", "buffer", "u32", "buffer"],
    result: "i32",
  },
  // int32_t mgnet_tcp_start_tls(uint32_t h, uint32_t slot, double id, uint32_t server, const uint8_t *name,
  //   uint32_t name_len, const uint8_t *spec, uint32_t spec_len)
  mgnet_tcp_start_tls: {
    parameters: ["u32", "u32", "f64", "u32", "buffer", "u32", "buffer", "u32"],
    result: "i32",
  },
  // metrics (rust/src/core/metrics.rs; rendered in src/core/metrics.ts)
  // int32_t mgnet_metrics_enable(uint32_t h, uint32_t on)
  mgnet_metrics_enable: { parameters: ["u32", "u32"], result: "i32" },
  // int32_t mgnet_metrics_describe(uint32_t h, uint8_t *out, uint32_t cap) -- full length
  mgnet_metrics_describe: { parameters: ["u32", "buffer", "u32"], result: "i32" },
  // int32_t mgnet_metrics_read(uint32_t h, uint8_t *out /* f64 values */, uint32_t cap /* values */) -- count
  mgnet_metrics_read: { parameters: ["u32", "buffer", "u32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded library's symbols. */
export type Symbols = Deno.DynamicLibrary<typeof symbols>["symbols"];

let loaded: Symbols | undefined;

/**
 * Where the library is, found once when this module is first imported. The
 * one await costs nothing when `MGNET_LIB_PATH` or a checkout build is there
 * (it resolves synchronously) and a hash of the file when it is cached; only
 * a first run on a machine waits for a download. A failure is kept, not
 * thrown: importing mgnet never fails, the first `lib()` (the first
 * `new Manager()`) throws it.
 */
const located: { ok: true; value: Located } | { ok: false; error: unknown } = await locateLibrary().then(
  (value) => ({ ok: true as const, value }),
  (error) => ({ ok: false as const, error }),
);

/**
 * Where the native library was found, or the error that says why not.
 *
 * @returns The location.
 */
export function libraryLocation(): Located {
  if (!located.ok) throw located.error;
  return located.value;
}

/**
 * Loads the native library once and checks its ABI version.
 *
 * @returns The symbol table.
 */
export function lib(): Symbols {
  if (loaded) return loaded;
  const { path, source } = libraryLocation();
  let dl: Deno.DynamicLibrary<typeof symbols>;
  try {
    dl = Deno.dlopen(path, symbols);
  } catch (e) {
    // A denied permission is the user's to fix with a flag, not a build:
    // it reaches them as itself.
    if (e instanceof Deno.errors.NotCapable) {
      throw new Deno.errors.NotCapable(`${e.message}\nmgnet: add --allow-ffi (it loads ${path})`, {
        cause: e,
      });
    }
    throw new NativeLibraryError(
      `mgnet: cannot load the native library ${path} (found by ${source}): ` +
        (source === "checkout"
          ? "rebuild it with `deno task build`"
          : `check the file, or build one with \`${BUILD_COMMAND}\``),
      { cause: e },
    );
  }
  const abi = dl.symbols.mgnet_abi_version();
  if (abi !== ABI_VERSION) {
    dl.close();
    throw new NativeLibraryError(
      `mgnet: native library ${path} has ABI ${abi}, this code needs ${ABI_VERSION}: rebuild it with ` +
        (source === "checkout" ? "`deno task build`" : `\`${BUILD_COMMAND}\``),
    );
  }
  loaded = dl.symbols;
  return loaded;
}

const errBuf = new Uint8Array(1024);

/**
 * The calling thread's last native error message.
 *
 * @returns The message, possibly truncated to 1 KiB.
 */
export function lastError(): string {
  const n = lib().mgnet_last_error(errBuf, errBuf.length);
  return new TextDecoder().decode(errBuf.subarray(0, Math.min(n, errBuf.length)));
}

/**
 * Throws the error for a negative status, passes others through.
 *
 * @param rc A native return value.
 * @returns `rc` when it is not negative.
 */
export function check(rc: number): number {
  if (rc < 0) throw errorFromStatus(rc, lastError());
  return rc;
}

/**
 * The Mongoose version compiled into the loaded library, e.g. `"7.23"`.
 *
 * @returns The version string.
 */
export function mongooseVersion(): string {
  const buf = new Uint8Array(32);
  const n = lib().mgnet_mongoose_version(buf, buf.length);
  return new TextDecoder().decode(buf.subarray(0, Math.min(n, buf.length)));
}
