/**
 * Server-side parsing of `Authorization` credentials: Basic (RFC 7617,
 * UTF-8) and Bearer (RFC 6750), plus the challenge headers and a
 * constant-time comparison for checking secrets.
 *
 * @module
 */

import { utf8Encoder } from "../core/bytes.ts";

/** Credentials of the `Basic` scheme. */
export interface BasicCredentials {
  /** Discriminant. */
  scheme: "basic";
  /** The user name (everything before the first colon). */
  username: string;
  /** The password (everything after it; may contain colons). */
  password: string;
}

/** Credentials of the `Bearer` scheme. */
export interface BearerCredentials {
  /** Discriminant. */
  scheme: "bearer";
  /** The token, as sent. */
  token: string;
}

/** What {@linkcode parseAuthorization} understands. */
export type Credentials = BasicCredentials | BearerCredentials;

const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Parses an `Authorization` header value. The scheme is matched
 * case-insensitively; anything malformed (bad base64, no colon in Basic,
 * invalid UTF-8, a token with characters outside token68) gives `undefined`,
 * as does an unsupported scheme.
 *
 * @param value The header value (`ev.header("authorization")`, `req.headers.get(...)`).
 * @returns The credentials, or `undefined`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseAuthorization } from "./auth.ts";
 *
 * assert.deepEqual(parseAuthorization("Basic " + btoa("alice:s3cret")), {
 *   scheme: "basic",
 *   username: "alice",
 *   password: "s3cret",
 * });
 * assert.deepEqual(parseAuthorization("Bearer abc.def"), { scheme: "bearer", token: "abc.def" });
 * assert.equal(parseAuthorization("Basic not*base64"), undefined);
 * ```
 */
export function parseAuthorization(value: string | null | undefined): Credentials | undefined {
  if (!value) return undefined;
  const m = /^[ \t]*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)[ \t]+([^ \t].*?)[ \t]*$/.exec(value);
  if (!m) return undefined;
  const scheme = m[1].toLowerCase();
  const param = m[2];
  if (!TOKEN68.test(param)) return undefined;
  if (scheme === "bearer") return { scheme, token: param };
  if (scheme !== "basic") return undefined;
  let raw: string;
  try {
    raw = atob(param);
  } catch {
    return undefined;
  }
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
  const colon = text.indexOf(":");
  if (colon < 0) return undefined;
  return { scheme, username: text.slice(0, colon), password: text.slice(colon + 1) };
}

function quoted(s: string): string {
  if (/[\0\r\n]/.test(s)) throw new TypeError("a challenge parameter must not contain CR, LF or NUL");
  return `"${s.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/**
 * The `WWW-Authenticate` value asking for Basic credentials in UTF-8.
 *
 * @param realm The protection space shown to the user.
 * @returns The header value.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { basicChallenge } from "./auth.ts";
 *
 * assert.equal(basicChallenge("admin"), 'Basic realm="admin", charset="UTF-8"');
 * ```
 */
export function basicChallenge(realm: string): string {
  return `Basic realm=${quoted(realm)}, charset="UTF-8"`;
}

/**
 * The `WWW-Authenticate` value for a Bearer-protected resource (RFC 6750 3).
 *
 * @param realm The protection space.
 * @param error `"invalid_token"` and friends, when a token was presented.
 * @returns The header value.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bearerChallenge } from "./auth.ts";
 *
 * assert.equal(bearerChallenge("api", "invalid_token"), 'Bearer realm="api", error="invalid_token"');
 * ```
 */
export function bearerChallenge(realm: string, error?: string): string {
  return `Bearer realm=${quoted(realm)}${error === undefined ? "" : `, error=${quoted(error)}`}`;
}

/**
 * Compares two secrets in time that depends only on their lengths, not on
 * where they differ (for passwords and tokens).
 *
 * @param a One string.
 * @param b The other.
 * @returns Whether they are equal.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { timingSafeEqual } from "./auth.ts";
 *
 * assert.equal(timingSafeEqual("s3cret", "s3cret"), true);
 * assert.equal(timingSafeEqual("s3cret", "guess!"), false);
 * ```
 */
export function timingSafeEqual(a: string, b: string): boolean {
  const x = utf8Encoder.encode(a);
  const y = utf8Encoder.encode(b);
  const n = Math.max(x.length, y.length);
  let diff = x.length ^ y.length;
  for (let i = 0; i < n; i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}
