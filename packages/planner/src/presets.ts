import type { HardwareProfile, ModelShape } from "./schema.js";

export interface ModelPreset {
  shape: ModelShape;
  /** The longest context the model was trained or extended for, in tokens. */
  contextLimitTokens: number;
  source: string;
}

/** Published shapes of the models APB users run (from each model's config.json). */
export const MODEL_PRESETS = {
  "llama-3.1-8b": {
    shape: { layers: 32, hidden: 4096, heads: 32, kvHeads: 8, headDim: 128, intermediate: 14336, vocab: 128256, bytesPerWeight: 2 },
    contextLimitTokens: 131_072,
    source: "meta-llama/Llama-3.1-8B",
  },
  "qwen-2.5-14b": {
    shape: { layers: 48, hidden: 5120, heads: 40, kvHeads: 8, headDim: 128, intermediate: 13824, vocab: 152064, bytesPerWeight: 2 },
    contextLimitTokens: 131_072,
    source: "Qwen/Qwen2.5-14B (128K with YaRN)",
  },
  "yi-34b-200k": {
    shape: { layers: 60, hidden: 7168, heads: 56, kvHeads: 8, headDim: 128, intermediate: 20480, vocab: 64000, bytesPerWeight: 2 },
    contextLimitTokens: 200_000,
    source: "01-ai/Yi-34B-200K",
  },
  "llama-3-8b-1m": {
    shape: { layers: 32, hidden: 4096, heads: 32, kvHeads: 8, headDim: 128, intermediate: 14336, vocab: 128256, bytesPerWeight: 2 },
    contextLimitTokens: 1_048_576,
    source: "gradientai/Llama-3-8B-Instruct-Gradient-1048k",
  },
} as const satisfies Record<string, ModelPreset>;

export type ModelPresetName = keyof typeof MODEL_PRESETS;

/**
 * Hardware profiles. Attention and GEMM rates are what apb's own kernels reach on these GPUs
 * over whole prefills, not datasheet peaks (an 8192^3 bf16 GEMM reaches about 775-790 TFLOP/s
 * on an H100 or H200; model-shaped GEMMs run lower). Links are per GPU.
 */
export const HARDWARE_PRESETS = {
  // The H100 SXM has the H200's SMs and clocks (only memory differs), and apb's sm90 attention
  // kernel alone ran at 583-616 TFLOP/s on it (bench/results/attention-h100.md) against
  // 576-601 on the H200: so the H200's calibrated compute rates, with the H100's memory. (They
  // were FlashAttention-2's 330 and a square GEMM's 700 before apb had its own kernel.)
  "h100-ib": {
    description: "one H100 SXM 80GB per host, 400 Gb/s InfiniBand",
    profile: { matmulTflops: 650, attentionTflops: 560, hbmGBs: 3000, linkGBs: 45, linkLatencyUs: 10, memoryGiB: 79, multiprocessors: 132, attentionBlockUs: 7 },
  },
  "h100-nvlink": {
    description: "H100 SXM 80GB GPUs in one NVLink node",
    profile: { matmulTflops: 650, attentionTflops: 560, hbmGBs: 3000, linkGBs: 360, linkLatencyUs: 3, memoryGiB: 79, multiprocessors: 132, attentionBlockUs: 7 },
  },
  // Hopper's 132 SMs each run one block of apb's attention kernel at a time; a block costs
  // about 7 us beside its key tiles (the kernel alone on causal 2K, 4K and 16K calls,
  // bench/results/attention-short-h200.md), which is what makes 2K-4K-token calls slow.
  // Calibrated from apb itself on an H200 (2026-12-01, whole prefills of bench/results/
  // model-h200.md as first run): a Llama-3.1-8B layer's GEMM phases ran at about 650 TFLOP/s
  // and apb's sm90 attention kernel at about 560 (576-601 alone). calibration.test.ts holds
  // the predictions to that file's measurements, since refreshed.
  "h200-nvlink": {
    description: "H200 141GB GPUs in one NVLink node (rates measured from apb's kernels)",
    profile: { matmulTflops: 650, attentionTflops: 560, hbmGBs: 4300, linkGBs: 360, linkLatencyUs: 3, memoryGiB: 139, multiprocessors: 132, attentionBlockUs: 7 },
  },
  "a100-ib": {
    description: "one A100 SXM 80GB per host, 200 Gb/s InfiniBand",
    profile: { matmulTflops: 270, attentionTflops: 190, hbmGBs: 1800, linkGBs: 22, linkLatencyUs: 10, memoryGiB: 79 },
  },
} as const satisfies Record<string, { description: string; profile: HardwareProfile }>;

export type HardwarePresetName = keyof typeof HARDWARE_PRESETS;
export const DEFAULT_HARDWARE: HardwarePresetName = "h100-ib";
