// Where each host's prefill time goes, one panel per strategy on one shared time axis: the
// plan's phases stacked per host, the slowest host marked, a line at time to first token.
import type { HostPlan, Plan, Strategy } from "@apb/planner";
import { formatMs, formatSpeedup } from "../format.js";
import { drawnHosts, eachHostRow } from "./host-rows.js";
import { legend } from "./legend.js";
import { svgEl, svgRoot, svgText, ticks, titled } from "./svg.js";

type Phase = "projections" | "scoring" | "attention" | "ffn" | "elementwise" | "communication";

const PHASES: { key: Phase; label: string }[] = [
  { key: "projections", label: "QKV + output projections" },
  { key: "scoring", label: "scoring (choosing passing keys)" },
  { key: "attention", label: "attention" },
  { key: "ffn", label: "FFN" },
  { key: "elementwise", label: "norms, RoPE, residual" },
  { key: "communication", label: "communication" },
];

export interface TimelineEntry {
  strategy: Strategy;
  plan: Plan | null;
  error: string | null;
  speedup: number | null;
}

function hostEnd(h: HostPlan, plan: Plan): number {
  return Math.max(h.timeMs.total, plan.summary.prefillMs) + h.timeMs.query;
}

export function drawTimelines(container: HTMLElement, entries: TimelineEntry[], selected: Strategy, width: number): void {
  const cols = width >= 900 ? 3 : width >= 560 ? 2 : 1;
  const gap = 12;
  // A panel's border and padding (styles.css: 1px + 6px each side) are not the drawing's.
  const panelW = Math.floor((width - (cols - 1) * gap) / cols) - 14;
  // Full attention is usually many times slower: the axis fits the other strategies, and
  // full's bar runs off it (labelled), so the phases of the fast ones stay readable.
  const extent = (e: TimelineEntry) => (e.plan ? Math.max(e.plan.summary.ttftMs, ...e.plan.hostPlans.map((h) => hostEnd(h, e.plan!))) : 0);
  const others = entries.filter((e) => e.strategy !== "full" && e.plan);
  const tmax = Math.max(1, ...(others.length > 0 ? others : entries).map(extent));
  const grid = document.createElement("div");
  grid.className = "panels";
  grid.style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
  for (const entry of entries) grid.append(panel(entry, entry.strategy === selected, panelW, tmax));
  container.replaceChildren(
    legend([...PHASES.map((p) => ({ className: `phase-${p.key}`, label: p.label })), { className: "phase-wait", label: "waiting for the slowest host" }, { className: "phase-query", label: "query pass" }]),
    grid,
  );
}

function panel(entry: TimelineEntry, selected: boolean, width: number, tmax: number): HTMLElement {
  const div = document.createElement("div");
  div.className = `panel${selected ? " selected" : ""}`;
  div.dataset.strategy = entry.strategy;
  const title = document.createElement("h3");
  title.textContent = entry.strategy;
  if (entry.plan) {
    const figure = document.createElement("span");
    figure.className = "figure";
    figure.textContent = ` ${formatMs(entry.plan.summary.ttftMs)}${entry.strategy === "full" ? "" : ` · ${formatSpeedup(entry.speedup)}`}`;
    title.append(figure);
  }
  div.append(title);
  if (!entry.plan) {
    const p = document.createElement("p");
    p.className = "panel-error";
    p.textContent = entry.error ?? "no plan";
    div.append(p);
    return div;
  }
  div.append(drawPanel(entry.plan, width, tmax));
  return div;
}

function drawPanel(plan: Plan, width: number, tmax: number): SVGSVGElement {
  const hosts = drawnHosts(plan.hostPlans.length);
  const rowH = Math.max(3, Math.min(14, Math.floor(150 / hosts.length)));
  const gap = rowH >= 8 ? 3 : 1;
  const labelW = 46;
  const x0 = labelW;
  const x1 = width - 10;
  const scale = (x1 - x0) / tmax;
  const top = 4;
  const bottom = top + hosts.length * (rowH + gap);
  const height = bottom + 20;
  const svg = svgRoot(width, height, `${plan.strategy}: predicted phases per host`);
  svg.classList.add("timeline");
  const clipId = `clip-${plan.strategy}`;
  svg.append(svgEl("clipPath", { id: clipId }, svgEl("rect", { x: 0, y: 0, width: x1, height })));
  const offAxis = plan.summary.ttftMs > tmax * 1.001;
  for (const t of ticks(tmax, width < 300 ? 2 : 4)) {
    const x = x0 + t * scale;
    if (x > x1 + 0.5) continue;
    const skipLabel = offAxis && t > 0;
    svg.append(svgEl("line", { x1: x, x2: x, y1: top, y2: bottom, class: "grid" }));
    const anchor = t === 0 ? "start" : x > x1 - 20 ? "end" : "middle";
    if (!skipLabel) svg.append(svgText(x, bottom + 13, formatMs(t), { class: "tick", "text-anchor": anchor }));
  }
  const slowest = plan.summary.slowestHost;
  const labelAll = rowH >= 10;
  // With thin rows only the first, the last and the slowest host are named, and an end label
  // too close to the slowest one is left out.
  const slowestAt = hosts.indexOf(slowest);
  const clear = (i: number) => slowestAt < 0 || Math.abs(i - slowestAt) * (rowH + gap) >= 12;
  eachHostRow(svg, plan.hostPlans, hosts, { top, rowH, gap, x0 }, (host, y, i) => {
    const isSlowest = host.host === slowest;
    const g = svgEl("g", { class: `timeline-row${isSlowest ? " slowest" : ""}`, "data-host": host.host, "clip-path": `url(#${clipId})` });
    if (labelAll || isSlowest || ((i === 0 || i === hosts.length - 1) && clear(i))) {
      g.append(svgText(labelW - 6, y + rowH / 2 + 4, isSlowest ? `▶ ${host.host}` : `${host.host}`, { class: "row-label", "text-anchor": "end" }));
    }
    let x = x0;
    for (const phase of PHASES) {
      const ms = host.timeMs[phase.key];
      if (ms <= 0) continue;
      const w = ms * scale;
      g.append(titled(svgEl("rect", { x, y, width: Math.max(w, 0.5), height: rowH, class: `phase phase-${phase.key}` }), `host ${host.host} ${phase.label}: ${formatMs(ms)}`));
      x += w;
    }
    const prefillEnd = x0 + plan.summary.prefillMs * scale;
    if (prefillEnd > x + 0.5) {
      g.append(titled(svgEl("rect", { x, y, width: prefillEnd - x, height: rowH, class: "phase phase-wait" }), `host ${host.host} waits ${formatMs(plan.summary.prefillMs - host.timeMs.total)} for the slowest host`));
      x = prefillEnd;
    }
    g.append(titled(svgEl("rect", { x, y, width: Math.max(host.timeMs.query * scale, 0.5), height: rowH, class: "phase phase-query" }), `host ${host.host} query pass: ${formatMs(host.timeMs.query)}`));
    if (isSlowest) {
      g.append(titled(svgEl("rect", { x: x0 - 1, y: y - 1, width: host.timeMs.total * scale + 2, height: rowH + 2, class: "slowest-outline" }), `host ${host.host} is the slowest: ${formatMs(host.timeMs.total)} of prefill work`));
    }
    svg.append(g);
  });
  if (offAxis) {
    svg.append(svgText(x1, bottom + 13, `runs off the axis: ${formatMs(plan.summary.ttftMs)} ▶`, { class: "tick off-axis", "text-anchor": "end" }));
    return svg;
  }
  const ttft = x0 + plan.summary.ttftMs * scale;
  svg.append(titled(svgEl("line", { x1: ttft, x2: ttft, y1: top - 2, y2: bottom, class: "ttft-line" }), `predicted time to first token: ${formatMs(plan.summary.ttftMs)}`));
  return svg;
}
