// A hardware profile file from a calibration: the rates this machine measured, the link from a
// preset (apb calibrate does not measure links between hosts), the memory the backend reported
// or the user gave. `measured` names only what was measured here; `sources` says where every
// other value came from, so nobody mistakes a borrowed number for a measurement.
import { checkHardwareProfileFile, closestHardwarePreset, HARDWARE_PRESETS, type HardwareField, type HardwarePresetName, type HardwareProfile, type HardwareProfileFile } from "@apb/planner";
import type { Calibration } from "@apb/runtime";
import { flagError } from "../parse.js";
import { GiB } from "../render/format.js";

export interface ProfileInputs {
  calibration: Calibration;
  device: string;
  /** The model preset or config whose layer shapes were timed. */
  modelShape: string;
  /** The preset the link comes from; null: the preset closest to the measured rates. */
  linkFrom: HardwarePresetName | null;
  /** The user's --memory-gib, which replaces the backend's figure. */
  memoryGiB: number | null;
  /** This machine's total memory in bytes (the CPU backend's memory). */
  totalMemoryBytes: number;
  measuredAt: Date;
}

/** Four significant figures: more than the measurement's noise, fewer than float noise. */
function rounded(x: number): number {
  return Number(x.toPrecision(4));
}

function measuredRate(value: number, what: string): number {
  if (!(Number.isFinite(value) && value > 0)) {
    throw flagError("OUT_OF_RANGE", "--tokens", `is too small for this machine's clock: the ${what} took no measurable time; use more tokens`);
  }
  return rounded(value);
}

export function profileFile(i: ProfileInputs): { file: HardwareProfileFile; linkPreset: HardwarePresetName } {
  const c = i.calibration;
  const sustained = c.sampleMs > 0 ? ` of ${c.sampleMs} ms each` : "";
  const warmup = c.warmupMs > 0 ? `${c.warmupMs} ms of warm-up` : `${c.warmup} warm-up calls`;
  const sizes = `median of ${c.runs} samples${sustained} after ${warmup}`;
  const rates = {
    matmulTflops: measuredRate(c.matmulTflops, "GEMMs"),
    attentionTflops: measuredRate(c.attention.tflops, "attention"),
    hbmGBs: measuredRate(c.copy.gbs, "copy"),
  };
  const linkPreset = i.linkFrom ?? closestHardwarePreset(rates);
  const preset: HardwareProfile = HARDWARE_PRESETS[linkPreset].profile;
  const borrowed = `from preset ${linkPreset} (not measured: apb calibrate times one device, not the link between hosts)`;
  const measured: HardwareField[] = ["matmulTflops", "attentionTflops", "hbmGBs"];
  let memoryGiB: number;
  let memorySource: string;
  if (i.memoryGiB !== null) {
    memoryGiB = i.memoryGiB;
    memorySource = "given with --memory-gib";
  } else if (c.freeMemoryBytes !== null) {
    memoryGiB = rounded(c.freeMemoryBytes / GiB);
    memorySource = `measured: the device's free memory before calibrating`;
    measured.push("memoryGiB");
  } else {
    memoryGiB = rounded(i.totalMemoryBytes / GiB);
    memorySource = `this machine's total memory (the ${c.backend} backend reports no free memory; set --memory-gib to choose)`;
  }
  // How attention blocks fill the device: measured where the backend's kernel is the one the
  // planner's block model describes; elsewhere (the CPU) the profile goes without.
  const b = c.attentionBlocks;
  const blocks = b ? { multiprocessors: b.multiprocessors, attentionBlockUs: Number(b.blockUs.toFixed(2)) } : null;
  if (b) measured.push("multiprocessors", "attentionBlockUs");
  const file: HardwareProfileFile = {
    description: `apb calibrate on ${i.device} (${c.backend}), ${i.modelShape} layer shapes; link from preset ${linkPreset}`,
    measuredAt: i.measuredAt.toISOString(),
    device: i.device,
    profile: { ...rates, linkGBs: preset.linkGBs, linkLatencyUs: preset.linkLatencyUs, memoryGiB, ...blocks },
    measured,
    sources: {
      matmulTflops: `measured: ${i.modelShape} layer GEMMs (q, kv, o, gate_up, down) at ${c.tokens} tokens, ${sizes}`,
      attentionTflops: `measured: causal attention over ${c.attentionTokens} tokens (the square counted as half), ${sizes}`,
      hbmGBs: `measured: a ${(c.copy.bytes / 2 / 2 ** 20).toFixed(0)} MiB device copy, bytes read and written, ${sizes}`,
      linkGBs: borrowed,
      linkLatencyUs: borrowed,
      memoryGiB: memorySource,
      ...(b && {
        multiprocessors: "measured: the device's multiprocessor count",
        attentionBlockUs: `measured: the fixed cost per block of query rows with which the planner's model gives causal attention over ${b.shortTokens} tokens the ${b.shortMs.toPrecision(3)} ms it took here (its tiles' time set by the ${c.attentionTokens}-token call), ${sizes}`,
      }),
    },
    conditions: { backend: c.backend, modelShape: i.modelShape, tokens: c.tokens, attentionTokens: c.attentionTokens, warmup: c.warmup, warmupMs: c.warmupMs, runs: c.runs, sampleMs: c.sampleMs },
  };
  // What is written must read back: the one reader checks it before it reaches the disk.
  return { file: checkHardwareProfileFile(file, "the calibrated profile"), linkPreset };
}
