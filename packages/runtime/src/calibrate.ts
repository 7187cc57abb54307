// This machine's rates as the planner's hardware profile counts them (the engine's calibrate:
// a model layer's GEMMs, causal attention, a device copy, free memory), for `apb calibrate`.
// Links between hosts are not measured here.
import { errorDataFromZod } from "@apb/errors";
import { calibrate as nativeCalibrate, type CalibrateResult } from "@apb/native";
import type { ModelShape } from "@apb/planner";
import { z } from "zod";
import { BACKENDS, type BackendName } from "./engine.js";
import { RuntimeError } from "./errors.js";
import { native } from "./native-errors.js";

/** The measurement starting: each GEMM by its name, then attention (and its blocks, on a GPU whose kernel the planner's block model describes) and the copy. */
export type CalibrationStep = "memory" | "q" | "kv" | "o" | "gate_up" | "down" | "attention" | "attention blocks" | "copy";
/** The step every finished measurement reports last. */
const LAST_STEP: CalibrationStep = "copy";

/** The sizes of a layer that set what is timed (a planner ModelShape has them all). */
export type CalibrationShape = Pick<ModelShape, "hidden" | "heads" | "kvHeads" | "headDim" | "intermediate">;

export interface CalibrateOptions {
  /** "cpu" (default) or "cuda". */
  backend?: BackendName;
  /** The GPU to measure (default 0). */
  gpu?: number;
  shape: CalibrationShape;
  /** Rows of each GEMM (default 8192 on a GPU, 64 on the CPU). */
  tokens?: number;
  /** Rows and keys of the causal attention (default 16384 on a GPU, 512 on the CPU). */
  attentionTokens?: number;
  /** Bytes of the copied buffer (default 1 GiB on a GPU, 64 MiB on the CPU). */
  copyBytes?: number;
  /** Untimed calls first, at least (default 2 on a GPU, 1 on the CPU). */
  warmup?: number;
  /** Untimed work first, at least, in ms (default 1000 on a GPU: its clock settles under load; 0 on the CPU). */
  warmupMs?: number;
  /** Timed samples; each rate is from their median (default 5 on a GPU, 3 on the CPU). */
  runs?: number;
  /** Work per sample, at least, in ms: the call is repeated (default 200 on a GPU, 0 on the CPU: one call). */
  sampleMs?: number;
  /** Called as each measurement starts. If it throws, calibrate rejects with what it threw once the run ends. */
  onStep?: (step: CalibrationStep) => void;
}

export interface GemmRate {
  name: string;
  tokens: number;
  /** Output and input widths. */
  n: number;
  k: number;
  flops: number;
  ms: number;
  tflops: number;
}

export interface Calibration {
  backend: BackendName;
  tokens: number;
  attentionTokens: number;
  warmup: number;
  warmupMs: number;
  runs: number;
  sampleMs: number;
  gemms: GemmRate[];
  /** The layer's GEMM FLOPs over their summed median times: the planner's matmulTflops. */
  matmulTflops: number;
  /** Causal attention counted as the planner counts it (the square as half): attentionTflops. */
  attention: { flops: number; ms: number; tflops: number };
  /**
   * How the attention kernel's blocks fill the device: its multiprocessors, a short causal
   * call's time, and the fixed cost per block with which the planner's model gives that call
   * that time (the planner's multiprocessors and attentionBlockUs). Null where the kernel is
   * not the one that model describes (the CPU).
   */
  attentionBlocks: { multiprocessors: number; shortTokens: number; shortMs: number; blockUs: number } | null;
  /** A device copy; bytes read and written together: the planner's hbmGBs. */
  copy: { bytes: number; ms: number; gbs: number };
  /** Free device memory before anything was allocated; null on the CPU. */
  freeMemoryBytes: number | null;
}

const MAX_VALUE = 2 ** 32 - 1;
const whole = (min: number) => z.number().int().min(min).max(MAX_VALUE);
const optionsSchema = z.strictObject({
  backend: z.enum(BACKENDS, { error: `must be one of ${BACKENDS.join(", ")}` }).optional(),
  gpu: whole(0).optional(),
  shape: z.object({ hidden: whole(1), heads: whole(1), kvHeads: whole(1), headDim: whole(1), intermediate: whole(1) }),
  tokens: whole(1).optional(),
  attentionTokens: whole(1).optional(),
  copyBytes: z.number().int().min(1).optional(),
  warmup: whole(0).optional(),
  warmupMs: z.number().min(0).max(60_000).optional(),
  runs: whole(1).optional(),
  sampleMs: z.number().min(0).max(60_000).optional(),
  onStep: z.function().optional(),
});

/** Times the engine's work on a backend; rejects with a RuntimeError (CUDA_UNAVAILABLE where there is no GPU). */
export async function calibrate(options: CalibrateOptions): Promise<Calibration> {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) throw new RuntimeError(errorDataFromZod(parsed.error, options));
  const { shape, onStep, ...sizes } = options;
  let thrown: { error: unknown } | undefined;
  // The addon queues each step to this thread without waiting, so the promise can settle
  // before the last steps are heard; a finished measurement has queued all of them, so wait
  // for the last one before settling (then an onStep that throws is always seen).
  let lastHeard!: () => void;
  const allHeard = new Promise<void>((resolve) => (lastHeard = resolve));
  const report = (step: string) => {
    if (step === LAST_STEP) lastHeard();
    if (thrown || !onStep) return;
    try {
      onStep(step as CalibrationStep);
    } catch (error) {
      thrown = { error };
    }
  };
  const spec = { ...sizes, hidden: shape.hidden, heads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.headDim, intermediate: shape.intermediate };
  const result = await native(() => nativeCalibrate(spec, report));
  // Never wait forever on a step the addon could not queue (it only fails to while closing).
  await Promise.race([allHeard, new Promise<void>((resolve) => setTimeout(resolve, 2000).unref())]);
  if (thrown) throw thrown.error;
  return calibrationOf(result);
}

function calibrationOf(r: CalibrateResult): Calibration {
  return {
    backend: r.backend === "cuda" ? "cuda" : "cpu",
    tokens: r.tokens,
    attentionTokens: r.attentionTokens,
    warmup: r.warmup,
    warmupMs: r.warmupMs,
    runs: r.runs,
    sampleMs: r.sampleMs,
    gemms: r.gemms.map((g) => ({ name: g.name, tokens: g.tokens, n: g.n, k: g.k, flops: g.flops, ms: g.ms, tflops: g.tflops })),
    matmulTflops: r.matmulTflops,
    attention: { flops: r.attentionFlops, ms: r.attentionMs, tflops: r.attentionTflops },
    attentionBlocks: r.attentionBlocks ? { multiprocessors: r.attentionBlocks.multiprocessors, shortTokens: r.attentionBlocks.shortTokens, shortMs: r.attentionBlocks.shortMs, blockUs: r.attentionBlocks.blockUs } : null,
    copy: { bytes: r.copyBytes, ms: r.copyMs, gbs: r.copyGbs },
    freeMemoryBytes: r.freeMemoryBytes ?? null,
  };
}
