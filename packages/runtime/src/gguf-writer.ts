// A small GGUF writer for test models: typed metadata entries and f32 values in, a GGUF v3
// file out, with F32/F16/BF16 tensors and Q8_0/Q4_0 quantized as ggml defines them. Each
// tensor's data starts on `general.alignment` (32 unless the metadata sets it).
import { readFile, writeFile } from "node:fs/promises";
import { RuntimeError } from "./errors.js";
import { GGUF_DEFAULT_ALIGNMENT, GGUF_VALUE_TYPES, ggmlTypeByName, readGgufFile, type GgufValue, type GgufValueTypeName } from "./gguf.js";
import { f32ToBf16Bits, f32ToF16Bits } from "./safetensors-writer.js";

export type GgufScalarType = Exclude<GgufValueTypeName, "array">;
/** A metadata value's type: a scalar type, or an array of values of one type (arrays nest). */
export type GgufEntryType = GgufScalarType | { array: GgufEntryType };

export interface GgufMetadataEntry {
  key: string;
  type: GgufEntryType;
  value: GgufValue;
}

/** The tensor types this writer encodes from f32 values. */
export type GgufWriteType = "F32" | "F16" | "BF16" | "Q8_0" | "Q4_0";

/** A tensor given as f32 values, with `dims` (innermost first, as GGUF stores them) or `shape` (outermost first, as PyTorch). */
export interface GgufTensorValues {
  name: string;
  dims?: readonly number[];
  shape?: readonly number[];
  type: GgufWriteType;
  data: Float32Array;
}

/** A tensor given as its bytes, of any type id (for tests of types this writer cannot encode). */
export interface GgufTensorBytes {
  name: string;
  dims: readonly number[];
  typeId: number;
  bytes: Uint8Array;
}

export type GgufTensorToWrite = GgufTensorValues | GgufTensorBytes;

export interface GgufToWrite {
  /** 3 unless given (2 has the same layout). */
  version?: number;
  metadata: GgufMetadataEntry[];
  tensors: GgufTensorToWrite[];
}

function invalid(path: string, message: string): RuntimeError {
  return new RuntimeError({ code: "INVALID_INPUT", path, message });
}

/** Little-endian bytes, appended to one growing array. */
class ByteSink {
  private bytes = new Uint8Array(1 << 16);
  private view = new DataView(this.bytes.buffer);
  length = 0;

  private reserve(n: number): number {
    const at = this.length;
    if (at + n > this.bytes.length) {
      const grown = new Uint8Array(Math.max(this.bytes.length * 2, at + n));
      grown.set(this.bytes.subarray(0, at));
      this.bytes = grown;
      this.view = new DataView(grown.buffer);
    }
    this.length += n;
    return at;
  }
  // reserve() may replace bytes and view: call it before reading them.
  push(bytes: Uint8Array): void {
    const at = this.reserve(bytes.length);
    this.bytes.set(bytes, at);
  }
  fixed(size: number, write: (view: DataView, at: number) => void): void {
    const at = this.reserve(size);
    write(this.view, at);
  }
  u32(v: number): void {
    const at = this.reserve(4);
    this.view.setUint32(at, v, true);
  }
  u64(v: number | bigint): void {
    const at = this.reserve(8);
    this.view.setBigUint64(at, BigInt(v), true);
  }
  string(s: string): void {
    const bytes = Buffer.from(s, "utf8");
    this.u64(bytes.length);
    this.push(bytes);
  }
  pad(alignment: number): void {
    this.reserve((alignment - (this.length % alignment)) % alignment);
  }
  /** A fresh array of exactly the bytes written (its .buffer is its own). */
  concat(): Uint8Array {
    return this.bytes.slice(0, this.length);
  }
}

const INT_RANGES: Partial<Record<GgufScalarType, [number, number]>> = {
  u8: [0, 0xff],
  i8: [-0x80, 0x7f],
  u16: [0, 0xffff],
  i16: [-0x8000, 0x7fff],
  u32: [0, 0xffffffff],
  i32: [-0x80000000, 0x7fffffff],
};

const INT_BYTES: Record<string, number> = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4 };

function typeId(type: GgufEntryType): number {
  return typeof type === "string" ? GGUF_VALUE_TYPES[type] : GGUF_VALUE_TYPES.array;
}

function writeValue(out: ByteSink, type: GgufEntryType, value: GgufValue, key: string): void {
  const wrong = (what: string) => invalid(key, `metadata ${key}: ${what}, found ${typeof value === "bigint" ? `${value}n` : JSON.stringify(value)?.slice(0, 60)}`);
  if (typeof type !== "string") {
    if (!Array.isArray(value)) throw wrong("an array type needs an array value");
    out.u32(typeId(type.array));
    out.u64(value.length);
    for (const v of value) writeValue(out, type.array, v, key);
    return;
  }
  const range = INT_RANGES[type];
  if (range) {
    const v = typeof value === "bigint" ? Number(value) : value;
    if (typeof v !== "number" || !Number.isInteger(v) || v < range[0] || v > range[1]) throw wrong(`${type} needs an integer in [${range[0]}, ${range[1]}]`);
    out.fixed(INT_BYTES[type]!, (d, at) => {
      if (type === "u8") d.setUint8(at, v);
      else if (type === "i8") d.setInt8(at, v);
      else if (type === "u16") d.setUint16(at, v, true);
      else if (type === "i16") d.setInt16(at, v, true);
      else if (type === "u32") d.setUint32(at, v, true);
      else d.setInt32(at, v, true);
    });
    return;
  }
  switch (type) {
    case "f32":
    case "f64":
      if (typeof value !== "number") throw wrong(`${type} needs a number`);
      out.fixed(type === "f32" ? 4 : 8, (d, at) => (type === "f32" ? d.setFloat32(at, value, true) : d.setFloat64(at, value, true)));
      return;
    case "bool":
      if (typeof value !== "boolean") throw wrong("bool needs a boolean");
      out.push(Uint8Array.of(value ? 1 : 0));
      return;
    case "string":
      if (typeof value !== "string") throw wrong("string needs a string");
      out.string(value);
      return;
    case "u64":
    case "i64": {
      const ok = typeof value === "bigint" || (typeof value === "number" && Number.isSafeInteger(value));
      const big = ok ? BigInt(value as number | bigint) : 0n;
      const inRange = type === "u64" ? big >= 0n && big < 2n ** 64n : big >= -(2n ** 63n) && big < 2n ** 63n;
      if (!ok || !inRange) throw wrong(`${type} needs a bigint or safe integer in range`);
      out.fixed(8, (d, at) => (type === "u64" ? d.setBigUint64(at, big, true) : d.setBigInt64(at, big, true)));
      return;
    }
  }
}

/** ggml's roundf: to nearest, halves away from zero. */
const roundAway = (x: number) => Math.sign(x) * Math.round(Math.abs(x));

/** Q8_0: blocks of 32 as an f16 scale d = absmax/127 and 32 int8 q = round(x/d). */
export function quantizeQ8_0(values: Float32Array): Uint8Array {
  const blocks = values.length / 32;
  const out = new Uint8Array(blocks * 34);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(values[b * 32 + j]!));
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    view.setUint16(b * 34, f32ToF16Bits(d), true);
    for (let j = 0; j < 32; j++) view.setInt8(b * 34 + 2 + j, roundAway(Math.fround(values[b * 32 + j]! * id)));
  }
  return out;
}

/**
 * Q4_0: blocks of 32 as an f16 scale and 16 bytes of 4-bit q (element j in the low nibble of
 * byte j, element j+16 in its high nibble); x = (q - 8) * d. d = max / -8 where max is the
 * value of largest magnitude (with its sign), q = min(15, trunc(x/d + 8.5)).
 */
export function quantizeQ4_0(values: Float32Array): Uint8Array {
  const blocks = values.length / 32;
  const out = new Uint8Array(blocks * 18);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = values[b * 32 + j]!;
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    view.setUint16(b * 18, f32ToF16Bits(d), true);
    const q = (v: number) => Math.max(0, Math.min(15, Math.trunc(Math.fround(Math.fround(v * id) + 8.5))));
    for (let j = 0; j < 16; j++) out[b * 18 + 2 + j] = q(values[b * 32 + j]!) | (q(values[b * 32 + 16 + j]!) << 4);
  }
  return out;
}

/** IEEE half bits to a number. */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** The bytes of `values` as a GGUF tensor of `type`; Q8_0 and Q4_0 need a multiple of 32 values. */
export function encodeGgufTensorData(values: Float32Array, type: GgufWriteType): Uint8Array {
  if ((type === "Q8_0" || type === "Q4_0") && values.length % 32 !== 0) {
    throw invalid(type, `${type} stores blocks of 32 values; ${values.length} values do not fill whole blocks`);
  }
  if (type === "Q8_0") return quantizeQ8_0(values);
  if (type === "Q4_0") return quantizeQ4_0(values);
  const size = type === "F32" ? 4 : 2;
  const out = new Uint8Array(values.length * size);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) {
    if (type === "F32") view.setFloat32(i * 4, values[i]!, true);
    else view.setUint16(i * 2, type === "F16" ? f32ToF16Bits(values[i]!) : f32ToBf16Bits(values[i]!), true);
  }
  return out;
}

/** The values a GGUF tensor of `type` holds (F32, F16, BF16, Q8_0, Q4_0): for checking what was written. */
export function decodeGgufTensorData(bytes: Uint8Array, type: GgufWriteType, count: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    if (type === "F32") out[i] = view.getFloat32(i * 4, true);
    else if (type === "F16") out[i] = f16BitsToF32(view.getUint16(i * 2, true));
    else if (type === "BF16") out[i] = new Float32Array(new Uint32Array([view.getUint16(i * 2, true) << 16]).buffer)[0]!;
    else if (type === "Q8_0") out[i] = f16BitsToF32(view.getUint16(Math.floor(i / 32) * 34, true)) * view.getInt8(Math.floor(i / 32) * 34 + 2 + (i % 32));
    else {
      const block = Math.floor(i / 32) * 18;
      const j = i % 32;
      const byte = view.getUint8(block + 2 + (j % 16));
      out[i] = f16BitsToF32(view.getUint16(block, true)) * ((j < 16 ? byte & 0x0f : byte >>> 4) - 8);
    }
  }
  return out;
}

interface EncodedTensor {
  name: string;
  dims: readonly number[];
  typeId: number;
  bytes: Uint8Array;
}

function encodeTensor(t: GgufTensorToWrite): EncodedTensor {
  if ("bytes" in t) return { name: t.name, dims: t.dims, typeId: t.typeId, bytes: t.bytes };
  if ((t.dims === undefined) === (t.shape === undefined)) throw invalid(t.name, `tensor ${t.name}: give dims (innermost first) or shape (outermost first), not ${t.dims ? "both" : "neither"}`);
  const dims = t.dims ?? [...t.shape!].reverse();
  const elements = dims.reduce((a, b) => a * b, 1);
  if (elements !== t.data.length) throw invalid(t.name, `tensor ${t.name}: dims [${dims.join(", ")}] hold ${elements} values but ${t.data.length} were given`);
  const type = ggmlTypeByName(t.type)!;
  if ((dims[0] ?? 1) % type.blockElements !== 0) {
    throw invalid(t.name, `tensor ${t.name}: rows of ${dims[0]} values are not a multiple of ${t.type}'s block of ${type.blockElements}`);
  }
  return { name: t.name, dims, typeId: type.id, bytes: encodeGgufTensorData(t.data, t.type) };
}

/** The bytes of a GGUF file with `spec`'s metadata (in order) and tensors (in order, each aligned). */
export function encodeGguf(spec: GgufToWrite): Uint8Array {
  const alignmentEntry = spec.metadata.find((e) => e.key === "general.alignment");
  const alignment = alignmentEntry ? Number(alignmentEntry.value) : GGUF_DEFAULT_ALIGNMENT;
  if (!Number.isInteger(alignment) || alignment < 1) throw invalid("general.alignment", `general.alignment must be a positive integer, found ${String(alignmentEntry?.value)}`);
  const tensors = spec.tensors.map(encodeTensor);
  const out = new ByteSink();
  out.push(Buffer.from("GGUF", "latin1"));
  out.u32(spec.version ?? 3);
  out.u64(tensors.length);
  out.u64(spec.metadata.length);
  for (const entry of spec.metadata) {
    out.string(entry.key);
    out.u32(typeId(entry.type));
    writeValue(out, entry.type, entry.value, entry.key);
  }
  let dataLength = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    dataLength = Math.ceil(dataLength / alignment) * alignment;
    offsets.push(dataLength);
    dataLength += t.bytes.length;
  }
  tensors.forEach((t, i) => {
    out.string(t.name);
    out.u32(t.dims.length);
    for (const d of t.dims) out.u64(d);
    out.u32(t.typeId);
    out.u64(offsets[i]!);
  });
  out.pad(alignment);
  const dataStart = out.length;
  for (const [i, t] of tensors.entries()) {
    out.push(new Uint8Array(dataStart + offsets[i]! - out.length));
    out.push(t.bytes);
  }
  return out.concat();
}

export async function writeGguf(file: string, spec: GgufToWrite): Promise<void> {
  await writeFile(file, encodeGguf(spec));
}

/** ggml's type id for a write type (for tests that compare with what the reader reports). */
export function ggufWriteTypeId(type: GgufWriteType): number {
  return ggmlTypeByName(type)!.id;
}

/** The entry type a reader's metadataTypes text names ("u32", "array[string]", "array[array[u8]]"). */
export function ggufEntryType(text: string): GgufEntryType {
  const m = /^array\[(.*)\]$/.exec(text);
  if (m) return { array: ggufEntryType(m[1]!) };
  // An empty array of arrays declares no inner element type.
  if (text === "array") return { array: "u8" };
  if (text in GGUF_VALUE_TYPES && text !== "array") return text as GgufScalarType;
  throw invalid(text, `no GGUF value type is called ${text}`);
}

/**
 * A GGUF file as a GgufToWrite (metadata with its types, tensors as raw bytes), to edit and
 * write back: for tests that need a file with one thing changed. Reads the whole file.
 */
export async function ggufToWrite(file: string): Promise<GgufToWrite> {
  const gguf = await readGgufFile(file);
  const bytes = await readFile(gguf.file);
  return {
    version: gguf.version,
    metadata: [...gguf.metadata].map(([key, value]) => ({ key, type: ggufEntryType(gguf.metadataTypes.get(key)!), value })),
    tensors: gguf.tensors.map((t) => ({ name: t.name, dims: t.dims, typeId: t.typeId, bytes: bytes.subarray(t.offset, t.offset + t.byteLength) })),
  };
}
