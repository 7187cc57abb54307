// Llama 3.1's RoPE scaling from a GGUF file. llama.cpp's converter does not write the
// rope_scaling block; it stores the result as one frequency divisor per rotary pair (tensor
// rope_freqs.weight): 1 for short wavelengths, `factor` for long ones, and 1/((1-s)/factor + s)
// in the band between, where s = (original/wavelength - low)/(high - low) is linear in the
// pair's base frequency. So the factor is the largest divisor and a line through the band
// gives the rest; the engine runs the same llama3 formula, and the fit is checked by
// recomputing every divisor from it.
import type { RopeScalingLlama3 } from "./config.js";
import { RuntimeError } from "./errors.js";
import { openModelFile } from "./files.js";
import type { GgufFile } from "./gguf.js";

/** Llama 3.1's own original context, used when the file does not say (only A and B below matter). */
const DEFAULT_ORIGINAL_CONTEXT = 8192;
/** How close recomputed divisors must be (they are float32 in the file). */
const TOLERANCE = 1e-4;

export function llama3Divisors(s: RopeScalingLlama3, ropeTheta: number, headDim: number): number[] {
  const low = s.originalMaxPositions / s.lowFreqFactor;
  const high = s.originalMaxPositions / s.highFreqFactor;
  return Array.from({ length: headDim / 2 }, (_, i) => {
    const wavelength = (2 * Math.PI) / ropeTheta ** (-(2 * i) / headDim);
    if (wavelength < high) return 1;
    if (wavelength > low) return s.factor;
    const smooth = (s.originalMaxPositions / wavelength - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return 1 / ((1 - smooth) / s.factor + smooth);
  });
}

function refuse(path: string, message: string): RuntimeError {
  return new RuntimeError({ code: "UNSUPPORTED_ARCHITECTURE", path, message: `rope_freqs.weight in ${path} ${message}` });
}

/** The llama3 scaling whose divisors are `divisors` (one per rotary pair), or an error if none is. */
export function llama3ScalingFromDivisors(divisors: readonly number[], ropeTheta: number, headDim: number, file: string, originalContext = DEFAULT_ORIGINAL_CONTEXT): RopeScalingLlama3 | null {
  if (divisors.length !== headDim / 2) throw refuse(file, `has ${divisors.length} values; a head of ${headDim} has ${headDim / 2} rotary pairs`);
  if (!divisors.every((d) => Number.isFinite(d) && d > 0)) throw refuse(file, "holds a value that is not a positive number");
  const factor = Math.max(...divisors);
  if (Math.abs(factor - 1) < TOLERANCE) return null; // no scaling at all
  const base = divisors.map((_, i) => ropeTheta ** (-(2 * i) / headDim));
  const band = divisors.map((d, i) => ({ d, f: base[i]!, i })).filter(({ d }) => d > 1 + TOLERANCE && d < factor * (1 - TOLERANCE));
  // s = A f - B on the band; outside it, thresholds anywhere between neighbouring pairs do.
  let A: number;
  let B: number;
  const firstScaled = divisors.findIndex((d) => d > 1 + TOLERANCE);
  const points = band.map(({ d, f }) => ({ f, s: (1 / d - 1 / factor) / (1 - 1 / factor) }));
  if (points.length === 1) {
    // One pair in the band fixes one point of the line but not its slope. Any slope steep enough
    // to put the unscaled pair before it at s >= 1 and the fully scaled pair after it at s <= 0
    // reproduces every divisor; take twice the least such slope so neither neighbour sits on an edge.
    const { f, s } = points[0]!;
    const i = band[0]!.i;
    const least = Math.max(i >= 1 ? (1 - s) / (base[i - 1]! - f) : 0, i + 1 < base.length ? s / (f - base[i + 1]!) : 0);
    A = least > 0 ? 2 * least : 1 / f;
    B = A * f - s;
  } else if (points.length >= 2) {
    const n = points.length;
    const mf = points.reduce((a, p) => a + p.f, 0) / n;
    const ms = points.reduce((a, p) => a + p.s, 0) / n;
    const cov = points.reduce((a, p) => a + (p.f - mf) * (p.s - ms), 0);
    const varf = points.reduce((a, p) => a + (p.f - mf) ** 2, 0);
    A = cov / varf;
    B = A * mf - ms;
  } else {
    // The whole band falls between two pairs: s = 1 at the first scaled pair's neighbour, s = 0 at the first fully scaled one.
    const firstFull = divisors.findIndex((d) => d >= factor * (1 - TOLERANCE));
    if (firstScaled < 1 || firstFull < firstScaled) throw refuse(file, "does not rise from 1 to its largest value as wavelengths grow, as Llama 3.1's scaling does");
    const fHigh = Math.sqrt(base[firstScaled - 1]! * base[firstScaled]!);
    const fLow = firstFull === firstScaled ? fHigh * (1 - 1e-9) : Math.sqrt(base[firstFull - 1]! * base[firstFull]!);
    A = 1 / (fHigh - fLow);
    B = A * fLow;
  }
  if (!(A > 0) || !Number.isFinite(B)) throw refuse(file, "does not follow Llama 3.1's rope scaling (llama3); the engine runs that one only");
  const width = originalContext / (2 * Math.PI * A); // high - low
  const lowFreqFactor = B * width;
  const scaling: RopeScalingLlama3 = { type: "llama3", factor, lowFreqFactor, highFreqFactor: lowFreqFactor + width, originalMaxPositions: originalContext };
  const again = llama3Divisors(scaling, ropeTheta, headDim);
  const worst = Math.max(...again.map((d, i) => Math.abs(d - divisors[i]!) / divisors[i]!));
  if (!(worst <= TOLERANCE)) throw refuse(file, `does not follow Llama 3.1's rope scaling (llama3): the closest llama3 parameters miss a divisor by ${worst.toExponential(1)}; the engine runs that one only`);
  return scaling;
}

/** rope_freqs.weight's values (F32, one per rotary pair), or null when the file has none. */
export async function readRopeDivisors(gguf: GgufFile): Promise<number[] | null> {
  const t = gguf.tensors.find((x) => x.name === "rope_freqs.weight");
  if (!t) return null;
  if (t.typeName !== "F32" || t.dims.length !== 1) throw refuse(gguf.file, `is ${t.typeName} with dims [${t.dims.join(", ")}]; llama.cpp writes it as one F32 row`);
  const handle = await openModelFile(gguf.file);
  try {
    const bytes = Buffer.alloc(t.byteLength);
    const { bytesRead } = await handle.read(bytes, 0, t.byteLength, t.offset);
    if (bytesRead !== t.byteLength) throw new RuntimeError({ code: "MODEL_FILE", path: gguf.file, message: `${gguf.file} ends inside rope_freqs.weight: the file is truncated` });
    return Array.from({ length: t.byteLength / 4 }, (_, i) => bytes.readFloatLE(i * 4));
  } finally {
    await handle.close();
  }
}
