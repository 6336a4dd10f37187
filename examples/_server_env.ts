/**
 * What every example server shares: the `PORT` (default 8000) and
 * `HOSTNAME` (default 127.0.0.1) variables, the listen URL made of them,
 * the `Listening on http://HOST:PORT/` ready line, and SIGINT/SIGTERM.
 */

/** The address to listen on, from `HOSTNAME`. */
export const hostname: string = Deno.env.get("HOSTNAME") ?? "127.0.0.1";
/** The port to listen on, from `PORT` (0: any free port). */
export const port: number = Number(Deno.env.get("PORT") ?? "8000");
/** The host as it appears in a URL (IPv6 in brackets). */
export const urlHost: string = hostname.includes(":") ? `[${hostname}]` : hostname;

/** The URL for `Manager.listen()` (`scheme` defaults to `http`). */
export function listenUrl(scheme = "http"): string {
  return `${scheme}://${urlHost}:${port}`;
}

/** Prints the ready line for the port actually bound. */
export function announce(boundPort: number, scheme = "http"): void {
  console.log(`Listening on ${scheme}://${urlHost}:${boundPort}/`);
}

/** Calls `stop` on SIGINT or SIGTERM. */
export function onStopSignal(stop: () => unknown): void {
  for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, () => void stop());
}
