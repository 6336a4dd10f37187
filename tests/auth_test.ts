import assert from "node:assert/strict";
import { basicChallenge, bearerChallenge, parseAuthorization, timingSafeEqual } from "../src/http/auth.ts";
import { serve, test, toolEnv } from "./helpers.ts";

test("parseAuthorization: Basic and Bearer, and what is refused", () => {
  assert.deepEqual(parseAuthorization(`Basic ${btoa("alice:pa:ss")}`), {
    scheme: "basic",
    username: "alice",
    password: "pa:ss",
  });
  assert.deepEqual(parseAuthorization(`bAsIc   ${btoa(":")}`), {
    scheme: "basic",
    username: "",
    password: "",
  });
  // RFC 7617: UTF-8 user names and passwords.
  const utf8 = String.fromCharCode(...new TextEncoder().encode("jürgen:pässwörd"));
  assert.deepEqual(parseAuthorization(`Basic ${btoa(utf8)}`), {
    scheme: "basic",
    username: "jürgen",
    password: "pässwörd",
  });
  assert.deepEqual(parseAuthorization("Bearer mF_9.B5f-4.1JqM"), {
    scheme: "bearer",
    token: "mF_9.B5f-4.1JqM",
  });
  assert.deepEqual(parseAuthorization("bearer abc=="), { scheme: "bearer", token: "abc==" });
  for (
    const bad of [
      undefined,
      null,
      "",
      "Basic",
      "Basic !!!",
      `Basic ${btoa("no-colon")}`,
      `Basic ${btoa("\xff\xfe:x")}`, // not UTF-8
      "Bearer two tokens",
      "Bearer a,b",
      "Digest username=x",
      "Basic a=b=c=",
    ]
  ) assert.equal(parseAuthorization(bad), undefined, String(bad));
});

test("challenges quote their parameters; timingSafeEqual compares", () => {
  assert.equal(basicChallenge('my "realm"'), 'Basic realm="my \\"realm\\"", charset="UTF-8"');
  assert.equal(bearerChallenge("api"), 'Bearer realm="api"');
  assert.throws(() => basicChallenge("a\r\nb"), TypeError);
  assert.equal(timingSafeEqual("token", "token"), true);
  assert.equal(timingSafeEqual("token", "tokem"), false);
  assert.equal(timingSafeEqual("token", "token2"), false);
  assert.equal(timingSafeEqual("", ""), true);
});

/** A server that wants alice:secret (Basic) or the token "t0k3n" (Bearer). */
function authServer() {
  return serve((ev) => {
    const c = ev.credentials;
    const ok = (c?.scheme === "basic" && c.username === "alice" && timingSafeEqual(c.password, "secret")) ||
      (c?.scheme === "bearer" && timingSafeEqual(c.token, "t0k3n"));
    if (ok) ev.reply(200, c!.scheme === "basic" ? `hello ${c!.username}` : "hello bearer");
    else ev.reply(401, "who are you?", { "www-authenticate": basicChallenge("mgnet") });
  });
}

test("credentials through curl -u, curl --oauth2-bearer and fetch", async () => {
  await using srv = authServer();
  const url = `http://127.0.0.1:${srv.port}/`;
  const curl = async (...args: string[]) =>
    new TextDecoder().decode(
      (await new Deno.Command("curl", { args: ["-s", "-w", " %{http_code}", ...args, url], env: toolEnv })
        .output())
        .stdout,
    );
  assert.equal(await curl("-u", "alice:secret"), "hello alice 200");
  assert.equal(await curl("-u", "alice:wrong"), "who are you? 401");
  assert.equal(await curl("--oauth2-bearer", "t0k3n"), "hello bearer 200");
  assert.equal(await curl(), "who are you? 401");
  const res = await fetch(url);
  assert.equal(res.status, 401);
  assert.equal(res.headers.get("www-authenticate"), 'Basic realm="mgnet", charset="UTF-8"');
  await res.body?.cancel();
  const ok = await fetch(url, { headers: { authorization: `Basic ${btoa("alice:secret")}` } });
  assert.equal(await ok.text(), "hello alice");
});
