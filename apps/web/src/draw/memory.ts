// Memory per host against the device's: weights, KV kept after prefill, one layer's
// transient KV and activations, stacked; a line at the device's memory.
import type { Plan } from "@apb/planner";
import { formatGiB } from "../format.js";
import { drawnHosts, eachHostRow } from "./host-rows.js";
import { legend } from "./legend.js";
import { svgEl, svgRoot, svgText, ticks, titled } from "./svg.js";

const PARTS = [
  { key: "weights", label: "weights" },
  { key: "kvKept", label: "KV kept after prefill" },
  { key: "kvTransient", label: "transient KV (one layer)" },
  { key: "activations", label: "activations" },
] as const;

const GiB = 1024 ** 3;

export function drawMemory(container: HTMLElement, plan: Plan, width: number): void {
  const hosts = drawnHosts(plan.hostPlans.length);
  const limit = plan.summary.memoryLimitBytes;
  const peak = Math.max(...plan.hostPlans.map((h) => h.memory.total));
  const max = Math.max(limit, peak) * 1.04;
  const labelW = width < 480 ? 50 : 64;
  const x0 = labelW;
  const x1 = width - 12;
  const scale = (x1 - x0) / max;
  const rowH = Math.max(4, Math.min(18, Math.floor(320 / hosts.length)));
  const gap = rowH >= 10 ? 5 : 1;
  const top = 20;
  const bottom = top + hosts.length * (rowH + gap);
  const height = bottom + 22;
  const svg = svgRoot(width, height, `Memory per host: peak ${formatGiB(peak)} of ${formatGiB(limit)}`);
  svg.classList.add("memory");
  for (const t of ticks(max / GiB, width < 480 ? 3 : 6)) {
    const x = x0 + t * GiB * scale;
    svg.append(svgEl("line", { x1: x, x2: x, y1: top, y2: bottom, class: "grid" }), svgText(x, bottom + 14, `${t} GiB`, { class: "tick", "text-anchor": t === 0 ? "start" : x > x1 - 24 ? "end" : "middle" }));
  }
  eachHostRow(svg, plan.hostPlans, hosts, { top, rowH, gap, x0 }, (host, y, i) => {
    const g = svgEl("g", { class: `memory-row${host.memory.fits ? "" : " over"}`, "data-host": host.host });
    if (rowH >= 10 || i === 0 || i === hosts.length - 1) g.append(svgText(4, y + rowH / 2 + 4, `host ${host.host}`, { class: "row-label" }));
    let x = x0;
    for (const part of PARTS) {
      const bytes = host.memory[part.key];
      const w = bytes * scale;
      g.append(titled(svgEl("rect", { x, y, width: Math.max(w, 0.5), height: rowH, class: `mem mem-${part.key}` }), `host ${host.host} ${part.label}: ${formatGiB(bytes)}`));
      x += w;
    }
    if (rowH >= 10) {
      const label = host.memory.fits ? formatGiB(host.memory.total) : `${formatGiB(host.memory.total)}: does not fit`;
      const inside = x + 6 + label.length * 6.4 > x1;
      g.append(svgText(inside ? x - 4 : x + 4, y + rowH / 2 + 4, label, { class: `bar-value${inside ? " inside" : ""}`, "text-anchor": inside ? "end" : "start" }));
    }
    svg.append(g);
  });
  const lx = x0 + limit * scale;
  svg.append(svgEl("line", { x1: lx, x2: lx, y1: top - 4, y2: bottom, class: "limit-line" }));
  const label = `device ${formatGiB(limit)}`;
  svg.append(svgText(lx, top - 7, label, { class: "limit-label", "text-anchor": lx > width - 90 ? "end" : "middle" }));
  const note = document.createElement("p");
  note.className = plan.summary.fits ? "note" : "note warn";
  note.textContent = plan.summary.fits
    ? `Peak ${formatGiB(peak)} of the device's ${formatGiB(limit)}: fits.`
    : `Peak ${formatGiB(peak)} is more than the device's ${formatGiB(limit)}: this layout does not fit; add hosts or pick a device with more memory.`;
  container.replaceChildren(legend(PARTS.map((p) => ({ className: `mem-${p.key}`, label: p.label }))), svg, note);
}
