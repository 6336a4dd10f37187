// Fetch-style servers of bench/http.ts, on Deno.serve (RUNTIME=deno, the
// default) or on mgnet's serve() (RUNTIME=mgnet): the same handler code
// handed to either. MODE picks what every request gets:
//   hello   {"message":"Hello, World!"} (the default)
//   async   the same after awaiting a 0 ms timer
//   echo    the request body back, with its content-type
//   static  files under STATIC_ROOT at /static/, written without std: dot
//           segments refused, stat + read, content-type, ETag, Last-Modified
//   timer   the hello answer after awaiting a 0 ms timer (as async)
//   proxy   awaits a GET of UPSTREAM and answers with its body; CLIENT picks
//           the fetch: global (Deno's, the default) or mgnet (mgnet's fetch,
//           on the manager serving the request when RUNTIME=mgnet)
import { fetch as mgnetFetch, serve } from "../../mod.ts";

const mode = Deno.env.get("MODE") ?? "hello";
const root = Deno.env.get("STATIC_ROOT") ?? ".";
const body = JSON.stringify({ message: "Hello, World!" });
const headers = { "content-type": "application/json" };

async function file(req: Request): Promise<Response> {
  const path = decodeURIComponent(new URL(req.url).pathname);
  if (!path.startsWith("/static/") || path.split("/").includes("..")) {
    return new Response("Not Found", { status: 404 });
  }
  try {
    const full = `${root}${path.slice("/static".length)}`;
    const info = await Deno.stat(full);
    const data = await Deno.readFile(full);
    return new Response(data, {
      headers: {
        "content-type": full.endsWith(".html") ? "text/html; charset=utf-8" : "application/octet-stream",
        "etag": `"${info.size.toString(16)}-${(info.mtime?.getTime() ?? 0).toString(16)}"`,
        "last-modified": (info.mtime ?? new Date(0)).toUTCString(),
      },
    });
  } catch {
    return new Response("Not Found", { status: 404 });
  }
}

const upstream = Deno.env.get("UPSTREAM") ?? "http://127.0.0.1:8080/";
const client = Deno.env.get("CLIENT") === "mgnet" ? mgnetFetch : globalThis.fetch;

const handlers: Record<string, (req: Request) => Response | Promise<Response>> = {
  hello: () => new Response(body, { headers }),
  async: async () => {
    await new Promise((r) => setTimeout(r, 0));
    return new Response(body, { headers });
  },
  echo: async (req) =>
    new Response(await req.arrayBuffer(), {
      headers: { "content-type": req.headers.get("content-type") ?? "application/octet-stream" },
    }),
  static: file,
  timer: async () => {
    await new Promise((r) => setTimeout(r, 0));
    return new Response(body, { headers });
  },
  proxy: async () => {
    const res = await client(upstream);
    return new Response(await res.text(), { headers });
  },
};

const port = Number(Deno.env.get("PORT") ?? "8000");
const onListen = ({ port }: { port: number }) => console.log(`Listening on http://127.0.0.1:${port}/`);
const options = { port, hostname: "127.0.0.1", onListen };
const server = Deno.env.get("RUNTIME") === "mgnet"
  ? serve(options, handlers[mode])
  : Deno.serve(options, handlers[mode]);
for (const s of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(s, () => server.shutdown());
await server.finished;
