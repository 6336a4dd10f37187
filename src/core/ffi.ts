/**
 * The native library: its symbol table (one entry per C export, with the C
 * prototype beside it) and the loader. Nothing here is re-exported to users;
 * handles and file descriptors stay inside `src/`.
 *
 * Loading order: `MGNET_LIB_PATH` (an explicit path to `libmgnet.so`), else
 * the local build at `rust/target/release/`. Run `deno task build` to make it.
 *
 * @module
 */

import { errorFromStatus } from "./errors.ts";

/** The ABI version this TypeScript expects (`mgnet_abi_version`). */
export const ABI_VERSION = 4;

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
  // int32_t mgnet_awaiting(uint32_t h)
  mgnet_awaiting: { parameters: ["u32"], result: "i32" },
  // int32_t mgnet_stats(uint32_t h, uint8_t out[32]) -- polls, accepted, requests, cache hits as doubles
  mgnet_stats: { parameters: ["u32", "buffer"], result: "i32" },

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
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded library's symbols. */
export type Symbols = Deno.DynamicLibrary<typeof symbols>["symbols"];

let loaded: Symbols | undefined;

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined; // --allow-env not granted: fall back to the default path
  }
}

/** Where the library is looked for, in order. */
export function libraryCandidates(): string[] {
  const explicit = readEnv("MGNET_LIB_PATH");
  if (explicit) return [explicit];
  const local = new URL("../../rust/target/release/libmgnet.so", import.meta.url);
  return local.protocol === "file:" ? [decodeURIComponent(local.pathname)] : [];
}

/**
 * Loads the native library once and checks its ABI version.
 *
 * @returns The symbol table.
 */
export function lib(): Symbols {
  if (loaded) return loaded;
  const candidates = libraryCandidates();
  let dl: Deno.DynamicLibrary<typeof symbols> | undefined;
  let lastError: unknown;
  for (const path of candidates) {
    try {
      dl = Deno.dlopen(path, symbols);
      break;
    } catch (e) {
      // A denied permission is the user's to fix with a flag, not a build:
      // it reaches them as itself.
      if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) throw e;
      lastError = e;
    }
  }
  if (!dl) {
    throw new Error(
      `mgnet: cannot load the native library (tried ${candidates.join(", ") || "nothing"}). ` +
        "Build it with `deno task build`, or set MGNET_LIB_PATH to libmgnet.so.",
      { cause: lastError },
    );
  }
  const abi = dl.symbols.mgnet_abi_version();
  if (abi !== ABI_VERSION) {
    dl.close();
    throw new Error(
      `mgnet: native library ABI ${abi} does not match ${ABI_VERSION}: rebuild it with \`deno task build\``,
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
