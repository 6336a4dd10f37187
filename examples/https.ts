/**
 * Hello over TLS: every path answers `{"message":"Hello, World!"}` on
 * `https://`.
 *
 *   PORT=8443 HOSTNAME=127.0.0.1 [CERT_FILE=cert.pem KEY_FILE=key.pem] deno task serve:https
 *
 * The certificate and key come from `CERT_FILE` and `KEY_FILE` (PEM paths)
 * when set; otherwise a self-signed P-256 certificate for localhost,
 * 127.0.0.1 and ::1 is generated in process on the first run and kept in
 * a temporary directory (its path is printed: pass its `cert.pem` to
 * clients as their CA, e.g. `curl --cacert`). Prints
 * `Listening on https://HOST:PORT/` when ready and exits cleanly on SIGINT
 * or SIGTERM.
 */
import { Manager, selfSignedCert } from "../mod.ts";
import { announce, listenUrl, onStopSignal } from "./_server_env.ts";

/** The certificate and key: from CERT_FILE/KEY_FILE, else self-signed (made once). */
function certificate(): { cert: string; key: string } {
  const certFile = Deno.env.get("CERT_FILE");
  const keyFile = Deno.env.get("KEY_FILE");
  if (certFile || keyFile) {
    if (!certFile || !keyFile) throw new Error("set both CERT_FILE and KEY_FILE (PEM paths)");
    return { cert: Deno.readTextFileSync(certFile), key: Deno.readTextFileSync(keyFile) };
  }
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  const dir = `${tmp}/mgnet-https-example`;
  try {
    return { cert: Deno.readTextFileSync(`${dir}/cert.pem`), key: Deno.readTextFileSync(`${dir}/key.pem`) };
  } catch {
    const pair = selfSignedCert(["localhost", "127.0.0.1", "::1"]);
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    Deno.writeTextFileSync(`${dir}/key.pem`, pair.key, { mode: 0o600 });
    Deno.writeTextFileSync(`${dir}/cert.pem`, pair.cert);
    console.error(`generated a self-signed certificate: ${dir}/cert.pem`);
    return pair;
  }
}

const body = JSON.stringify({ message: "Hello, World!" });
const headers = Object.freeze({ "content-type": "application/json" });

const mgr = new Manager();
const listener = mgr.listen(listenUrl("https") as `https://${string}`, {
  ...certificate(),
  onRequest: (ev) => void ev.reply(200, body, headers),
});
announce(listener.port, "https");
onStopSignal(() => mgr.close());
await mgr.finished;
