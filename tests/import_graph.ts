/**
 * Reads the import graph of `src/` and the `crate::` references of
 * `rust/src/`, and checks the layout rules: no import cycles, and the core
 * (`src/core/`, `rust/src/core/`) reaching no protocol.
 */

/** A module and what it imports (paths relative to the root, e.g. `src/core/loop.ts`). */
export type Graph = Map<string, string[]>;

const IMPORT = /(?:^|\n)\s*(?:import|export)\s+(?:type\s+)?(?:[^"';]*?\s+from\s+)?["']([^"']+)["']/g;

function normalize(parts: string[]): string {
  const out: string[] = [];
  for (const p of parts) {
    if (p === "..") out.pop();
    else if (p !== "." && p !== "") out.push(p);
  }
  return out.join("/");
}

/**
 * The relative imports of one TypeScript source, resolved against its path.
 *
 * @param path The file's path relative to the root.
 * @param text Its source.
 * @returns The resolved import paths.
 */
export function importsOf(path: string, text: string): string[] {
  const dir = path.split("/").slice(0, -1);
  const out: string[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1];
    if (!spec.startsWith(".")) continue; // npm:, node:, jsr: are not ours
    out.push(normalize([...dir, ...spec.split("/")]));
  }
  return out;
}

/**
 * Builds the graph of every `.ts` file under `dir` (recursively).
 *
 * @param root The repository root (absolute).
 * @param dir A folder relative to it, e.g. `src`.
 * @returns The graph.
 */
export async function readGraph(root: string, dir: string): Promise<Graph> {
  const graph: Graph = new Map();
  async function walk(rel: string) {
    for await (const e of Deno.readDir(`${root}/${rel}`)) {
      const p = `${rel}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else if (e.name.endsWith(".ts")) graph.set(p, importsOf(p, await Deno.readTextFile(`${root}/${p}`)));
    }
  }
  await walk(dir);
  return graph;
}

/**
 * Every import cycle, each as the list of modules around it.
 *
 * @param graph The graph.
 * @returns The cycles found (empty when there are none).
 */
export function cycles(graph: Graph): string[][] {
  const found: string[][] = [];
  const state = new Map<string, "active" | "done">();
  const stack: string[] = [];
  function visit(n: string) {
    state.set(n, "active");
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      if (!graph.has(m)) continue;
      const s = state.get(m);
      if (s === "active") found.push([...stack.slice(stack.indexOf(m)), m]);
      else if (s === undefined) visit(m);
    }
    stack.pop();
    state.set(n, "done");
  }
  for (const n of [...graph.keys()].sort()) if (!state.has(n)) visit(n);
  return found;
}

/**
 * Imports that break the layer rule: a module in `core` may import only
 * modules in `core`.
 *
 * @param graph The graph.
 * @param core The core folder, e.g. `src/core/`.
 * @returns `from -> to` for each offending import.
 */
export function coreReachingUp(graph: Graph, core: string): string[] {
  const bad: string[] = [];
  for (const [from, tos] of graph) {
    if (!from.startsWith(core)) continue;
    for (const to of tos) if (!to.startsWith(core)) bad.push(`${from} -> ${to}`);
  }
  return bad;
}

/**
 * The `crate::` paths a Rust source names outside the modules allowed.
 *
 * @param text The Rust source.
 * @param allowed Top-level modules it may name (e.g. `["core"]`).
 * @returns The offending paths, e.g. `crate::http::Parser`.
 */
export function rustReachingUp(text: string, allowed: readonly string[]): string[] {
  const bad: string[] = [];
  const code = text.replace(/\/\/[^\n]*/g, ""); // comments may mention anything
  for (const m of code.matchAll(/crate::([A-Za-z_][A-Za-z0-9_]*)/g)) {
    if (!allowed.includes(m[1])) bad.push(`crate::${m[1]}`);
  }
  // `use crate::{http, …}` groups
  for (const m of code.matchAll(/crate::\{([^}]*)\}/g)) {
    for (const item of m[1].split(",")) {
      const head = item.trim().split("::")[0];
      if (head && !allowed.includes(head)) bad.push(`crate::${head}`);
    }
  }
  return bad;
}
