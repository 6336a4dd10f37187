import assert from "node:assert/strict";
import { type FormPart, MultipartError, parseMultipart, sanitizeFilename } from "../src/http/multipart.ts";
import { serve, test, toolEnv } from "./helpers.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A server that answers with the parsed parts as JSON (400 for a bad form). */
function formServer() {
  return serve((ev) => {
    let parts: FormPart[];
    try {
      parts = parseMultipart(ev.body, ev.header("content-type") ?? "", { maxParts: 5 });
    } catch (e) {
      return void ev.reply(400, e instanceof MultipartError ? e.message : "?");
    }
    const out = parts.map((p) => ({
      name: p.name,
      filename: p.filename,
      type: p.contentType,
      size: p.data.length,
      text: p.data.length < 100 ? dec.decode(p.data) : undefined,
      sum: p.data.reduce((a, b) => (a + b) % 65521, 0),
    }));
    ev.reply(200, JSON.stringify(out), { "content-type": "application/json" });
  });
}

test("multipart: fields and files from fetch's FormData, binary intact", async () => {
  await using srv = formServer();
  const bin = new Uint8Array(300_000);
  for (let i = 0; i < bin.length; i++) bin[i] = (i * 31) & 0xff;
  // Bytes that look like a boundary prefix must not end the part early.
  bin.set(enc.encode("\r\n--"), 1000);
  const form = new FormData();
  form.append("title", "héllo\r\nworld");
  form.append("title", "again");
  form.append("upload", new File([bin], "data.bin", { type: "application/octet-stream" }));
  form.append("note", new File(["plain"], 'we "quote".txt', { type: "text/plain" }));
  const res = await fetch(`http://127.0.0.1:${srv.port}/`, { method: "POST", body: form });
  assert.equal(res.status, 200);
  const parts = await res.json();
  assert.deepEqual(parts.map((p: { name: string }) => p.name), ["title", "title", "upload", "note"]);
  assert.equal(parts[0].text, "héllo\r\nworld");
  assert.equal(parts[0].filename, undefined);
  assert.equal(parts[1].text, "again");
  assert.equal(parts[2].filename, "data.bin");
  assert.equal(parts[2].type, "application/octet-stream");
  assert.equal(parts[2].size, bin.length);
  assert.equal(parts[2].sum, bin.reduce((a, b) => (a + b) % 65521, 0));
  assert.equal(parts[3].filename, 'we "quote".txt');
});

test("multipart: curl -F uploads a file and a field", async () => {
  await using srv = formServer();
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${dir}/report.csv`, "a,b\n1,2\n");
    const out = await new Deno.Command("curl", {
      args: [
        "-s",
        "-F",
        "kind=csv",
        "-F",
        `file=@${dir}/report.csv;type=text/csv`,
        `http://127.0.0.1:${srv.port}/`,
      ],
      env: toolEnv,
    }).output();
    const parts = JSON.parse(dec.decode(out.stdout));
    assert.deepEqual(parts.map((p: { name: string; text: string }) => [p.name, p.text]), [
      ["kind", "csv"],
      ["file", "a,b\n1,2\n"],
    ]);
    assert.equal(parts[1].filename, "report.csv");
    assert.equal(parts[1].type, "text/csv");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

function body(lines: string): Uint8Array {
  return enc.encode(lines.replaceAll("\n", "\r\n"));
}

test("multipart: preamble, quoted boundary, filename*, empty parts", () => {
  const parts = parseMultipart(
    body(
      'preamble\n--b=1\nContent-Disposition: form-data; name="f"; filename="x.txt"; filename*=UTF-8\'\'%E2%82%AC.txt\n\n\n--b=1\nContent-Disposition: form-data; name="e"\n\nv\n--b=1--\nepilogue',
    ),
    'multipart/form-data; boundary="b=1"',
  );
  assert.equal(parts.length, 2);
  assert.equal(parts[0].filename, "€.txt");
  assert.equal(parts[0].data.length, 0);
  assert.equal(dec.decode(parts[1].data), "v");
  assert.equal(parts[1].contentType, "text/plain");
});

test("multipart: malformed bodies and limits are MultipartErrors", () => {
  const type = "multipart/form-data; boundary=XX";
  const cases: [string, string][] = [
    ["", "no boundary delimiter"],
    ['--XX\nContent-Disposition: form-data; name="a"\n\nvalue', "truncated body"],
    ['--XX\nContent-Disposition: form-data; name="a"', "truncated part headers"],
    ["--XX\nContent-Type: text/plain\n\nv\n--XX--", "content-disposition"],
    ['--XX\nContent-Disposition: attachment; name="a"\n\nv\n--XX--', "content-disposition"],
    ["--XX\nno colon here\n\nv\n--XX--", "malformed part header"],
    ["--XXjunk\n\nv\n--XX--", "malformed boundary line"],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseMultipart(body(text), type), (e: Error) => {
      assert.ok(e instanceof MultipartError, text);
      assert.match(e.message, new RegExp(message), text);
      return true;
    });
  }
  assert.throws(() => parseMultipart(body("--XX--"), "text/plain"), MultipartError);
  assert.throws(() => parseMultipart(body("--XX--"), "multipart/form-data"), MultipartError);
  const many =
    Array.from({ length: 4 }, (_, i) => `--XX\nContent-Disposition: form-data; name="f${i}"\n\n${i}\n`)
      .join("") + "--XX--";
  assert.equal(parseMultipart(body(many), type).length, 4);
  assert.throws(() => parseMultipart(body(many), type, { maxParts: 3 }), /more than 3 parts/);
  const bigHeader = `--XX\nContent-Disposition: form-data; name="a"\nX-Pad: ${"p".repeat(100)}\n\nv\n--XX--`;
  assert.throws(() => parseMultipart(body(bigHeader), type, { maxHeaderSize: 64 }), /exceed 64 bytes/);
});

test("multipart: a malformed upload gets 400 from the server and the connection lives on", async () => {
  await using srv = formServer();
  const res = await fetch(`http://127.0.0.1:${srv.port}/`, {
    method: "POST",
    headers: { "content-type": "multipart/form-data; boundary=zz" },
    body: "--zz\r\nContent-Disposition: form-data; name=a\r\n\r\nno end",
  });
  assert.equal(res.status, 400);
  assert.match(await res.text(), /truncated/);
  const form = new FormData();
  for (let i = 0; i < 6; i++) form.append(`f${i}`, "x");
  const tooMany = await fetch(`http://127.0.0.1:${srv.port}/`, { method: "POST", body: form });
  assert.equal(tooMany.status, 400);
  assert.match(await tooMany.text(), /more than 5 parts/);
});

test("sanitizeFilename keeps uploads inside their directory", () => {
  const cases: [string, string][] = [
    ["report.pdf", "report.pdf"],
    ["../../etc/passwd", "passwd"],
    ["..\\..\\win.ini", "win.ini"],
    ["..", "upload"],
    [".bashrc", "bashrc"],
    ["", "upload"],
    ["a\0b\nc.txt", "a_b_c.txt"],
    ['x<y>:"z"|?*.txt', "x_y___z____.txt"],
    ["/abs/path/file.txt", "file.txt"],
    ["dir/", "upload"],
  ];
  for (const [input, want] of cases) assert.equal(sanitizeFilename(input), want, JSON.stringify(input));
  assert.equal(sanitizeFilename("n".repeat(500)).length, 200);
});
