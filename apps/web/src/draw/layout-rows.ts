// One row per host: what its local rows attend to, in the order a kernel reads the keys
// (passing blocks from earlier hosts, the anchor with the query embedded, its local block),
// every width to one token scale.
import type { HostPlan, Plan } from "@apb/planner";
import { formatLength } from "../lengths.js";
import { drawnHosts } from "./host-rows.js";
import { legend } from "./legend.js";
import { svgEl, svgRoot, svgText, textWidth, titled, tokenTicks } from "./svg.js";

interface Segment {
  kind: "passing" | "ring" | "prefix" | "query" | "anchor" | "probe" | "local";
  tokens: number;
  label: string;
  title: string;
}

const LABELS: Record<Segment["kind"], string> = {
  passing: "passing block from an earlier host",
  ring: "earlier document, arriving over the ring / all-to-all",
  prefix: "prefix (BOS/system)",
  query: "query, embedded in the anchor",
  anchor: "anchor: the document's first tokens",
  probe: "probe: prefix + query, only for scoring",
  local: "local block",
};

function range(a: number, b: number): string {
  return `${formatLength(a)}–${formatLength(b)}`;
}

export function segmentsOf(plan: Plan, host: HostPlan): Segment[] {
  const out: Segment[] = [];
  const { fromHosts, receives } = host.passing;
  if (fromHosts > 0) {
    const senders = plan.hostPlans.slice(0, fromHosts).map((h) => h.passing.sends);
    const even = senders.reduce((a, b) => a + b, 0) !== receives;
    senders.forEach((sends, j) => {
      const tokens = even ? receives / fromHosts : sends;
      out.push({ kind: "passing", tokens, label: `P${j}`, title: `passing block from host ${j}: ${tokens} keys per KV head, the ones host ${j} scored highest` });
    });
  }
  let seen = 0;
  for (const range of host.segments) {
    if (range.rows === "anchor") continue;
    for (const key of range.keys) if (key.source === "document") seen = Math.max(seen, key.count);
  }
  if (seen > 0) {
    const label = plan.strategy === "ulysses" ? `whole sequence, heads ${host.qHeads[0]}–${host.qHeads[0] + host.qHeads[1] - 1}` : "earlier blocks (ring)";
    out.push({ kind: "ring", tokens: seen, label, title: `${seen} document tokens ${plan.strategy === "ulysses" ? "for this host's share of the heads, after an all-to-all" : "arriving block by block over the ring"}` });
  }
  if (host.anchor.kind === "probe") {
    out.push({ kind: "probe", tokens: host.anchor.tokens, label: "probe", title: `probe: ${host.anchor.tokens} rows (prefix and query) used only to score this host's keys for passing; its local rows never see them` });
  } else if (host.anchor.kind === "block") {
    for (const part of host.anchor.parts) {
      const kind = part.kind === "document" ? "anchor" : part.kind;
      const what = part.kind === "query" ? `query tokens ${part.sourceStart}–${part.sourceStart + part.tokens}` : part.kind === "prefix" ? "prefix" : `document ${range(part.sourceStart, part.sourceStart + part.tokens)}`;
      out.push({ kind, tokens: part.tokens, label: part.kind === "query" ? "query" : part.kind === "document" ? "anchor" : "", title: `anchor rows ${part.rowStart}–${part.rowStart + part.tokens}: ${what} (${part.tokens} tokens)` });
    }
  }
  for (const [a, b] of host.localRanges) {
    out.push({ kind: "local", tokens: b - a, label: `local ${range(a, b)}`, title: `local block: document tokens ${a}–${b} (${b - a})` });
  }
  return out;
}

export function drawLayoutRows(container: HTMLElement, plan: Plan, width: number): void {
  const hosts = drawnHosts(plan.hostPlans.length);
  const rows = hosts.map((h) => (h === "gap" ? null : { host: plan.hostPlans[h]!, segments: segmentsOf(plan, plan.hostPlans[h]!) }));
  const widest = Math.max(1, ...rows.map((r) => (r ? r.segments.reduce((a, s) => a + s.tokens, 0) : 0)));
  const showContext = plan.contextTokens <= widest * 4;
  const max = showContext ? Math.max(widest, plan.contextTokens) : widest;

  const labelW = width < 480 ? 50 : 64;
  const x0 = labelW;
  const x1 = width - 12;
  const scale = (x1 - x0) / max;
  // Rows shrink for large groups (64 drawn at most) so the drawing stays about a screen tall.
  const rowH = Math.max(9, Math.min(22, Math.floor(560 / rows.length) - 4));
  const gap = rowH >= 18 ? 7 : 3;
  const labelEvery = rowH + gap >= 14 ? 1 : Math.ceil(14 / (rowH + gap));
  const top = 24;
  const height = top + rows.length * (rowH + gap) + 6;
  const svg = svgRoot(width, height, `Layout of ${plan.contextTokens} tokens over ${plan.hostPlans.length} hosts with ${plan.strategy}`);
  svg.classList.add("layout-rows");

  for (const t of tokenTicks(max, width < 480 ? 4 : 8)) {
    const x = x0 + t * scale;
    svg.append(svgEl("line", { x1: x, x2: x, y1: top - 6, y2: height - 4, class: "grid" }), svgText(x, top - 9, formatLength(t), { class: "tick", "text-anchor": t === 0 ? "start" : x > x1 - 16 ? "end" : "middle" }));
  }
  if (showContext) {
    const x = x0 + plan.contextTokens * scale;
    svg.append(svgEl("line", { x1: x, x2: x, y1: top - 4, y2: height - 4, class: "context-line" }));
  }

  rows.forEach((row, i) => {
    const y = top + i * (rowH + gap);
    if (!row) {
      svg.append(svgText(x0, y + rowH / 2 + 4, `… ${plan.hostPlans.length - (hosts.length - 1)} hosts not drawn …`, { class: "note" }));
      return;
    }
    const g = svgEl("g", { class: "host-row", "data-host": row.host.host });
    if (i % labelEvery === 0 || i === rows.length - 1) g.append(svgText(4, y + rowH / 2 + 4, `host ${row.host.host}`, { class: "row-label" }));
    let x = x0;
    const onTop: SVGElement[] = [];
    for (const seg of row.segments) {
      const w = seg.tokens * scale;
      // The query and the probe are a few hundred tokens at most: drawn at least 3 px wide (over
      // the anchor's first tokens) so they stay visible; the widths after them stay to scale.
      const minW = seg.kind === "query" || seg.kind === "probe" ? 3 : 0.5;
      const rect = titled(svgEl("rect", { x, y, width: Math.max(w, minW), height: rowH, class: `seg seg-${seg.kind}` }), seg.title);
      if (minW > w) {
        rect.classList.add("widened");
        onTop.push(rect);
      } else g.append(rect);
      if (seg.label && rowH >= 14 && textWidth(seg.label) + 6 < w) g.append(svgText(x + 3, y + rowH / 2 + 4, seg.label, { class: `seg-label on-${seg.kind}` }));
      x += w;
    }
    g.append(...onTop);
    svg.append(g);
  });

  const kinds = new Set(rows.flatMap((r) => (r ? r.segments.map((s) => s.kind) : [])));
  const items = (Object.keys(LABELS) as Segment["kind"][]).filter((k) => kinds.has(k)).map((k) => ({ className: `seg-${k}`, label: LABELS[k] }));
  if (showContext) items.push({ className: "context-swatch", label: `the whole context (${formatLength(plan.contextTokens)}): what full attention reads` });
  const note = document.createElement("p");
  note.className = "note";
  note.textContent = showContext ? "" : `Scale: the widest row; the whole context (${formatLength(plan.contextTokens)}) is ${(plan.contextTokens / widest).toFixed(1)}× wider.`;
  container.replaceChildren(legend(items), svg, ...(note.textContent ? [note] : []));
}
