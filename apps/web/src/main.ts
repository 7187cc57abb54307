// The page: read the form (or the URL), plan, draw; keep the URL in step so a layout can be shared.
import { Planner } from "@apb/planner";
import { compute, recommendFor, type Outcome } from "./compute.js";
import { drawLayoutRows } from "./draw/layout-rows.js";
import { drawMemory } from "./draw/memory.js";
import { drawTimelines } from "./draw/timeline.js";
import { clearErrors, showErrors } from "./errors.js";
import { Form } from "./form.js";
import { formatLength } from "./lengths.js";
import { drawRecommendation } from "./recommend.js";
import { buildRequest, errorForField } from "./request.js";
import { fromSearch, toSearch } from "./state.js";
import { drawTable } from "./table.js";
import { mountLive } from "./live-mount.js";

function el(id: string): HTMLElement {
  return document.getElementById(id)!;
}

const form = new Form();
const results = el("results");
const status = el("status");
let planner: Planner | null = null;
let last: Outcome | null = null;
/** The model and hardware of the last input the form could read (the live view plans with them). */
let lastModel: Pick<Outcome["request"], "model" | "hardware"> | null = null;
let renders = 0;

function width(container: HTMLElement): number {
  return Math.max(280, Math.floor(container.clientWidth));
}

function draw(outcome: Outcome): void {
  const { plan } = outcome;
  el("layout-summary").textContent =
    `${plan.strategy} on ${plan.hosts} host${plan.hosts === 1 ? "" : "s"}: blocks of ${formatLength(plan.blockTokens)} tokens` +
    (plan.anchorTokens ? `, anchor ${formatLength(plan.anchorTokens)}` : "") +
    (plan.passingTokens ? `, passing ${formatLength(plan.passingTokens)} per host` : "") +
    (plan.balance ? `; balanced blocks: ${plan.balance.gain.toFixed(2)}× faster prefill than even ones` : "") +
    (plan.warnings.length ? `. ${plan.warnings.join("; ")}` : "");
  drawLayoutRows(el("layout"), plan, width(el("layout")));
  const speedups = new Map(outcome.comparison.strategies.map((r) => [r.strategy, "error" in r ? null : r.speedupVsFull]));
  drawTimelines(el("timeline"), outcome.plans.map((p) => ({ ...p, speedup: speedups.get(p.strategy) ?? null })), plan.strategy, width(el("timeline")));
  drawMemory(el("memory"), plan, width(el("memory")));
  drawTable(el("table"), outcome.comparison, plan.strategy);
  drawRecommendationOf(outcome);
}

function drawRecommendationOf(outcome: Outcome): void {
  drawRecommendation(
    el("recommendation"),
    outcome.recommendation,
    outcome.plan,
    Math.min(outcome.request.hosts, 1024),
    (settings) => {
      form.write(settings);
      update();
    },
    () => {
      if (!planner || last !== outcome) return; // the form changed meanwhile
      outcome.recommendation = recommendFor(planner, outcome.request);
      drawRecommendationOf(outcome);
    },
  );
}

function update(): void {
  const state = form.read();
  const search = toSearch(state);
  history.replaceState(null, "", search ? `?${search}` : location.pathname);
  clearErrors(form.root);
  el("context-hint").textContent = "";
  const built = buildRequest(state);
  let ok = false;
  if (!built.ok) {
    showErrors(form.root, built.errors);
  } else if (planner) {
    lastModel = { model: built.request.model, hardware: built.request.hardware };
    try {
      last = compute(planner, built.request);
      ok = true;
      if (built.contextLimit !== null && built.request.contextTokens > built.contextLimit) {
        el("context-hint").textContent = `${built.modelName} was trained for ${formatLength(built.contextLimit)} tokens.`;
      }
    } catch (cause) {
      showErrors(form.root, [errorForField(cause, state)]);
    }
  }
  if (ok && last) {
    form.showDefaults(last.defaults.anchorTokens, last.defaults.passingTokens);
    try {
      draw(last);
    } catch (cause) {
      showErrors(form.root, [{ field: "general", message: `cannot draw this plan: ${(cause as Error).message}` }]);
      ok = false;
    }
  }
  results.classList.toggle("stale", !ok && last !== null);
  status.textContent = ok
    ? ""
    : last
      ? "Showing the last valid layout: fix the field marked in red to update it."
      : "Nothing to draw yet: fix the field marked in red.";
  renders += 1;
  document.body.dataset.renders = String(renders);
  document.body.dataset.status = ok ? "ok" : "error";
}

let timer: ReturnType<typeof setTimeout> | undefined;
function schedule(immediate: boolean): void {
  clearTimeout(timer);
  if (immediate) update();
  else timer = setTimeout(update, 200);
}

let resizeTimer: ReturnType<typeof setTimeout> | undefined;
let lastWidth = window.innerWidth;
window.addEventListener("resize", () => {
  if (window.innerWidth === lastWidth) return;
  lastWidth = window.innerWidth;
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => last && draw(last), 150);
});

async function start(): Promise<void> {
  form.write(fromSearch(location.search));
  form.onChange(schedule);
  try {
    // Beside the page, not beside the bundled module: the page's own URL is the base.
    planner = await Planner.create(new URL("apb_plan.wasm", document.baseURI));
  } catch (cause) {
    showErrors(form.root, [{ field: "general", message: `The planner did not load: ${(cause as Error).message}` }]);
    document.body.dataset.status = "error";
    return;
  }
  update();
  mountLive(el("live"), () => (planner && lastModel ? { planner, ...lastModel } : null));
}

void start();
