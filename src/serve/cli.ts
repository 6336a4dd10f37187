/**
 * Runs a module written for `deno serve` on mgnet: its default export's
 * `fetch(request, info)` handles every request.
 *
 * ```sh
 * deno run -A jsr:@mgnet/mgnet/serve [--port=8000] [--host=0.0.0.0] app.ts
 * ```
 *
 * @example A module for `deno serve`
 * ```ts ignore
 * // app.ts
 * export default {
 *   fetch(req: Request) {
 *     return new Response(`you asked for ${new URL(req.url).pathname}`);
 *   },
 * };
 * ```
 *
 * @module
 */
import { serve, type ServeHandler } from "./serve.ts";

/** Parsed command line of the serve CLI. */
export interface ServeCliArgs {
  /** Port (default 8000). */
  port: number;
  /** Address (default 0.0.0.0). */
  hostname: string;
  /** Module to load. */
  module: string;
}

/**
 * Parses `--port=N`, `--port N`, `--host=H`, `--host H` and the module path.
 *
 * @param args The command-line arguments.
 * @returns The parsed options.
 * @throws {TypeError} on unknown flags or a missing module.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseServeArgs } from "./cli.ts";
 *
 * assert.deepEqual(parseServeArgs(["--port=9000", "app.ts"]), {
 *   port: 9000,
 *   hostname: "0.0.0.0",
 *   module: "app.ts",
 * });
 * assert.throws(() => parseServeArgs(["--verbose", "app.ts"]), TypeError);
 * ```
 */
export function parseServeArgs(args: string[]): ServeCliArgs {
  const out: Partial<ServeCliArgs> = { port: 8000, hostname: "0.0.0.0" };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const m = /^--(port|host|hostname)(?:=(.*))?$/.exec(a);
    if (m) {
      const value = m[2] ?? args[++i];
      if (value === undefined) throw new TypeError(`${a} needs a value`);
      if (m[1] === "port") {
        const port = Number(value);
        if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError(`invalid port ${value}`);
        out.port = port;
      } else {
        out.hostname = value;
      }
    } else if (a.startsWith("-")) {
      throw new TypeError(`unknown option ${a}`);
    } else if (out.module === undefined) {
      out.module = a;
    } else {
      throw new TypeError(`unexpected argument ${a}`);
    }
  }
  if (!out.module) throw new TypeError("usage: serve [--port=8000] [--host=0.0.0.0] <module>");
  return out as ServeCliArgs;
}

if (import.meta.main) {
  let args: ServeCliArgs;
  try {
    args = parseServeArgs(Deno.args);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(2);
  }
  const url = new URL(args.module, `file://${Deno.cwd()}/`).href;
  const mod = await import(url);
  const target = mod.default;
  if (!target || typeof target.fetch !== "function") {
    console.error(`${args.module} has no default export with a fetch() method`);
    Deno.exit(2);
  }
  const handler: ServeHandler = (req, info) => target.fetch(req, info);
  const server = serve({ port: args.port, hostname: args.hostname }, handler);
  for (const s of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(s, () => server.shutdown());
  await server.finished;
}
