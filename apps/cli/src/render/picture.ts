// One line per host: the keys its local rows attend to, in the order the kernel reads
// them, drawn to scale from the plan's segments.
import type { HostPlan, KeySegment, Plan } from "@apb/planner";

const GLYPH: Record<KeySegment["source"], string> = { passing: "P", anchor: "A", local: "L", document: "D" };
export const LEGEND = "P passing keys from earlier hosts, A anchor (Q its embedded query), D earlier document keys, L local (causal)";

function keysOf(host: HostPlan): KeySegment[] {
  const local = host.segments.filter((s) => s.rows !== "anchor");
  return local.flatMap((s) => s.keys);
}

function draw(host: HostPlan, scale: number): string {
  let out = "";
  for (const key of keysOf(host)) {
    const cells = Math.max(1, Math.round(key.count * scale));
    if (key.source === "anchor") {
      const query = host.anchor.parts.find((p) => p.kind === "query");
      const q = query ? Math.max(1, Math.round(query.tokens * scale)) : 0;
      const before = query ? Math.round(query.rowStart * scale) : 0;
      out += "A".repeat(before) + "Q".repeat(q) + "A".repeat(Math.max(0, cells - before - q));
    } else {
      out += GLYPH[key.source].repeat(cells);
    }
  }
  return out;
}

export function layoutPicture(plan: Plan, width = 64): string {
  const totals = plan.hostPlans.map((h) => keysOf(h).reduce((n, k) => n + k.count, 0));
  const scale = width / Math.max(...totals);
  const label = String(plan.hostPlans.length - 1).length;
  return plan.hostPlans
    .map((h) => `host ${String(h.host).padStart(label)} |${draw(h, scale).padEnd(width)}|`)
    .join("\n");
}
