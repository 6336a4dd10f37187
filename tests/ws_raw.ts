/**
 * Raw WebSocket peers for tests: frames built and read by hand over
 * `Deno.connect`/`Deno.listen` sockets, independent of mgnet's code. A
 * {@linkcode RawWs} plays a client (reads a server's frames, which must not
 * be masked) or a server (reads a client's, which must be).
 */
import assert from "node:assert/strict";
import { writeAll } from "./helpers.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** The sample key of RFC 6455 (its accept is `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`). */
export const KEY = "dGhlIHNhbXBsZSBub25jZQ==";

/** `sec-websocket-accept` for a key. */
export async function acceptFor(key: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-1",
    enc.encode(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"),
  );
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

/** A frame, masked (a client's) unless `masked` is false. */
export function frame(
  opcode: number,
  payload: Uint8Array | string = new Uint8Array(0),
  fin = true,
  rsv = 0,
  masked = true,
): Uint8Array {
  const p = typeof payload === "string" ? enc.encode(payload) : payload;
  const head: number[] = [(fin ? 0x80 : 0) | rsv | opcode];
  const m = masked ? 0x80 : 0;
  if (p.length < 126) head.push(m | p.length);
  else if (p.length < 65536) head.push(m | 126, p.length >> 8, p.length & 255);
  else {
    head.push(m | 127, 0, 0, 0, 0);
    head.push((p.length >>> 24) & 255, (p.length >>> 16) & 255, (p.length >>> 8) & 255, p.length & 255);
  }
  const key = [0x12, 0x34, 0x56, 0x78];
  const out = new Uint8Array(head.length + (masked ? 4 : 0) + p.length);
  out.set(head);
  if (masked) out.set(key, head.length);
  const at = head.length + (masked ? 4 : 0);
  for (let i = 0; i < p.length; i++) out[at + i] = masked ? p[i] ^ key[i & 3] : p[i];
  return out;
}

/** A close frame's payload as [code, reason]. */
export const closeOf = (p: Uint8Array): [number, string] => [(p[0] << 8) | p[1], dec.decode(p.subarray(2))];

/** One end of a raw WebSocket connection, with a frame reader. */
export class RawWs {
  /** Bytes read and not consumed yet. */
  buf: Uint8Array = new Uint8Array(0);
  /** The HTTP head read by {@linkcode readHead}: the response (client) or the request (server). */
  head = "";

  /**
   * @param conn The socket.
   * @param server True when this end plays the server: the frames it reads
   *   must then be masked, else they must not be.
   */
  constructor(readonly conn: Deno.Conn, readonly server = false) {}

  /** Connects and sends an upgrade request (`extra` header lines); reads the response head. */
  static async open(port: number, extra = "", path = "/"): Promise<RawWs> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await writeAll(
      conn,
      enc.encode(
        `GET ${path} HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n` +
          `sec-websocket-key: ${KEY}\r\nsec-websocket-version: 13\r\n${extra}\r\n`,
      ),
    );
    const raw = new RawWs(conn);
    await raw.readHead();
    return raw;
  }

  /**
   * Plays the server on an accepted connection: reads the request and answers
   * 101 with the right accept (or `accept` if given) and `extra` header lines.
   */
  static async accept(conn: Deno.Conn, extra = "", accept?: string): Promise<RawWs> {
    const raw = new RawWs(conn, true);
    const req = await raw.readHead();
    const key = /sec-websocket-key: *(\S+)/i.exec(req)![1];
    await writeAll(
      conn,
      enc.encode(
        `HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n` +
          `sec-websocket-accept: ${accept ?? await acceptFor(key)}\r\n${extra}\r\n`,
      ),
    );
    return raw;
  }

  /** Reads until `done(buf)` holds; false at EOF (or a reset). */
  async fill(done: (b: Uint8Array) => boolean): Promise<boolean> {
    while (!done(this.buf)) {
      const chunk = new Uint8Array(65536);
      const n = await this.conn.read(chunk).catch(() => null);
      if (n === null) return false;
      const b = new Uint8Array(this.buf.length + n);
      b.set(this.buf);
      b.set(chunk.subarray(0, n), this.buf.length);
      this.buf = b;
    }
    return true;
  }

  /** Reads an HTTP head (through its blank line) into {@linkcode head}; returns it. */
  async readHead(): Promise<string> {
    const ends = (b: Uint8Array) => dec.decode(b).includes("\r\n\r\n");
    if (!(await this.fill(ends))) throw new Error(`EOF in a head: ${dec.decode(this.buf)}`);
    const text = dec.decode(this.buf);
    this.head = text.slice(0, text.indexOf("\r\n\r\n") + 4);
    this.buf = this.buf.subarray(enc.encode(this.head).length);
    return this.head;
  }

  /** The next frame: [opcode, payload (unmasked)], or null at EOF. */
  async read(): Promise<[number, Uint8Array] | null> {
    const size = (b: Uint8Array): [number, number] => {
      if (b.length < 2) return [Infinity, 0];
      const l = b[1] & 127;
      const h = (l === 126 ? 4 : l === 127 ? 10 : 2) + ((b[1] & 0x80) !== 0 ? 4 : 0);
      if (b.length < h) return [Infinity, 0];
      const len = l === 126
        ? (b[2] << 8) | b[3]
        : l === 127
        ? Number(new DataView(b.buffer, b.byteOffset).getBigUint64(2))
        : l;
      return [h + len, h];
    };
    if (!(await this.fill((b) => b.length >= size(b)[0]))) return null;
    const [total, hl] = size(this.buf);
    const masked = (this.buf[1] & 0x80) !== 0;
    assert.equal(
      masked,
      this.server,
      this.server ? "client frames are masked" : "server frames are not masked",
    );
    let payload = this.buf.slice(hl, total);
    if (masked) {
      const key = this.buf.subarray(hl - 4, hl);
      payload = payload.map((b, i) => b ^ key[i & 3]);
    }
    const out: [number, Uint8Array] = [this.buf[0] & 0x0f, payload];
    this.buf = this.buf.subarray(total);
    return out;
  }

  /** Reads frames until a close frame; returns its code (1005: none) and reason. */
  async readClose(): Promise<[number, string]> {
    for (;;) {
      const f = await this.read();
      if (f === null) throw new Error("EOF before a close frame");
      if (f[0] !== 8) continue;
      if (f[1].length === 0) return [1005, ""];
      return closeOf(f[1]);
    }
  }

  /** Reads frames to EOF; returns them. */
  async readToEof(): Promise<[number, Uint8Array][]> {
    const got: [number, Uint8Array][] = [];
    for (;;) {
      const f = await this.read();
      if (f === null) return got;
      got.push(f);
    }
  }

  /** True once the peer closed the TCP connection. */
  async eof(): Promise<boolean> {
    for (;;) {
      const b = new Uint8Array(4096);
      const n = await this.conn.read(b).catch(() => null);
      if (n === null) return true;
    }
  }

  /** Writes all of `b`. */
  write(b: Uint8Array): Promise<void> {
    return writeAll(this.conn, b);
  }
}
