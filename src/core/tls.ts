/**
 * TLS settings as the native library takes them: one buffer of tagged
 * fields (`TlsField` in `abi.ts`), for listeners (certificate, key, SNI
 * entries, client certificates) and outbound connections (CA, client
 * certificate, ALPN). TLS is a transport under any protocol: this module
 * knows no protocol.
 *
 * @module
 */

import { TlsField } from "./abi.ts";
import { utf8Encoder } from "./bytes.ts";
import { check, lib } from "./ffi.ts";

/** PEM text, or its bytes (DER is taken too). */
export type Pem = string | Uint8Array;

/** A certificate chain and its private key. */
export interface TlsKeyPair {
  /** Certificate chain, leaf first (PEM), or one DER certificate. */
  cert: Pem;
  /** Private key: PEM (PKCS#8, PKCS#1 RSA or SEC1 EC), unencrypted, or DER. */
  key: Pem;
}

/**
 * TLS options of a listener (`https://`, `tls://`) or of `serve()`: the
 * shape Deno.serve takes (`cert`, `key`), plus a CA for client certificates
 * and certificates by host name.
 */
export interface TlsListenOptions extends TlsKeyPair {
  /** CAs client certificates must chain to (with `requestCert`). */
  ca?: Pem;
  /** Ask every client for a certificate and refuse those without a valid one (needs `ca`). */
  requestCert?: boolean;
  /**
   * Certificates by host name (SNI): an exact name or `*.example.com`;
   * clients naming none of them (or no name) get `cert`/`key`.
   */
  sni?: Record<string, TlsKeyPair>;
  /** ALPN protocols to accept, most preferred first (default for `https://`: `["http/1.1"]`). */
  alpn?: string[];
}

/** TLS options of an outbound connection (the names the clients already take). */
export interface TlsClientOptions {
  /** Trusted CAs (PEM or DER); default: the system bundle. */
  ca?: Pem;
  /** Client certificate chain for mutual TLS (with `key`). */
  cert?: Pem;
  /** Private key of `cert`. */
  key?: Pem;
  /** Skip certificate and host name verification (testing only). */
  insecure?: boolean;
}

const bytesOf = (p: Pem): Uint8Array => typeof p === "string" ? utf8Encoder.encode(p) : p;

/** Builds a settings buffer from (tag, bytes) fields. */
function encode(fields: [number, Uint8Array][]): Uint8Array {
  const size = fields.reduce((n, [, b]) => n + 8 + b.length, 0);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  let at = 0;
  for (const [tag, b] of fields) {
    dv.setUint32(at, tag, true);
    dv.setUint32(at + 4, b.length, true);
    out.set(b, at + 8);
    at += 8 + b.length;
  }
  return out;
}

function checkPem(name: string, p: unknown): asserts p is Pem {
  if (typeof p !== "string" && !(p instanceof Uint8Array)) {
    throw new TypeError(`${name} must be PEM text or a Uint8Array`);
  }
}

/**
 * Encodes a listener's TLS options (checked for shape; the native side
 * parses and checks the certificates).
 *
 * @param o The options.
 * @returns The settings buffer.
 */
export function encodeListenTls(o: TlsListenOptions): Uint8Array {
  const f: [number, Uint8Array][] = [];
  const hasSni = o.sni !== undefined && Object.keys(o.sni).length > 0;
  if (o.cert !== undefined || o.key !== undefined || !hasSni) {
    checkPem("cert", o.cert);
    checkPem("key", o.key);
    f.push([TlsField.Cert, bytesOf(o.cert)], [TlsField.Key, bytesOf(o.key)]);
  }
  if (o.ca !== undefined) {
    checkPem("ca", o.ca);
    f.push([TlsField.Ca, bytesOf(o.ca)]);
  }
  if (o.requestCert) f.push([TlsField.RequestCert, new Uint8Array(0)]);
  for (const a of o.alpn ?? []) f.push([TlsField.Alpn, utf8Encoder.encode(a)]);
  for (const [name, pair] of Object.entries(o.sni ?? {})) {
    checkPem(`sni[${name}].cert`, pair?.cert);
    checkPem(`sni[${name}].key`, pair?.key);
    f.push([TlsField.Sni, utf8Encoder.encode(name)], [TlsField.Cert, bytesOf(pair.cert)], [
      TlsField.Key,
      bytesOf(pair.key),
    ]);
  }
  return encode(f);
}

/**
 * Encodes an outbound connection's TLS options.
 *
 * @param o The options; `ca` already defaulted by the caller.
 * @param alpn ALPN protocols to offer.
 * @returns The settings buffer.
 */
export function encodeClientTls(o: TlsClientOptions, alpn: string[] = []): Uint8Array {
  const f: [number, Uint8Array][] = [];
  if (o.ca !== undefined) f.push([TlsField.Ca, bytesOf(o.ca)]);
  if (o.cert !== undefined || o.key !== undefined) {
    checkPem("cert", o.cert);
    checkPem("key", o.key);
    f.push([TlsField.Cert, bytesOf(o.cert)], [TlsField.Key, bytesOf(o.key)]);
  }
  if (o.insecure) f.push([TlsField.Insecure, new Uint8Array(0)]);
  for (const a of alpn) f.push([TlsField.Alpn, utf8Encoder.encode(a)]);
  return encode(f);
}

/**
 * True if `o` carries listener TLS settings (`cert`/`key` or `sni`).
 *
 * @param o Options of any listener.
 * @returns Whether they ask for TLS.
 */
export function hasListenTls(o: unknown): o is TlsListenOptions {
  if (o === null || typeof o !== "object") return false;
  const t = o as TlsListenOptions;
  return t.cert !== undefined || t.key !== undefined || t.sni !== undefined;
}

/**
 * Generates (once per process and set of names) a self-signed P-256
 * certificate and its key, in process. For examples and development only:
 * clients must be told to trust it (`ca`).
 *
 * @param names Host names and IP addresses the certificate is for.
 * @returns PEM certificate and key.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { selfSignedCert } from "../../mod.ts";
 *
 * const { cert, key } = selfSignedCert(["localhost", "127.0.0.1"]);
 * assert.match(cert, /^-----BEGIN CERTIFICATE-----/);
 * assert.match(key, /-----BEGIN PRIVATE KEY-----/);
 * ```
 */
export function selfSignedCert(
  names: string[] = ["localhost", "127.0.0.1", "::1"],
): { cert: string; key: string } {
  const n = utf8Encoder.encode(names.join("\n"));
  let out = new Uint8Array(4096);
  let len = check(lib().mgnet_tls_self_signed(n, n.length, out, out.length));
  if (len > out.length) {
    out = new Uint8Array(len);
    len = check(lib().mgnet_tls_self_signed(n, n.length, out, out.length));
  }
  const pem = new TextDecoder().decode(out.subarray(0, len));
  const at = pem.indexOf("-----BEGIN PRIVATE KEY-----");
  return { cert: pem.slice(0, at), key: pem.slice(at) };
}

/** Where Linux distributions keep the trusted CA bundle. */
export const CA_BUNDLES: readonly string[] = [
  "/etc/ssl/certs/ca-certificates.crt",
  "/etc/pki/tls/certs/ca-bundle.crt",
  "/etc/ssl/cert.pem",
];
let systemBundle: Uint8Array | undefined;

/**
 * The system's trusted CAs (read once), or undefined if none is found.
 *
 * @returns The PEM bundle.
 */
export function systemCaBundle(): Uint8Array | undefined {
  if (systemBundle) return systemBundle;
  for (const path of CA_BUNDLES) {
    try {
      return systemBundle = Deno.readFileSync(path);
    } catch {
      // try the next location
    }
  }
  return undefined;
}
