// Host rows: which hosts a drawing shows (all up to 64, else the first and last halves with an
// elision row between) and the loop over the rows, so the memory and timeline drawings lay out
// and elide their rows the same way.
import type { HostPlan } from "@apb/planner";
import { svgText } from "./svg.js";

/** Which hosts to draw: all up to `max`, else the first and last halves (an elision row between). */
export function drawnHosts(hosts: number, max = 64): (number | "gap")[] {
  if (hosts <= max) return Array.from({ length: hosts }, (_, i) => i);
  const half = Math.floor(max / 2);
  return [...Array.from({ length: half }, (_, i) => i), "gap", ...Array.from({ length: half }, (_, i) => hosts - half + i)];
}

/** Where the rows go: the first row's top, each row's height and the space between rows. */
export interface RowGeometry {
  top: number;
  rowH: number;
  gap: number;
  /** The left edge of the drawing's bars: the elision row's "…" starts 4 px right of it. */
  x0: number;
}

/**
 * Each drawn row in turn (`hosts`, from drawnHosts): a host's row is `draw(host, y, i)`, with
 * `y` its top and `i` its index among the drawn rows; the elision row is a "…" in `svg`.
 */
export function eachHostRow(svg: SVGSVGElement, hostPlans: readonly HostPlan[], hosts: readonly (number | "gap")[], { top, rowH, gap, x0 }: RowGeometry, draw: (host: HostPlan, y: number, i: number) => void): void {
  hosts.forEach((h, i) => {
    const y = top + i * (rowH + gap);
    if (h === "gap") svg.append(svgText(x0 + 4, y + rowH, "…", { class: "note" }));
    else draw(hostPlans[h]!, y, i);
  });
}
