// `apb plan`: the planner's layout and predicted costs, per host, or all strategies side by side.
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { type Comparison, DEFAULT_HARDWARE, defaultPlanner, HARDWARE_PRESETS, MODEL_PRESETS, type Plan, type PlanRequest, readHardwareProfileFile, STRATEGIES } from "@apb/planner";
import { DEFAULT_HOSTS, REQUEST_LIMITS } from "@apb/runtime";
import { UsageError } from "../errors.js";
import { flagError, parseChoice, parseModel, parseTokens, parseWhole } from "../parse.js";
import { gib, ms, tflop, tokens } from "../render/format.js";
import { LEGEND, layoutPicture } from "../render/picture.js";
import { formatTable } from "../render/table.js";
import { withWords, type Words } from "../words.js";

interface PlanOptions {
  model: string;
  length: string;
  hosts: string;
  queryLength?: string;
  prefixLength?: string;
  strategy: string;
  anchor?: string;
  passing?: string;
  balanced?: boolean;
  hardware?: string;
  hardwareFile?: string;
  json?: boolean;
}

export function registerPlan(program: Command): void {
  program
    .command("plan")
    .description("Lay out a prompt across hosts and predict its prefill time, memory and traffic")
    .requiredOption("--model <name|config.json|dir>", `a preset (${Object.keys(MODEL_PRESETS).join(", ")}) or a HF config.json`)
    .requiredOption("--length <tokens>", "context length in tokens (131072 or 128K)")
    .option("--hosts <n>", "hosts (one GPU each)", String(DEFAULT_HOSTS))
    .option("--query-length <tokens>", "query tokens embedded in the anchor (default 128)")
    .option("--prefix-length <tokens>", "BOS/system tokens kept ahead of the query (default 1)")
    .option("--strategy <name>", `${STRATEGIES.join("|")}|all`, "apb")
    .option("--anchor <tokens>", "anchor length l_a (default l_b/4, multiple of 128)")
    .option("--passing <tokens>", "passing length l_p per host (default l_b/8, multiple of 128)")
    .option("--balanced", "balanced block sizes, so all hosts finish together (the default for apb; star only when given)")
    .option("--no-balanced", "the paper's even split for apb (star and the others always split evenly unless --balanced)")
    // No commander default: a default would hide whether --hardware was given with --hardware-file.
    .option("--hardware <preset>", `${Object.keys(HARDWARE_PRESETS).join("|")} (default ${DEFAULT_HARDWARE})`)
    .option("--hardware-file <profile.json>", "a hardware profile written by apb calibrate, instead of --hardware")
    .option("--json", "print JSON only (errors too, on stderr)")
    .action((options: PlanOptions) => withWords(PLAN_WORDS, async () => {
      // Every flag is checked before --model's file is read.
      const fields = requestFields(options);
      const { model, label, contextLimitTokens } = parseModel(options.model);
      const hardware = hardwareOf(options);
      fields.hardware = hardware.request;
      const request: PlanRequest = { model, ...fields };
      const planner = await defaultPlanner();
      let text: string;
      if (options.strategy === "all") {
        const comparison = planner.compare(request);
        text = options.json ? JSON.stringify(comparison, null, 2) : renderComparison(comparison, label, hardware.label);
      } else {
        const plan = planner.plan(request);
        text = options.json ? JSON.stringify(plan, null, 2) : renderPlan(plan, label, hardware.label);
      }
      if (contextLimitTokens !== null && request.contextTokens + (request.queryTokens ?? 0) > contextLimitTokens) {
        process.stderr.write(`apb: warning: ${label} is made for up to ${contextLimitTokens} tokens; this prompt is longer\n`);
      }
      print(text);
    }));
}

/** The planner's request fields as `plan` names them. */
const PLAN_WORDS: Words = {
  contextTokens: "--length",
  hosts: "--hosts",
  queryTokens: "--query-length",
  prefixTokens: "--prefix-length",
  strategy: "--strategy",
  anchorTokens: "--anchor",
  passingTokens: "--passing",
  balanced: "--balanced",
  model: "--model",
  hardware: "--hardware",
};

function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** The planner's limit on a context (its MAX_TOKENS). */
const MAX_CONTEXT_TOKENS = 2_147_483_647;

/** The hardware as the request gives it and as the heading names it: a preset, or a profile file's. */
function hardwareOf(o: PlanOptions): { request: NonNullable<PlanRequest["hardware"]>; label: string } {
  if (o.hardwareFile === undefined) return { request: o.hardware ?? DEFAULT_HARDWARE, label: o.hardware ?? DEFAULT_HARDWARE };
  let text: string;
  try {
    text = readFileSync(o.hardwareFile, "utf8");
  } catch (e) {
    throw new UsageError(`--hardware-file: cannot read ${o.hardwareFile}: ${(e as Error).message}`);
  }
  const file = readHardwareProfileFile(text, o.hardwareFile);
  return { request: file.profile, label: `${o.hardwareFile} (${file.device}; measured ${file.measured.join(", ") || "nothing"})` };
}

function requestFields(o: PlanOptions): Omit<PlanRequest, "model"> {
  const strategy = parseChoice("--strategy", o.strategy, [...STRATEGIES, "all"]);
  if (o.hardware !== undefined && o.hardwareFile !== undefined) {
    throw new UsageError("--hardware and --hardware-file exclude each other: give a preset or a calibrated profile, not both");
  }
  if (o.hardware !== undefined && !Object.hasOwn(HARDWARE_PRESETS, o.hardware)) {
    throw flagError("OUT_OF_RANGE", "--hardware", `"${o.hardware}" is not a preset; presets: ${Object.keys(HARDWARE_PRESETS).join(", ")}`);
  }
  const request: Omit<PlanRequest, "model"> = {
    contextTokens: parseTokens("--length", o.length, { min: 1, max: MAX_CONTEXT_TOKENS }),
    hosts: parseWhole("--hosts", o.hosts, { min: 1, max: REQUEST_LIMITS.maxHosts }),
  };
  if (strategy !== "all") request.strategy = strategy;
  if (o.queryLength !== undefined) request.queryTokens = parseTokens("--query-length", o.queryLength);
  if (o.prefixLength !== undefined) request.prefixTokens = parseTokens("--prefix-length", o.prefixLength);
  if (o.anchor !== undefined) request.anchorTokens = parseTokens("--anchor", o.anchor);
  if (o.passing !== undefined) request.passingTokens = parseTokens("--passing", o.passing);
  if (o.balanced !== undefined) request.balanced = o.balanced;
  return request;
}

function heading(p: Plan, label: string, hardware: string): string {
  return [
    `${p.strategy} · ${label} · ${p.contextTokens} tokens (+${p.queryTokens} query) on ${p.hosts} host${p.hosts > 1 ? "s" : ""} · ${hardware}`,
    `block l_b ${p.blockTokens} · anchor l_a ${p.anchorTokens} · passing l_p ${p.passingTokens} · padding ${p.paddingTokens}`,
  ].join("\n");
}

export function renderPlan(p: Plan, label: string, hardware: string): string {
  const rows = p.hostPlans.map((h) => [
    h.host,
    h.localRanges.map(([s, e]) => `${s}-${e}`).join(","),
    h.localTokens,
    h.anchor.kind === "none" ? "-" : `${h.anchor.kind} ${h.anchor.tokens}`,
    h.passing.receives,
    h.passing.sends,
    tflop(h.flops.total),
    gib(h.memory.total),
    ms(h.timeMs.attention),
    ms(h.timeMs.communication),
    ms(h.timeMs.total),
  ]);
  const table = formatTable(
    ["host", "local range", "tokens", "anchor", "pass in", "pass out", "TFLOP", "mem GiB", "attn ms", "comm ms", "prefill ms"],
    rows,
  );
  const s = p.summary;
  const lines = [
    heading(p, label, hardware),
    "",
    table,
    "",
    `predicted: prefill ${ms(s.prefillMs)} ms · query ${ms(s.queryMs)} ms · time to first token ${ms(s.ttftMs)} ms · slowest host ${s.slowestHost}`,
    `memory: peak ${gib(s.memoryPeakBytes)} of ${gib(s.memoryLimitBytes)} GiB per host${s.fits ? "" : "  ** DOES NOT FIT **"}`,
  ];
  if (p.balance) {
    lines.push(`balanced: ${ms(p.balance.evenPrefillMs)} ms even -> ${ms(p.balance.balancedPrefillMs)} ms balanced (gain ${p.balance.gain.toFixed(2)}x)`);
  }
  for (const w of p.warnings) lines.push(`warning: ${w}`);
  lines.push("", `layout (${LEGEND}):`, layoutPicture(p));
  return lines.join("\n");
}

export function renderComparison(c: Comparison, label: string, hardware: string): string {
  const rows = [];
  const failures = [];
  for (const r of c.strategies) {
    if ("error" in r) {
      failures.push(`${r.strategy}: ${r.error.message}`);
      continue;
    }
    const s = r.summary;
    rows.push([
      r.strategy,
      r.hosts,
      r.anchorTokens,
      r.passingTokens,
      ms(s.prefillMs),
      ms(s.queryMs),
      ms(s.ttftMs),
      r.speedupVsFull === null ? "-" : `${r.speedupVsFull.toFixed(2)}x`,
      gib(s.memoryPeakBytes),
      s.fits ? "yes" : "NO",
    ]);
  }
  const lines = [
    `${tokens(c.contextTokens)} tokens (+${c.queryTokens} query) · ${label} · ${c.hosts} hosts · ${hardware}`,
    "",
    formatTable(["strategy", "hosts", "l_a", "l_p", "prefill ms", "query ms", "TTFT ms", "vs full", "peak GiB", "fits"], rows),
  ];
  for (const f of failures) lines.push(`not possible: ${f}`);
  lines.push("", "Predicted by the planner's cost model (docs/PLANNER.md); measured numbers come from npm run bench.");
  return lines.join("\n");
}
