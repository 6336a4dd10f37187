/**
 * Addresses: decoding the binary addresses of OPEN records and checking
 * the `scheme://host:port` URLs given to `listen`, with errors that name
 * the part that is wrong.
 *
 * @module
 */

import { MgnetError } from "./errors.ts";
import type { NetAddr } from "./connection.ts";

/** A checked listen URL. */
export interface ListenAddress {
  /** The scheme without `://`, lower-case (`"http"`). */
  scheme: string;
  /** The host as Mongoose takes it: an IPv4 address, `[IPv6]` or `localhost`. */
  host: string;
  /** 0–65535 (0: any free port). */
  port: number;
}

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const IPV6_CHARS = /^[0-9A-Fa-f:.]+$/;

function invalid(url: string, why: string): MgnetError {
  return new MgnetError(`invalid listen URL ${JSON.stringify(url)}: ${why}`, "Invalid");
}

function validIpv4(host: string): boolean {
  const m = IPV4.exec(host);
  return m !== null && m.slice(1).every((p) => Number(p) <= 255 && (p === "0" || p[0] !== "0"));
}

function validIpv6(text: string): boolean {
  if (!IPV6_CHARS.test(text) || text.includes(":::")) return false;
  const halves = text.split("::");
  if (halves.length > 2) return false;
  let groups = 0;
  for (const half of halves) {
    if (half === "") continue;
    const parts = half.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (i === parts.length - 1 && p.includes(".") && half === halves[halves.length - 1]) {
        if (!validIpv4(p)) return false;
        groups += 2;
      } else if (!/^[0-9A-Fa-f]{1,4}$/.test(p)) {
        return false;
      } else {
        groups++;
      }
    }
  }
  return halves.length === 2 ? groups < 8 : groups === 8;
}

/**
 * Checks a listen URL part by part.
 *
 * @param url The URL given to `listen`, e.g. `"http://127.0.0.1:0"`.
 * @param schemes The schemes a protocol is registered for.
 * @returns Its parts.
 * @throws {MgnetError} (`Invalid`) naming the bad part.
 */
export function parseListenUrl(url: string, schemes: readonly string[]): ListenAddress {
  if (typeof url !== "string") throw new TypeError("listen() takes a URL string");
  const m = SCHEME.exec(url);
  const expected = schemes.map((s) => `${s}://`).join(", ");
  if (!m) throw invalid(url, `it has no scheme (expected ${expected})`);
  const scheme = m[1].toLowerCase();
  if (!schemes.includes(scheme)) throw invalid(url, `unsupported scheme "${m[1]}://" (expected ${expected})`);
  let rest = url.slice(m[0].length);
  if (rest.endsWith("/")) rest = rest.slice(0, -1);
  const stray = rest.search(/[/?#]/);
  if (stray >= 0) {
    throw invalid(
      url,
      `unexpected ${JSON.stringify(rest.slice(stray))} after the address (a listen URL has no path)`,
    );
  }
  if (rest.includes("@")) throw invalid(url, "a listen URL has no user information");
  let host: string;
  let portText: string | undefined;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0) throw invalid(url, "the IPv6 address has no closing ']'");
    const inner = rest.slice(1, close);
    if (!validIpv6(inner)) throw invalid(url, `"${inner}" is not an IPv6 address`);
    host = `[${inner}]`;
    const after = rest.slice(close + 1);
    if (after !== "" && !after.startsWith(":")) {
      throw invalid(url, `unexpected "${after}" after the IPv6 address`);
    }
    portText = after === "" ? undefined : after.slice(1);
  } else {
    const colon = rest.lastIndexOf(":");
    host = colon < 0 ? rest : rest.slice(0, colon);
    portText = colon < 0 ? undefined : rest.slice(colon + 1);
    if (host === "") throw invalid(url, "the host is missing (use 0.0.0.0 for every interface)");
    if (host.includes(":")) throw invalid(url, "an IPv6 address must be in brackets, e.g. [::1]");
    if (host.toLowerCase() === "localhost") host = "localhost";
    else if (IPV4.test(host)) {
      if (!validIpv4(host)) throw invalid(url, `"${host}" is not an IPv4 address`);
    } else {
      throw invalid(
        url,
        `the host "${host}" is not an IP address (listen takes an IPv4 or [IPv6] address or localhost)`,
      );
    }
  }
  if (portText === undefined || portText === "") {
    throw invalid(url, "the port is missing (use :0 for any free port)");
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    throw invalid(url, `the port "${portText}" is not a number from 0 to 65535`);
  }
  return { scheme, host, port: Number(portText) };
}

/**
 * Decodes an address of an OPEN record.
 *
 * @param u8 The batch bytes.
 * @param off Where the 16 address bytes start.
 * @param port The port.
 * @param ipv6 Whether the address is IPv6.
 * @returns The address.
 */
export function decodeAddr(u8: Uint8Array, off: number, port: number, ipv6: boolean): NetAddr {
  let hostname: string;
  if (!ipv6) {
    hostname = `${u8[off]}.${u8[off + 1]}.${u8[off + 2]}.${u8[off + 3]}`;
  } else {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((u8[off + i] << 8) | u8[off + i + 1]).toString(16));
    hostname = compressIpv6(groups);
  }
  return { transport: "tcp", hostname, port };
}

function compressIpv6(groups: string[]): string {
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}
