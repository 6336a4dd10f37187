/**
 * What `deno task bench:http` writes besides its console table: a Markdown
 * report (`http.md`) and a hand-written SVG bar chart (`http.svg`) with the
 * run's date, machine and versions. Pure functions of the results, so a test
 * renders them from a fixed result set (tests/bench_chart_test.ts).
 */

/** One scenario × server figure (medians over rounds). */
export interface ChartRow {
  scenario: string;
  server: string;
  /** Server CPU time per request, µs. */
  cpuUs: number;
  /** Requests per second. */
  rps: number;
}

/** Where and with what the run was made. */
export interface RunInfo {
  /** ISO date (YYYY-MM-DD). */
  date: string;
  /** CPU model (from /proc/cpuinfo) and core count. */
  machine: string;
  deno: string;
  mongoose: string;
  rounds: number;
  duration: number;
}

/** The servers the chart compares, in drawing order, with their colours. */
export const CHART_SERVERS: readonly { name: string; color: string }[] = [
  { name: "mgnet", color: "#2f6fdf" },
  { name: "Deno.serve", color: "#6b7280" },
  { name: "Mongoose-C", color: "#e07a1f" },
];

/** Escapes text for XML content and attribute values. */
export function xmlEscape(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");
}

/** A figure as the chart and report print it: 3 significant digits, thousands separated. */
export function figure(n: number): string {
  if (!Number.isFinite(n)) return "–";
  if (n >= 1000) return Math.round(n).toLocaleString("en-US");
  if (n >= 100) return n.toFixed(0);
  if (n >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

/** The run's title line. */
export function title(info: RunInfo): string {
  return `bench:http ${info.date} · ${info.machine} · Deno ${info.deno} · Mongoose ${info.mongoose} · ` +
    `median of ${info.rounds} × ${info.duration} s`;
}

/**
 * The SVG chart: for each scenario a group of bars per server, CPU µs per
 * request on the left (shorter is better), req/s on the right (longer is
 * better), each bar labelled with its figure. Scenarios a server skipped
 * get no bar.
 *
 * @param rows Figures per scenario and server.
 * @param info Date, machine, versions.
 * @returns A standalone SVG document.
 */
export function renderChart(rows: readonly ChartRow[], info: RunInfo): string {
  const servers = CHART_SERVERS.filter((s) => rows.some((r) => r.server === s.name));
  // Only the chart's servers: others (e.g. "mgnet metrics") neither draw nor scale bars.
  const drawn = rows.filter((r) => servers.some((s) => s.name === r.server));
  const scenarios = [...new Set(drawn.map((r) => r.scenario))];
  const bar = 14, gap = 4, groupGap = 16, labelW = 230, panelW = 300, numW = 70, top = 70, left = 10;
  const groupH = servers.length * (bar + gap) + groupGap;
  const width = left + labelW + 2 * (panelW + numW) + 20;
  const height = top + scenarios.length * groupH + 40;
  const get = (sc: string, sv: string) => drawn.find((r) => r.scenario === sc && r.server === sv);
  const maxOf = (f: (r: ChartRow) => number) => Math.max(1e-9, ...drawn.map(f).filter(Number.isFinite));
  const maxCpu = maxOf((r) => r.cpuUs);
  const maxRps = maxOf((r) => r.rps);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<title>${xmlEscape(title(info))}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${left}" y="20" font-size="14" font-weight="bold">${xmlEscape(title(info))}</text>`,
  );
  const x0 = left + labelW;
  const x1 = x0 + panelW + numW;
  out.push(
    `<text x="${x0}" y="45" font-weight="bold">server CPU µs per request (shorter is better)</text>`,
    `<text x="${x1}" y="45" font-weight="bold">requests per second (longer is better)</text>`,
  );
  // Legend.
  servers.forEach((s, i) => {
    const lx = x0 + i * 110;
    out.push(
      `<rect x="${lx}" y="52" width="10" height="10" fill="${s.color}"/>`,
      `<text x="${lx + 14}" y="61">${xmlEscape(s.name)}</text>`,
    );
  });
  scenarios.forEach((sc, gi) => {
    const gy = top + gi * groupH;
    out.push(`<text x="${left}" y="${gy + (servers.length * (bar + gap)) / 2 + 4}">${xmlEscape(sc)}</text>`);
    servers.forEach((s, i) => {
      const r = get(sc, s.name);
      if (!r) return;
      const y = gy + i * (bar + gap);
      const wc = Number.isFinite(r.cpuUs) ? (r.cpuUs / maxCpu) * panelW : 0;
      const wr = Number.isFinite(r.rps) ? (r.rps / maxRps) * panelW : 0;
      out.push(
        `<rect x="${x0}" y="${y}" width="${wc.toFixed(1)}" height="${bar}" fill="${s.color}"><title>${
          xmlEscape(`${s.name}, ${sc}: ${figure(r.cpuUs)} µs/request`)
        }</title></rect>`,
        `<text x="${(x0 + wc + 4).toFixed(1)}" y="${y + bar - 3}">${figure(r.cpuUs)}</text>`,
        `<rect x="${x1}" y="${y}" width="${wr.toFixed(1)}" height="${bar}" fill="${s.color}"><title>${
          xmlEscape(`${s.name}, ${sc}: ${figure(r.rps)} req/s`)
        }</title></rect>`,
        `<text x="${(x1 + wr + 4).toFixed(1)}" y="${y + bar - 3}">${figure(r.rps)}</text>`,
      );
    });
  });
  out.push(
    `<text x="${left}" y="${
      height - 12
    }" fill="#555555">server pinned to core 0, load tool (wrk/oha) to core 1; CPU = utime + stime of the server process ÷ requests answered</text>`,
    `</svg>`,
  );
  return out.join("\n") + "\n";
}

/**
 * The Markdown report: title, the chart, the full table, and the cost of
 * metrics if the run had the "mgnet metrics" variant.
 *
 * @param table The Markdown table bench/http.ts prints.
 * @param info Date, machine, versions.
 * @param svgName The chart's file name, relative to the report.
 * @param metricsCost Lines on the cost of metrics (may be empty).
 * @returns The report.
 */
export function renderReport(table: string, info: RunInfo, svgName: string, metricsCost: string[]): string {
  const lines = [
    `# ${title(info)}`,
    "",
    "Written by `deno task bench:http` (bench/http.ts); see the README's Benchmarks section for the method.",
    "",
    `![${xmlEscape(title(info))}](${svgName})`,
    "",
    table,
    "",
  ];
  if (metricsCost.length > 0) {
    lines.push("Cost of metrics (`mgnet metrics` against `mgnet`):", "", ...metricsCost, "");
  }
  return lines.join("\n");
}
