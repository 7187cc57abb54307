// The live view: a coordinator's hosts and its running job's prefill, layer by layer, beside
// the plan the planner predicted for that job's sizes. Plain DOM; every value goes in as text.
import type { Plan } from "@apb/planner";
import type { FromCoordinator, JobSummary } from "@apb/protocol";
import { WatchClient, type WatchEvent, type WatchOptions } from "./client.js";
import { age, bytes, health, ms } from "./format.js";
import { apply, emptyState, prefillFraction, type LiveJob, type LiveState } from "./state.js";

export interface LiveViewOptions {
  /** The plan predicted for a job's sizes and settings; null when the page cannot predict it (no model chosen). */
  planFor(job: JobSummary): Promise<Plan> | null;
  /** Reconnection and liveness timing (tests shorten them). */
  watch?: WatchOptions;
}

export interface LiveView {
  /** Starts watching as if the form were submitted. */
  watch(address: string, token: string): void;
  stop(): void;
}

type PlanState = { jobId: string } & ({ kind: "none" } | { kind: "pending" } | { kind: "ready"; plan: Plan } | { kind: "error"; message: string });

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: { className?: string; text?: string } = {}, ...children: Node[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.className) node.className = props.className;
  if (props.text !== undefined) node.textContent = props.text;
  for (const child of children) node.append(child);
  return node;
}

let nextId = 0;

export function mountLiveView(element: HTMLElement, options: LiveViewOptions): LiveView {
  const uid = `apb-live-${++nextId}`;
  const root = el("section", { className: "apb-live" });
  root.setAttribute("aria-label", "Live view of a coordinator");

  // ---- the form
  const form = el("form", { className: "apb-live-form" });
  const address = el("input");
  address.type = "text";
  address.id = `${uid}-address`;
  address.name = "address";
  address.placeholder = "ws://127.0.0.1:7070";
  address.autocomplete = "off";
  address.spellcheck = false;
  const token = el("input");
  token.type = "password";
  token.id = `${uid}-token`;
  token.name = "token";
  token.autocomplete = "off";
  const addressLabel = el("label", { text: "Coordinator address" });
  addressLabel.htmlFor = address.id;
  const tokenLabel = el("label", { text: "Token" });
  tokenLabel.htmlFor = token.id;
  const watchButton = el("button", { text: "Watch" });
  watchButton.type = "submit";
  const stopButton = el("button", { text: "Stop" });
  stopButton.type = "button";
  stopButton.disabled = true;
  form.append(el("div", {}, addressLabel, address), el("div", {}, tokenLabel, token), watchButton, stopButton);

  const connection = el("p", { className: "apb-live-connection", text: "Not watching: enter a coordinator's address and token." });
  connection.setAttribute("role", "status");
  connection.setAttribute("aria-live", "polite");
  const group = el("p", { className: "apb-live-group" });
  const hostsTable = el("table", { className: "apb-live-hosts" });
  const jobSection = el("div", { className: "apb-live-job" });
  root.append(form, connection, group, hostsTable, jobSection);
  element.append(root);

  let client: WatchClient | null = null;
  let state: LiveState = emptyState();
  let plan: PlanState | null = null;

  // Drawn on every event, at once: a few small tables, and no layer a host reports is skipped.
  const render = () => {
    renderGroup(group, state, connection.dataset.state === "down");
    renderHosts(hostsTable, state);
    renderJob(jobSection, state.job, plan);
  };
  const schedule = render;

  const askPlan = (job: LiveJob) => {
    const jobId = job.jobId;
    let pending: Promise<Plan> | null;
    try {
      pending = options.planFor(job.summary);
    } catch (e) {
      plan = { jobId, kind: "error", message: e instanceof Error ? e.message : String(e) };
      return;
    }
    if (!pending) {
      plan = { jobId, kind: "none" };
      return;
    }
    plan = { jobId, kind: "pending" };
    pending.then(
      (p) => {
        if (plan?.jobId === jobId) plan = { jobId, kind: "ready", plan: p };
        schedule();
      },
      (e: unknown) => {
        if (plan?.jobId === jobId) plan = { jobId, kind: "error", message: messageOf(e) };
        schedule();
      },
    );
  };

  const onEvent = (event: WatchEvent) => {
    switch (event.kind) {
      case "connecting":
        setConnection(connection, "connecting", event.attempt === 1 ? `Connecting to ${event.url}…` : `Reconnecting to ${event.url} (attempt ${event.attempt})…`);
        break;
      case "open":
        setConnection(connection, "open", `Watching ${event.url}.`);
        break;
      case "down":
        setConnection(
          connection,
          "down",
          event.retryInMs === null ? `${event.reason}. Not retrying: fix the address or token and watch again.` : `${event.reason}. Retrying in ${(event.retryInMs / 1000).toFixed(1)} s.`,
        );
        if (event.retryInMs === null) setWatching(false);
        break;
      case "message":
        onMessage(event.message);
        break;
    }
    schedule();
  };

  const onMessage = (message: FromCoordinator) => {
    if (apply(state, message).newJob && state.job) askPlan(state.job);
  };

  const setWatching = (on: boolean) => {
    stopButton.disabled = !on;
  };

  const view: LiveView = {
    watch(url: string, secret: string) {
      client?.stop();
      state = emptyState();
      plan = null;
      address.value = url;
      token.value = secret;
      client = new WatchClient(url.trim(), secret, onEvent, options.watch);
      setWatching(true);
      client.start();
      schedule();
    },
    stop() {
      client?.stop();
      client = null;
      setWatching(false);
      setConnection(connection, "idle", "Stopped watching.");
    },
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    view.watch(address.value, token.value);
  });
  stopButton.addEventListener("click", () => view.stop());
  render();
  return view;
}

function messageOf(e: unknown): string {
  if (e && typeof e === "object" && "message" in e) return String((e as { message: unknown }).message);
  return String(e);
}

function setConnection(node: HTMLElement, kind: "idle" | "connecting" | "open" | "down", text: string): void {
  node.dataset.state = kind;
  node.textContent = text;
}

function renderGroup(node: HTMLElement, state: LiveState, stale: boolean): void {
  const s = state.status;
  if (!s) {
    node.textContent = "";
    return;
  }
  const ready = s.worldSize - s.missing;
  const formed = s.formed ? `group ${s.groupId ?? ""} formed` : `group not formed (${ready} of ${s.worldSize} hosts ready)`;
  const running = s.runningJobId === null ? "idle" : `running job ${s.runningJobId}`;
  node.textContent = `${stale ? "Last known: " : ""}${formed}; ${s.hosts.length} host${s.hosts.length === 1 ? "" : "s"} connected; ${running}; ${s.queuedJobs} queued.`;
}

const HOST_COLUMNS = ["Rank", "Host", "PID", "Backend", "GPU", "GPU memory", "Free memory", "State", "Last seen"];

function renderHosts(table: HTMLTableElement, state: LiveState): void {
  table.replaceChildren();
  const s = state.status;
  if (!s) return;
  table.append(el("caption", { text: "Hosts" }));
  const head = el("tr");
  for (const name of HOST_COLUMNS) {
    const th = el("th", { text: name });
    th.scope = "col";
    head.append(th);
  }
  table.append(el("thead", {}, head));
  const body = el("tbody");
  if (s.hosts.length === 0) {
    const td = el("td", { text: "No host has joined yet." });
    td.colSpan = HOST_COLUMNS.length;
    body.append(el("tr", {}, td));
  }
  for (const h of s.hosts) {
    const gpus = h.facts.gpus;
    const gpuName = gpus.length === 0 ? "none (CPU)" : gpus.length === 1 ? gpus[0]!.name : `${gpus.length} × ${gpus[0]!.name}`;
    const gpuMemory = gpus.length === 0 ? "—" : bytes(gpus.reduce((sum, g) => sum + g.memoryBytes, 0));
    const row = el("tr");
    row.dataset.rank = h.rank === null ? "standby" : String(h.rank);
    row.dataset.health = health(h.lastSeenMs);
    const cells = [
      h.rank === null ? "standby" : String(h.rank),
      h.facts.hostname,
      String(h.facts.pid),
      h.facts.backend,
      gpuName,
      gpuMemory,
      bytes(h.facts.freeMemoryBytes),
      h.state,
      `${age(h.lastSeenMs)}${health(h.lastSeenMs) === "late" ? " (late)" : ""}`,
    ];
    cells.forEach((text, i) => {
      const td = el("td", { text });
      td.dataset.field = HOST_COLUMNS[i]!.toLowerCase().replace(/ /g, "-");
      row.append(td);
    });
    body.append(row);
  }
  table.append(body);
}

function describeJob(job: LiveJob): string {
  const s = job.summary;
  const extras = [
    s.anchorTokens === null ? null : `anchor ${s.anchorTokens}`,
    s.passingTokens === null ? null : `passing ${s.passingTokens}`,
    s.balanced ? "balanced" : null,
  ].filter((x) => x !== null);
  return `Job ${job.jobId}: ${s.strategy} on ${s.hosts} host${s.hosts === 1 ? "" : "s"}, ${s.contextTokens} context tokens (${s.prefixTokens} prefix) + ${s.queryTokens} query${extras.length ? `, ${extras.join(", ")}` : ""}`;
}

function renderJob(node: HTMLElement, job: LiveJob | null, plan: PlanState | null): void {
  node.replaceChildren();
  if (!job) return;
  node.dataset.jobId = job.jobId;
  node.dataset.outcome = job.outcome.kind;
  node.append(el("h3", { text: describeJob(job) }));
  const o = job.outcome;
  const outcome =
    o.kind === "running"
      ? "Running."
      : o.kind === "done"
        ? `Done in ${ms(o.wallMs)} (first token after ${ms(o.firstTokenMs)})${o.hosts[0] ? `; ran with blocks of ${o.hosts[0].blockTokens}, anchor ${o.hosts[0].anchorTokens}, passing ${o.hosts[0].passingTokens}` : ""}.`
        : `Failed: ${o.error.code}: ${o.error.message}`;
  node.append(el("p", { className: "apb-live-outcome", text: outcome }));

  const p = plan?.jobId === job.jobId ? plan : null;
  const predicted = p?.kind === "ready" ? p.plan : null;
  node.append(
    el(
      "p",
      { className: "apb-live-plan" },
      document.createTextNode(
        !p || p.kind === "none"
          ? "No prediction: choose the model in the planner to see the predicted plan."
          : p.kind === "pending"
            ? "Predicting…"
            : p.kind === "error"
              ? `The planner could not predict this job: ${p.message}`
              : `Predicted prefill ${ms(p.plan.summary.prefillMs)}, first token ${ms(p.plan.summary.ttftMs)}; slowest host ${p.plan.summary.slowestHost}; planned blocks of ${p.plan.blockTokens}, anchor ${p.plan.anchorTokens}, passing ${p.plan.passingTokens}.`,
      ),
    ),
  );

  const table = el("table", { className: "apb-live-progress" });
  table.append(el("caption", { text: "Prefill per host" }));
  const head = el("tr");
  for (const name of ["Rank", "Layers done", "Predicted prefill", "Measured prefill"]) {
    const th = el("th", { text: name });
    th.scope = "col";
    head.append(th);
  }
  table.append(el("thead", {}, head));
  const body = el("tbody");
  for (let rank = 0; rank < job.summary.hosts; rank++) {
    const fraction = prefillFraction(job, rank);
    const progress = job.progress.get(rank);
    const bar = el("progress");
    bar.max = 1;
    if (fraction !== null) bar.value = fraction;
    const layers =
      o.kind === "done" ? "all layers" : !progress ? "waiting" : progress.phase === "prefill" ? `${progress.done} of ${progress.total} layers` : progress.phase;
    bar.setAttribute("aria-label", `host ${rank} prefill: ${layers}`);
    const hostPlan = predicted?.hostPlans[rank];
    const ran = o.kind === "done" ? o.hosts.find((h) => h.rank === rank) : undefined;
    const measured = ran?.timings.prefillMs;
    const row = el("tr");
    row.dataset.rank = String(rank);
    const progressCell = el("td", {}, bar, el("span", { className: "apb-live-layers", text: ` ${layers}` }));
    progressCell.dataset.field = "layers";
    const cells: [string, Node][] = [
      ["rank", document.createTextNode(String(rank))],
      ["predicted", document.createTextNode(hostPlan ? ms(hostPlan.timeMs.total) : "—")],
      ["measured", document.createTextNode(measured === undefined ? "—" : ms(measured))],
    ];
    const rankCell = el("td", {}, cells[0]![1]);
    rankCell.dataset.field = "rank";
    row.append(rankCell, progressCell);
    for (const [field, content] of cells.slice(1)) {
      const td = el("td", {}, content);
      td.dataset.field = field;
      row.append(td);
    }
    body.append(row);
  }
  table.append(body);
  node.append(table);
}
