// recommend's settings, and a button that puts them in the form.
import type { Plan, Recommendation } from "@apb/planner";
import { formatMs } from "./format.js";
import { formatLength } from "./lengths.js";
import { isAnchored } from "./request.js";

export interface Applied {
  strategy: string;
  hosts: string;
  anchor: string;
  passing: string;
  balanced: boolean;
}

export function drawRecommendation(
  container: HTMLElement,
  rec: Recommendation | { error: string } | null,
  current: Plan,
  maxHosts: number,
  apply: (settings: Applied) => void,
  search: () => void,
): void {
  const p = document.createElement("p");
  if (rec === null) {
    p.textContent = `Searching layouts with up to ${maxHosts} hosts takes a while in the browser, so it runs when you ask.`;
    const button = document.createElement("button");
    button.type = "button";
    button.id = "run-recommendation";
    button.textContent = `Search up to ${maxHosts} hosts`;
    button.addEventListener("click", () => {
      button.disabled = true;
      button.textContent = "Searching…";
      // Let the browser paint the message before the search holds the page.
      setTimeout(search, 30);
    });
    container.replaceChildren(p, button);
    return;
  }
  if ("error" in rec) {
    p.className = "warn";
    p.textContent = `No recommendation: ${rec.error}`;
    container.replaceChildren(p);
    return;
  }
  const best = rec.best;
  if (!best) {
    p.className = "warn";
    p.textContent = `No layout within ${maxHosts} hosts fits${rec.reason ? `: ${rec.reason}` : "."}`;
    container.replaceChildren(p);
    return;
  }
  const list = document.createElement("dl");
  list.className = "settings";
  const items: [string, string][] = [
    ["Strategy", best.strategy],
    ["Hosts", String(best.hosts)],
    ["Anchor", best.anchorTokens ? `${formatLength(best.anchorTokens)} tokens` : "–"],
    ["Passing", best.passingTokens ? `${formatLength(best.passingTokens)} tokens` : "–"],
    ["Balanced", best.balanced ? "yes" : "no"],
    ["Time to first token", formatMs(best.summary.ttftMs)],
  ];
  for (const [k, v] of items) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    list.append(dt, dd);
  }
  const gain = current.summary.ttftMs / best.summary.ttftMs;
  p.textContent =
    `The fastest of ${rec.searched} layouts searched with up to ${maxHosts} hosts that fit in memory` +
    (gain > 1.0005 ? `: ${gain.toFixed(2)}× faster than the current ${formatMs(current.summary.ttftMs)}.` : `; the current settings are as fast.`);
  const button = document.createElement("button");
  button.type = "button";
  button.id = "apply-recommendation";
  button.textContent = "Apply these settings";
  const same =
    best.strategy === current.strategy && best.hosts === current.hosts && best.anchorTokens === current.anchorTokens &&
    best.passingTokens === current.passingTokens && best.balanced === current.balanced;
  button.disabled = same;
  button.addEventListener("click", () =>
    apply({
      strategy: best.strategy,
      hosts: String(best.hosts),
      anchor: isAnchored(best.strategy) ? String(best.anchorTokens) : "",
      passing: best.strategy === "apb" ? String(best.passingTokens) : "",
      balanced: best.balanced,
    }),
  );
  container.replaceChildren(p, list, button);
}
