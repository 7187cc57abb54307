// A small safetensors writer for test models: f32 values in, BF16/F16/F32 bytes out. The
// header is padded with spaces so the data section starts on an 8-byte boundary.
import { writeFile } from "node:fs/promises";
import { DTYPE_BYTES, type TensorDtype } from "./safetensors.js";

export interface TensorToWrite {
  name: string;
  dtype: TensorDtype;
  shape: number[];
  values: Float32Array;
}

const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

/** bf16 = the upper 16 bits of f32, rounded to nearest, ties to even; NaN stays a (quiet) NaN. */
export function f32ToBf16Bits(value: number): number {
  f32[0] = value;
  const bits = f32Bits[0]!;
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) return ((bits >>> 16) | 0x0040) & 0xffff;
  const lsb = (bits >>> 16) & 1;
  return ((bits + 0x7fff + lsb) >>> 16) & 0xffff;
}

/** IEEE half precision, rounded to nearest, ties to even, with subnormals and overflow to infinity. */
export function f32ToF16Bits(value: number): number {
  f32[0] = value;
  const bits = f32Bits[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x007fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x0200 : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    // Subnormal half (or zero): shift the full significand (with its implicit 1) into place.
    if (halfExponent < -10) return sign;
    const significand = mantissa | 0x00800000;
    const shift = 14 - halfExponent;
    const halfway = 1 << (shift - 1);
    const rest = significand & ((1 << shift) - 1);
    let half = significand >>> shift;
    if (rest > halfway || (rest === halfway && (half & 1) === 1)) half += 1;
    return sign | half;
  }
  let half = (halfExponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and may reach infinity).
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half += 1;
  return sign | half;
}

/** The little-endian bytes of `values` in `dtype`. */
export function encodeTensorData(values: Float32Array, dtype: TensorDtype): Uint8Array {
  const bytes = new Uint8Array(values.length * DTYPE_BYTES[dtype]);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (dtype === "F32") view.setFloat32(i * 4, v, true);
    else view.setUint16(i * 2, dtype === "BF16" ? f32ToBf16Bits(v) : f32ToF16Bits(v), true);
  }
  return bytes;
}

/** The bytes of a safetensors file holding `tensors` in the given order. */
export function encodeSafetensors(tensors: readonly TensorToWrite[], metadata: Record<string, string> = { format: "pt" }): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const chunks: Uint8Array[] = [];
  let dataByteLength = 0;
  for (const t of tensors) {
    const elements = t.shape.reduce((a, b) => a * b, 1);
    if (elements !== t.values.length) {
      throw new Error(`tensor ${t.name}: shape [${t.shape.join(", ")}] holds ${elements} values but ${t.values.length} were given`);
    }
    const data = encodeTensorData(t.values, t.dtype);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [dataByteLength, dataByteLength + data.byteLength] };
    chunks.push(data);
    dataByteLength += data.byteLength;
  }
  let json = JSON.stringify(header);
  // Spaces are one byte each; pad so 8 + N is a multiple of 8 and the data starts aligned.
  const jsonBytes = () => Buffer.byteLength(json, "utf8");
  json += " ".repeat((8 - (jsonBytes() % 8)) % 8);
  const headerByteLength = jsonBytes();
  const out = new Uint8Array(8 + headerByteLength + dataByteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerByteLength), true);
  out.set(Buffer.from(json, "utf8"), 8);
  let offset = 8 + headerByteLength;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

export async function writeSafetensors(file: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Promise<void> {
  await writeFile(file, encodeSafetensors(tensors, metadata));
}
