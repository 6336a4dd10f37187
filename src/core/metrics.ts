/**
 * Metrics in the Prometheus text format (0.0.4), protocol-free: the native
 * side describes its metric families once (`mgnet_metrics_describe`: the
 * core's, each protocol's, timers' and posts') and copies every value out
 * in one call (`mgnet_metrics_read`); this module turns the two into text.
 * The families and their layout are in `rust/src/core/metrics.rs`.
 *
 * @module
 */

import type { Loop } from "./loop.ts";

/** One metric family as the native side describes it (`Family::describe` in `rust/src/core/metrics.rs`). */
export interface MetricFamily {
  name: string;
  type: "counter" | "gauge" | "histogram";
  help: string;
  /** Label of the series (`""`: one unlabelled series; `le` for a histogram). */
  label: string;
  /** Series whose value is 0 are left out. */
  sparse: boolean;
  /** One label value per series (a histogram's bucket bounds, `+Inf` last). */
  values: string[];
}

/** The content type of the text {@linkcode renderMetrics} makes. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * Parses the native description: one line per family, tab-separated fields
 * (name, type, help, label, sparse flag, comma-separated label values).
 *
 * @param text The description.
 * @returns The families, in value order.
 */
export function parseFamilies(text: string): MetricFamily[] {
  return text.split("\n").filter((l) => l !== "").map((line) => {
    const [name, type, help, label, sparse, values] = line.split("\t");
    return {
      name,
      type: type as MetricFamily["type"],
      help,
      label,
      sparse: sparse === "1",
      values: values === "" ? [] : values.split(","),
    };
  });
}

/**
 * Value slots a family takes: one per series; a histogram's buckets plus
 * its sum and count.
 *
 * @param f The family.
 * @returns The number of values.
 */
export function slotsOf(f: MetricFamily): number {
  return f.type === "histogram" ? f.values.length + 2 : Math.max(1, f.values.length);
}

function num(v: number): string {
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return Number.isInteger(v) ? v.toFixed(0) : String(v);
}

function escapeHelp(s: string): string {
  return s.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function escapeLabel(s: string): string {
  return s.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/**
 * The Prometheus text of `families` with their `values` (in order).
 *
 * @param families As {@linkcode parseFamilies} returns them.
 * @param values One value per slot.
 * @returns The text, ending with a newline.
 */
export function renderMetrics(families: readonly MetricFamily[], values: ArrayLike<number>): string {
  const out: string[] = [];
  let at = 0;
  for (const f of families) {
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    if (f.type === "histogram") {
      f.values.forEach((le, i) =>
        out.push(`${f.name}_bucket{le="${escapeLabel(le)}"} ${num(values[at + i])}`)
      );
      out.push(`${f.name}_sum ${num(values[at + f.values.length])}`);
      out.push(`${f.name}_count ${num(values[at + f.values.length + 1])}`);
    } else if (f.values.length === 0) {
      out.push(`${f.name} ${num(values[at])}`);
    } else {
      f.values.forEach((v, i) => {
        const x = values[at + i];
        if (f.sparse && x === 0) return;
        out.push(`${f.name}{${f.label}="${escapeLabel(v)}"} ${num(x)}`);
      });
    }
    at += slotsOf(f);
  }
  return out.join("\n") + "\n";
}

/** A loop's families, read once (they are fixed for a manager's life). */
const described = new WeakMap<Loop, { families: MetricFamily[]; slots: number }>();

/**
 * Reads every metric of a loop's manager and renders it (two FFI calls:
 * the values, and the description the first time).
 *
 * @param loop A live loop.
 * @returns The Prometheus text.
 */
export function readMetrics(loop: Loop): string {
  let d = described.get(loop);
  if (d === undefined) {
    let buf = new Uint8Array(16 * 1024);
    let n = loop.check(loop.sym.mgnet_metrics_describe(loop.handle, buf, buf.length));
    if (n > buf.length) {
      buf = new Uint8Array(n);
      n = loop.check(loop.sym.mgnet_metrics_describe(loop.handle, buf, buf.length));
    }
    const families = parseFamilies(new TextDecoder().decode(buf.subarray(0, n)));
    d = { families, slots: families.reduce((a, f) => a + slotsOf(f), 0) };
    described.set(loop, d);
  }
  const values = new Float64Array(d.slots);
  const n = loop.check(loop.sym.mgnet_metrics_read(loop.handle, new Uint8Array(values.buffer), d.slots));
  if (n !== d.slots) throw new Error(`mgnet: ${n} metric values for ${d.slots} described`);
  return renderMetrics(d.families, values);
}
