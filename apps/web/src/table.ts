// The comparison of strategies: predicted time to first token and speedup over full attention.
import type { Comparison, Strategy } from "@apb/planner";
import { formatGiB, formatMs, formatSpeedup } from "./format.js";
import { formatLength } from "./lengths.js";

const HEAD = ["Strategy", "Hosts", "Anchor", "Passing", "Prefill", "Query pass", "Time to first token", "Speedup vs full", "Peak memory"];
/** Columns left out on a narrow screen (the class "wide"): the table's point is the time and the speedup. */
const WIDE = new Set([2, 3, 4, 5]);

export function drawTable(container: HTMLElement, comparison: Comparison, selected: Strategy): void {
  const table = document.createElement("table");
  table.className = "comparison";
  const caption = table.createCaption();
  caption.textContent = `${formatLength(comparison.contextTokens)} tokens, ${comparison.hosts} hosts: predicted times per strategy`;
  const thead = table.createTHead().insertRow();
  for (const [i, h] of HEAD.entries()) {
    const th = document.createElement("th");
    th.scope = "col";
    if (WIDE.has(i)) th.className = "wide";
    th.textContent = h;
    thead.append(th);
  }
  const body = table.createTBody();
  const fastest = Math.min(...comparison.strategies.map((r) => ("error" in r ? Infinity : r.summary.ttftMs)));
  for (const row of comparison.strategies) {
    const tr = body.insertRow();
    tr.dataset.strategy = row.strategy;
    if (row.strategy === selected) tr.className = "selected";
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = row.strategy;
    tr.append(th);
    if ("error" in row) {
      const td = tr.insertCell();
      td.colSpan = HEAD.length - 1;
      td.className = "row-error";
      td.textContent = row.error.message;
      continue;
    }
    const cells = [
      String(row.hosts),
      row.anchorTokens ? formatLength(row.anchorTokens) : "–",
      row.passingTokens ? formatLength(row.passingTokens) : "–",
      formatMs(row.summary.prefillMs),
      formatMs(row.summary.queryMs),
      formatMs(row.summary.ttftMs),
      formatSpeedup(row.speedupVsFull),
      `${formatGiB(row.summary.memoryPeakBytes)}${row.summary.fits ? "" : " (does not fit)"}`,
    ];
    cells.forEach((text, i) => {
      const td = tr.insertCell();
      td.textContent = text;
      if (WIDE.has(i + 1)) td.className = "wide";
      if (i === 5 && row.summary.ttftMs === fastest) td.className = "best";
      if (i === 7 && !row.summary.fits) td.className = "over";
    });
  }
  container.replaceChildren(table);
}
