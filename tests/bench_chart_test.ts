// The bench:http chart and report, rendered from a fixed result set (no timing).
import assert from "node:assert/strict";
import { type ChartRow, figure, renderChart, renderReport, type RunInfo } from "../bench/_report.ts";
import { test } from "./helpers.ts";

const INFO: RunInfo = {
  date: "2026-11-30",
  machine: "AMD EPYC <test> & co, 2 cores",
  deno: "2.9.6",
  mongoose: "7.23",
  rounds: 3,
  duration: 2,
};

const ROWS: ChartRow[] = [
  { scenario: "keep-alive, 100 conns", server: "mgnet", cpuUs: 5.12, rps: 151234 },
  { scenario: "keep-alive, 100 conns", server: "Deno.serve", cpuUs: 8.34, rps: 120456 },
  { scenario: "keep-alive, 100 conns", server: "Mongoose-C", cpuUs: 7.05, rps: 130789 },
  { scenario: "pipelined ×16, 100 conns", server: "mgnet", cpuUs: 1.23, rps: 812345 },
  { scenario: "pipelined ×16, 100 conns", server: "Deno.serve", cpuUs: 4.56, rps: 210987 },
  { scenario: "async handler (0 ms timer), 10 conns", server: "mgnet", cpuUs: 40.5, rps: 3952 },
  // Not a chart server: left out.
  { scenario: "keep-alive, 100 conns", server: "mgnet metrics", cpuUs: 999.9, rps: 1 },
];

/**
 * Checks that `xml` is well-formed: one root element, every tag closed in
 * order, attribute values quoted, no raw `<` or stray `&` in text or
 * attributes. Returns the text content (entities decoded).
 */
function wellFormed(xml: string): string {
  const stack: string[] = [];
  let text = "";
  let i = 0;
  let roots = 0;
  const checkText = (s: string) => {
    assert.doesNotMatch(s, /&(?!(amp|lt|gt|quot|apos);)/, `stray & in ${JSON.stringify(s)}`);
    return s.replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&quot;", '"').replaceAll(
      "&apos;",
      "'",
    )
      .replaceAll("&amp;", "&");
  };
  while (i < xml.length) {
    const lt = xml.indexOf("<", i);
    if (lt < 0) {
      assert.equal(xml.slice(i).trim(), "", "nothing after the root element");
      break;
    }
    const between = xml.slice(i, lt);
    if (stack.length === 0) assert.equal(between.trim(), "", "no text outside the root element");
    text += checkText(between);
    const gt = xml.indexOf(">", lt);
    assert.ok(gt > lt, "every tag ends");
    const tag = xml.slice(lt + 1, gt);
    assert.doesNotMatch(tag, /</, `no < inside a tag: ${tag}`);
    if (tag.startsWith("/")) {
      assert.equal(stack.pop(), tag.slice(1), `closing tag </${tag.slice(1)}> matches`);
    } else {
      const m = /^([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"]*")*)\s*(\/?)$/.exec(tag);
      assert.ok(m, `a well-formed start tag: <${tag}>`);
      for (const a of m[2].matchAll(/"([^"]*)"/g)) checkText(a[1]);
      if (stack.length === 0) roots++;
      if (m[3] !== "/") stack.push(m[1]);
    }
    i = gt + 1;
  }
  assert.deepEqual(stack, [], "every element closed");
  assert.equal(roots, 1, "one root element");
  return text;
}

test("bench chart: well-formed SVG with the title, every scenario, server and figure", () => {
  const svg = renderChart(ROWS, INFO);
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" /);
  const text = wellFormed(svg);
  for (const s of [INFO.date, INFO.machine, "Deno 2.9.6", "Mongoose 7.23", "median of 3 × 2 s"]) {
    assert.ok(text.includes(s), `the title carries ${s}`);
  }
  for (
    const label of [
      "keep-alive, 100 conns",
      "pipelined ×16, 100 conns",
      "async handler (0 ms timer), 10 conns",
    ]
  ) {
    assert.ok(text.includes(label), label);
  }
  for (const server of ["mgnet", "Deno.serve", "Mongoose-C"]) assert.ok(text.includes(server), server);
  for (const r of ROWS.filter((r) => r.server !== "mgnet metrics")) {
    assert.ok(text.includes(figure(r.cpuUs)), `${r.server} ${r.scenario} CPU ${figure(r.cpuUs)}`);
    assert.ok(text.includes(figure(r.rps)), `${r.server} ${r.scenario} req/s ${figure(r.rps)}`);
  }
  assert.equal(text.includes("mgnet metrics"), false);
  assert.equal(text.includes("999.9"), false);
  // Exact figures as printed.
  assert.deepEqual([figure(5.12), figure(40.5), figure(151234), figure(3952), figure(NaN)], [
    "5.12",
    "40.5",
    "151,234",
    "3,952",
    "–",
  ]);
  // The longest bar of each panel is the panel's width (300); others scale.
  const widths = [...svg.matchAll(/<rect x="(\d+)" y="\d+" width="([\d.]+)" height="14"/g)].map((m) =>
    Number(m[2])
  );
  assert.equal(widths.length, 12); // 6 figures × 2 panels
  assert.equal(Math.max(...widths), 300);
  assert.equal(widths[0], Number(((5.12 / 40.5) * 300).toFixed(1)));
});

test("bench report: title, the chart link, the table and the metrics cost", () => {
  const md = renderReport("| a | b |\n|---|---|\n| 1 | 2 |", INFO, "http.svg", ["- keep-alive: +1.0%"]);
  const lines = md.split("\n");
  assert.equal(
    lines[0],
    "# bench:http 2026-11-30 · AMD EPYC <test> & co, 2 cores · Deno 2.9.6 · Mongoose 7.23 · median of 3 × 2 s",
  );
  assert.ok(lines.includes("| 1 | 2 |"));
  assert.ok(md.includes("](http.svg)"));
  assert.ok(lines.includes("- keep-alive: +1.0%"));
  assert.equal(renderReport("t", INFO, "x.svg", []).includes("Cost of metrics"), false);
});
