// `apb calibrate`: times this machine's GEMMs, attention and memory on a backend and writes a
// hardware profile (`apb plan --hardware-file`) whose predictions match what it measured.
import { writeFileSync } from "node:fs";
import { availableParallelism, cpus, totalmem } from "node:os";
import type { Command } from "commander";
import { HARDWARE_PRESETS, LIMITS, MODEL_PRESETS, resolveModel, type HardwarePresetName } from "@apb/planner";
import { BACKENDS, calibrate, doctor, type BackendName, type CalibrationStep } from "@apb/runtime";
import { profileFile } from "../calibration/profile.js";
import { UsageError } from "../errors.js";
import { flagError, parseChoice, parseModel, parseNumber, parseTokens, parseWhole } from "../parse.js";
import { renderCalibration } from "../render/calibration.js";
import { withWords, type Words } from "../words.js";

interface CalibrateFlags {
  backend: string;
  gpu: string;
  modelShape: string;
  tokens?: string;
  attentionTokens?: string;
  runs?: string;
  warmupMs?: string;
  sampleMs?: string;
  linkFrom?: string;
  memoryGib?: string;
  out?: string;
  json?: boolean;
}

/** The largest prefill chunk a calibration times (a GEMM's rows, attention's rows and keys). */
const MAX_CALIBRATION_TOKENS = 1 << 20;

export function registerCalibrate(program: Command): void {
  program
    .command("calibrate")
    .description("Measure this machine's GEMM, attention and memory rates and write a hardware profile for apb plan --hardware-file")
    .option("--backend <name>", BACKENDS.join("|"), "cpu")
    .option("--gpu <n>", "the GPU to measure with --backend cuda", "0")
    .option("--model-shape <name|config.json>", `whose layer shapes to time: a preset (${Object.keys(MODEL_PRESETS).join(", ")}) or a HF config.json`, "llama-3.1-8b")
    .option("--tokens <n>", "rows of each GEMM (default 8192 on a GPU, 64 on the CPU)")
    .option("--attention-tokens <n>", "rows and keys of the causal attention (default 16384 on a GPU, 512 on the CPU)")
    .option("--runs <n>", "timed samples per measurement; each rate is their median (default 5 on a GPU, 3 on the CPU)")
    .option("--warmup-ms <ms>", "untimed work first, so a GPU's clock settles as under a prefill's load (default 1000 on a GPU, 0 on the CPU)")
    .option("--sample-ms <ms>", "work per timed sample, the call repeated (default 200 on a GPU; 0 on the CPU: one call)")
    .option("--link-from <preset>", `the preset the link rates come from, since links are not measured (${Object.keys(HARDWARE_PRESETS).join("|")}; default: the closest to the measured rates)`)
    .option("--memory-gib <n>", "memory per host in GiB, replacing the free GPU memory (or on the CPU, this machine's total memory)")
    .option("--out <file>", "write the profile there")
    .option("--json", "print the profile's JSON only (what --out writes), errors too, on stderr")
    .action((flags: CalibrateFlags) => withWords(CALIBRATE_WORDS, () => run(flags)));
}

/** The runtime's and planner's fields as `calibrate` names them. */
const CALIBRATE_WORDS: Words = {
  model: "--model-shape",
  backend: "--backend",
  gpu: "--gpu",
  tokens: "--tokens",
  attentionTokens: "--attention-tokens",
  runs: "--runs",
  warmupMs: "--warmup-ms",
  sampleMs: "--sample-ms",
  hidden: "--model-shape's hidden size",
  heads: "--model-shape's heads",
  kvHeads: "--model-shape's KV heads",
  headDim: "--model-shape's head size",
  intermediate: "--model-shape's intermediate size",
};

const STEP_WORDS: Record<CalibrationStep, string> = {
  memory: "free memory",
  q: "GEMM q",
  kv: "GEMM kv",
  o: "GEMM o",
  gate_up: "GEMM gate_up",
  down: "GEMM down",
  attention: "causal attention",
  "attention blocks": "attention blocks (a short causal call)",
  copy: "device copy",
};

function parseFlags(f: CalibrateFlags) {
  const backend: BackendName = parseChoice("--backend", f.backend, BACKENDS);
  const tokens = (flag: string, text: string) => parseTokens(flag, text, { min: 1, max: MAX_CALIBRATION_TOKENS });
  if (f.linkFrom !== undefined && !Object.hasOwn(HARDWARE_PRESETS, f.linkFrom)) {
    throw flagError("OUT_OF_RANGE", "--link-from", `"${f.linkFrom}" is not a preset; presets: ${Object.keys(HARDWARE_PRESETS).join(", ")}`);
  }
  return {
    backend,
    gpu: parseWhole("--gpu", f.gpu, { min: 0, max: 1023 }),
    sizes: {
      ...(f.tokens === undefined ? {} : { tokens: tokens("--tokens", f.tokens) }),
      ...(f.attentionTokens === undefined ? {} : { attentionTokens: tokens("--attention-tokens", f.attentionTokens) }),
      ...(f.runs === undefined ? {} : { runs: parseWhole("--runs", f.runs, { min: 1, max: 1000 }) }),
      ...(f.warmupMs === undefined ? {} : { warmupMs: parseNumber("--warmup-ms", f.warmupMs, { min: 0, max: 60_000 }) }),
      ...(f.sampleMs === undefined ? {} : { sampleMs: parseNumber("--sample-ms", f.sampleMs, { min: 0, max: 60_000 }) }),
    },
    linkFrom: (f.linkFrom ?? null) as HardwarePresetName | null,
    memoryGiB: f.memoryGib === undefined ? null : parseNumber("--memory-gib", f.memoryGib, { min: 0, max: LIMITS.memoryGiB, above: true }),
  };
}

function deviceName(backend: BackendName, gpu: number): string {
  if (backend === "cpu") return `${cpus()[0]?.model.trim() ?? "CPU"} (${availableParallelism()} threads)`;
  try {
    return doctor().gpus.find((g) => g.index === gpu)?.name ?? `GPU ${gpu}`;
  } catch {
    return `GPU ${gpu}`;
  }
}

async function run(f: CalibrateFlags): Promise<void> {
  // Every flag is checked before --model-shape's file is read or anything is timed.
  const o = parseFlags(f);
  const choice = parseModel(f.modelShape, "--model-shape");
  const shape = resolveModel(choice.model);
  const say = (line: string) => {
    if (!f.json) process.stderr.write(`apb: ${line}\n`);
  };
  say(`calibrating ${o.backend === "cuda" ? `GPU ${o.gpu}` : "the CPU"} with ${choice.label} layer shapes`);
  // The CPU's attention is not cut into blocks, so it has no blocks to time.
  const steps = Object.keys(STEP_WORDS).filter((s) => o.backend !== "cpu" || s !== "attention blocks");
  const calibration = await calibrate({
    backend: o.backend,
    gpu: o.gpu,
    shape,
    ...o.sizes,
    onStep: (step) => say(`[${steps.indexOf(step) + 1}/${steps.length}] ${STEP_WORDS[step]}`),
  });
  const { file, linkPreset } = profileFile({
    calibration,
    device: deviceName(o.backend, o.gpu),
    modelShape: choice.label,
    linkFrom: o.linkFrom,
    memoryGiB: o.memoryGiB,
    totalMemoryBytes: totalmem(),
    measuredAt: new Date(),
  });
  const json = `${JSON.stringify(file, null, 2)}\n`;
  if (f.out !== undefined) {
    try {
      writeFileSync(f.out, json);
    } catch (e) {
      throw new UsageError(`--out: cannot write ${f.out}: ${(e as Error).message}`);
    }
  }
  say(`linkGBs and linkLatencyUs are not measured: they are preset ${linkPreset}'s${o.linkFrom ? "" : " (the closest to the measured rates; choose with --link-from)"}`);
  process.stdout.write(f.json ? json : `${renderCalibration(calibration, file, f.out ?? null)}\n`);
}
