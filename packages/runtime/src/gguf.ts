// GGUF files (llama.cpp's format): the header, metadata and tensor directory, read without
// touching tensor data. The engine reads (and dequantizes) the data itself from the offsets
// given here. Layout (little-endian): magic "GGUF", u32 version (2 or 3), u64 tensor count,
// u64 metadata count, the metadata (key, type, value), the tensor infos (name, dims innermost
// first, type, offset into the data section), padding to `general.alignment` (default 32),
// then the data section.
import { open, type FileHandle } from "node:fs/promises";
import { basename, resolve } from "node:path";
import { RuntimeError } from "./errors.js";
import { openModelFile } from "./files.js";

/** One metadata value: integers up to 32 bits, and floats, as numbers; 64-bit integers as bigint. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];
export type GgufMetadata = ReadonlyMap<string, GgufValue>;

export interface GgufTensorInfo {
  name: string;
  /** Dimensions as the file stores them: innermost (contiguous) first, llama.cpp's ne[]. */
  dims: number[];
  /** The ggml type id, and its name ("F32", "Q4_K", ...; "type 99" for ids this reader does not know). */
  typeId: number;
  typeName: string;
  /** Absolute byte offset of the tensor's data in the file, and its length in bytes. */
  offset: number;
  /**
   * From dims and the type's block size. For a type this reader does not know, the span up to
   * the next tensor's data (or the end of the file): an upper bound, enough to sample it.
   */
  byteLength: number;
}

export interface GgufFile {
  /** Absolute path. */
  file: string;
  version: number;
  metadata: GgufMetadata;
  /** Each key's value type as the file declares it: "u32", "string", "array[string]", "array[array]", ... */
  metadataTypes: ReadonlyMap<string, string>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute offset of the data section. */
  dataOffset: number;
  fileByteLength: number;
}

export const GGUF_MAGIC = "GGUF";
export const GGUF_SUPPORTED_VERSIONS: readonly number[] = [2, 3];
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** A header beyond this is not a real model's (a 256K-token vocabulary with merges is ~20 MB). */
export const MAX_GGUF_HEADER_BYTES = 256 * 1024 * 1024;
/** ggml's GGML_MAX_DIMS. */
export const GGUF_MAX_DIMS = 4;

/** Metadata value types, by name, with their ids in the file. */
export const GGUF_VALUE_TYPES = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 } as const;
export type GgufValueTypeName = keyof typeof GGUF_VALUE_TYPES;
const VALUE_TYPE_NAMES: readonly GgufValueTypeName[] = Object.keys(GGUF_VALUE_TYPES) as GgufValueTypeName[];
/** Bytes of one value of each type, at least (a string is at least its u64 length; an array its type and count). */
const MIN_VALUE_BYTES: readonly number[] = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8];
/** Arrays nest; a file that nests deeper than this is corrupt (real files nest at most once). */
const MAX_ARRAY_DEPTH = 8;
/** Keys are at most 2^16-1 bytes by the spec; tensor names 64 in ggml. Both are bounded here. */
const MAX_NAME_BYTES = 65535;

/** A ggml tensor type: `blockElements` values are stored in `blockBytes` bytes. */
export interface GgmlType {
  id: number;
  name: string;
  blockElements: number;
  blockBytes: number;
}

/**
 * The ggml types a GGUF file may hold, as ggml defines them (ggml.h's enum, ggml-common.h's
 * block structs). Ids 4, 5, 31-33 and 36-38 are types ggml removed.
 */
export const GGML_TYPES: readonly GgmlType[] = (
  [
    [0, "F32", 1, 4],
    [1, "F16", 1, 2],
    [2, "Q4_0", 32, 18],
    [3, "Q4_1", 32, 20],
    [6, "Q5_0", 32, 22],
    [7, "Q5_1", 32, 24],
    [8, "Q8_0", 32, 34],
    [9, "Q8_1", 32, 36],
    [10, "Q2_K", 256, 84],
    [11, "Q3_K", 256, 110],
    [12, "Q4_K", 256, 144],
    [13, "Q5_K", 256, 176],
    [14, "Q6_K", 256, 210],
    [15, "Q8_K", 256, 292],
    [16, "IQ2_XXS", 256, 66],
    [17, "IQ2_XS", 256, 74],
    [18, "IQ3_XXS", 256, 98],
    [19, "IQ1_S", 256, 50],
    [20, "IQ4_NL", 32, 18],
    [21, "IQ3_S", 256, 110],
    [22, "IQ2_S", 256, 82],
    [23, "IQ4_XS", 256, 136],
    [24, "I8", 1, 1],
    [25, "I16", 1, 2],
    [26, "I32", 1, 4],
    [27, "I64", 1, 8],
    [28, "F64", 1, 8],
    [29, "IQ1_M", 256, 56],
    [30, "BF16", 1, 2],
    [34, "TQ1_0", 256, 54],
    [35, "TQ2_0", 256, 66],
    [39, "MXFP4", 32, 17],
  ] as const
).map(([id, name, blockElements, blockBytes]) => ({ id, name, blockElements, blockBytes }));

const TYPES_BY_ID = new Map(GGML_TYPES.map((t) => [t.id, t]));
const TYPES_BY_NAME = new Map(GGML_TYPES.map((t) => [t.name, t]));

export function ggmlTypeById(id: number): GgmlType | undefined {
  return TYPES_BY_ID.get(id);
}

export function ggmlTypeByName(name: string): GgmlType | undefined {
  return TYPES_BY_NAME.get(name);
}

/** The name a type id is shown by: "Q4_K", or "type 99" for an id this reader does not know. */
export function ggmlTypeName(id: number): string {
  return TYPES_BY_ID.get(id)?.name ?? `type ${id}`;
}

function fileError(file: string, message: string): RuntimeError {
  return new RuntimeError({ code: "MODEL_FILE", path: file, message: `${basename(file)} ${message}` });
}

/** Thrown inside the parser when the bytes read so far end before the header does (but the file does not). */
class NeedMore {
  constructor(readonly until: number) {}
}

/** A position in the header bytes read so far, with what is being read (for errors). */
class Cursor {
  pos = 0;
  /** What is being read, for truncation errors: "the value of metadata key general.name". */
  where = "the header";

  constructor(
    readonly bytes: Buffer,
    readonly fileByteLength: number,
    readonly file: string,
  ) {}

  /** Makes sure `n` more bytes are available; `field` names what they are. */
  need(n: number, field: string): void {
    const end = this.pos + n;
    if (end <= this.bytes.length) return;
    if (end > this.fileByteLength) {
      throw fileError(
        this.file,
        `is truncated: ${field} of ${this.where} needs ${n} byte${n === 1 ? "" : "s"} at offset ${this.pos} but the file ends at ${this.fileByteLength}; re-download it`,
      );
    }
    throw new NeedMore(end);
  }

  u8(field: string): number {
    this.need(1, field);
    return this.bytes[this.pos++]!;
  }
  u32(field: string): number {
    this.need(4, field);
    const v = this.bytes.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(field: string): bigint {
    this.need(8, field);
    const v = this.bytes.readBigUInt64LE(this.pos);
    this.pos += 8;
    return v;
  }

  /**
   * A u64 length or count whose items (each at least `itemBytes`) must fit in what is left of
   * the file, or with `wholeFile` in the whole file (then a truncated file fails later, at the
   * field it lacks).
   */
  count(field: string, itemBytes: number, noun: string, wholeFile = false): number {
    const at = this.pos;
    this.need(8, field);
    const left = wholeFile ? this.fileByteLength : this.fileByteLength - at - 8;
    // The common case without bigints: a high word of 0 and a count that fits.
    const high = this.bytes.readUInt32LE(at + 4);
    const low = this.bytes.readUInt32LE(at);
    if (high === 0 && low * itemBytes <= left) {
      this.pos += 8;
      return low;
    }
    const raw = this.u64(field);
    if (raw * BigInt(itemBytes) > BigInt(left)) {
      const room = wholeFile ? `a file of ${left} bytes` : `the ${left} bytes left in the file`;
      throw fileError(this.file, `is truncated or corrupt: ${field} of ${this.where} (at offset ${at}) says ${raw} ${noun}, more than ${room} can hold; re-download it`);
    }
    return Number(raw);
  }

  string(field: string, maxBytes = Number.MAX_SAFE_INTEGER): string {
    const at = this.pos;
    const length = this.count(`the length of ${field}`, 1, "bytes");
    if (length > maxBytes) {
      throw fileError(this.file, `is corrupt: ${field} of ${this.where} (at offset ${at}) is ${length} bytes long; at most ${maxBytes} are allowed`);
    }
    this.need(length, field);
    const text = this.bytes.toString("utf8", this.pos, this.pos + length);
    this.pos += length;
    return text;
  }
}

function valueTypeName(type: number): string {
  return VALUE_TYPE_NAMES[type] ?? `type ${type}`;
}

function unknownValueType(c: Cursor, type: number, at: number): RuntimeError {
  return fileError(
    c.file,
    `is corrupt or too new: ${c.where} has value type ${type} (at offset ${at}); GGUF value types are 0-12 ` +
      `(${VALUE_TYPE_NAMES.map((n, i) => `${i} ${n}`).join(", ")})`,
  );
}

/** Reads `count` fixed-size elements of one numeric type, checked as one block. */
function numericArray(c: Cursor, type: number, count: number): GgufValue[] {
  const size = MIN_VALUE_BYTES[type]!;
  c.need(count * size, `the ${count} ${valueTypeName(type)} elements`);
  const b = c.bytes;
  let p = c.pos;
  const out: GgufValue[] = new Array<GgufValue>(count);
  for (let i = 0; i < count; i++, p += size) {
    switch (type) {
      case 0: out[i] = b[p]!; break;
      case 1: out[i] = b.readInt8(p); break;
      case 2: out[i] = b.readUInt16LE(p); break;
      case 3: out[i] = b.readInt16LE(p); break;
      case 4: out[i] = b.readUInt32LE(p); break;
      case 5: out[i] = b.readInt32LE(p); break;
      case 6: out[i] = b.readFloatLE(p); break;
      case 10: out[i] = b.readBigUInt64LE(p); break;
      case 11: out[i] = b.readBigInt64LE(p); break;
      case 12: out[i] = b.readDoubleLE(p); break;
      default: throw new Error(`numericArray: type ${type}`); // unreachable: callers pass numeric types
    }
  }
  c.pos = p;
  return out;
}

/** One metadata value of `type`; `typeText` collects the declared type for metadataTypes. */
function readValue(c: Cursor, type: number, depth: number, typeAt: number): { value: GgufValue; typeText: string } {
  switch (type) {
    case 7: {
      const at = c.pos;
      const byte = c.u8("a bool");
      if (byte > 1) throw fileError(c.file, `is corrupt: ${c.where} is a bool of value ${byte} (at offset ${at}); bools are 0 or 1`);
      return { value: byte === 1, typeText: "bool" };
    }
    case 8:
      return { value: c.string("a string"), typeText: "string" };
    case 9: {
      if (depth >= MAX_ARRAY_DEPTH) throw fileError(c.file, `is corrupt: ${c.where} nests arrays more than ${MAX_ARRAY_DEPTH} deep`);
      const elementTypeAt = c.pos;
      const elementType = c.u32("the element type of an array");
      const minBytes = MIN_VALUE_BYTES[elementType];
      if (minBytes === undefined) throw unknownValueType(c, elementType, elementTypeAt);
      const count = c.count("the element count of an array", minBytes, `${valueTypeName(elementType)} elements`);
      // Every element is at least minBytes: having them all buffered first bounds what is allocated.
      c.need(count * minBytes, `the ${count} ${valueTypeName(elementType)} elements of an array`);
      if (elementType === 7 || elementType === 8 || elementType === 9) {
        const out: GgufValue[] = new Array<GgufValue>(count);
        let inner = valueTypeName(elementType);
        for (let i = 0; i < count; i++) {
          const r = readValue(c, elementType, depth + 1, elementTypeAt);
          out[i] = r.value;
          if (elementType === 9 && i === 0) inner = r.typeText;
        }
        return { value: out, typeText: `array[${elementType === 9 && count > 0 ? inner : valueTypeName(elementType)}]` };
      }
      return { value: numericArray(c, elementType, count), typeText: `array[${valueTypeName(elementType)}]` };
    }
    default: {
      if (MIN_VALUE_BYTES[type] === undefined) throw unknownValueType(c, type, typeAt);
      return { value: numericArray(c, type, 1)[0]!, typeText: valueTypeName(type) };
    }
  }
}

interface RawTensor {
  name: string;
  dims: number[];
  typeId: number;
  /** Relative to the data section. */
  relativeOffset: bigint;
  /** null for an unknown type. */
  byteLength: bigint | null;
}

function readTensorInfo(c: Cursor, index: number, count: number): RawTensor {
  c.where = `tensor info ${index + 1} of ${count}`;
  const name = c.string("the tensor name", MAX_NAME_BYTES);
  c.where = `tensor ${name} (info ${index + 1} of ${count})`;
  const nDimsAt = c.pos;
  const nDims = c.u32("the dimension count");
  if (nDims > GGUF_MAX_DIMS) {
    throw fileError(c.file, `is corrupt: ${c.where} has ${nDims} dimensions (at offset ${nDimsAt}); ggml tensors have at most ${GGUF_MAX_DIMS}`);
  }
  const dims: number[] = [];
  let elements = 1n;
  for (let d = 0; d < nDims; d++) {
    const dimAt = c.pos;
    const dim = c.u64(`dimension ${d}`);
    elements *= dim;
    // No tensor of the file can have more elements than the file has bits.
    if (elements > BigInt(c.fileByteLength) * 8n) {
      throw fileError(c.file, `is corrupt: ${c.where} has dimension ${d} of ${dim} (at offset ${dimAt}), more elements than a file of ${c.fileByteLength} bytes holds`);
    }
    dims.push(Number(dim));
  }
  const typeId = c.u32("the ggml type");
  const relativeOffset = c.u64("the data offset");
  const type = ggmlTypeById(typeId);
  let byteLength: bigint | null = null;
  if (type) {
    const row = dims[0] ?? 1;
    if (row % type.blockElements !== 0) {
      throw fileError(
        c.file,
        `is corrupt: tensor ${name} has rows of ${row} values (dims [${dims.join(", ")}]), not a multiple of ${type.name}'s block of ${type.blockElements}`,
      );
    }
    byteLength = (elements / BigInt(type.blockElements)) * BigInt(type.blockBytes);
  }
  return { name, dims, typeId, relativeOffset, byteLength };
}

function alignmentOf(file: string, metadata: Map<string, GgufValue>): number {
  const raw = metadata.get("general.alignment");
  if (raw === undefined) return GGUF_DEFAULT_ALIGNMENT;
  const value = typeof raw === "bigint" ? Number(raw) : raw;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 2 ** 30 || (value & (value - 1)) !== 0) {
    throw new RuntimeError({
      code: "MODEL_FILE",
      path: file,
      message: `${basename(file)} has general.alignment ${JSON.stringify(typeof raw === "bigint" ? String(raw) : raw)}; it must be a power of two (ggml writes 32)`,
    });
  }
  return value;
}

/** Absolute offsets and lengths, checked against the file: aligned, inside it, not overlapping. */
function placeTensors(file: string, raw: RawTensor[], dataOffset: number, alignment: number, fileByteLength: number): GgufTensorInfo[] {
  const size = BigInt(fileByteLength);
  const data = BigInt(dataOffset);
  for (const t of raw) {
    if (t.relativeOffset % BigInt(alignment) !== 0n) {
      throw fileError(file, `is corrupt: tensor ${t.name}'s data offset ${t.relativeOffset} is not a multiple of the alignment ${alignment}; re-download it`);
    }
    if (data + t.relativeOffset > size) {
      throw fileError(
        file,
        `is truncated or corrupt: tensor ${t.name}'s data starts at ${data + t.relativeOffset} (data section at ${dataOffset} + ${t.relativeOffset}), beyond the end of the file at ${fileByteLength}; re-download it`,
      );
    }
    if (t.byteLength !== null && data + t.relativeOffset + t.byteLength > size) {
      throw fileError(
        file,
        `is truncated: tensor ${t.name} (${ggmlTypeName(t.typeId)} [${t.dims.join(", ")}]) needs ${t.byteLength} bytes at ${data + t.relativeOffset} ` +
          `but the file ends at ${fileByteLength}; re-download it`,
      );
    }
  }
  const byOffset = [...raw].sort((a, b) => (a.relativeOffset < b.relativeOffset ? -1 : a.relativeOffset > b.relativeOffset ? 1 : 0));
  const spans = new Map<RawTensor, bigint>();
  byOffset.forEach((t, i) => {
    const next = byOffset[i + 1];
    const end = next ? next.relativeOffset : size - data;
    // An unknown type's length is unknown: it spans up to the next tensor's data.
    const length = t.byteLength ?? end - t.relativeOffset;
    if (next && t.relativeOffset + length > next.relativeOffset) {
      throw fileError(
        file,
        `is corrupt: the data of tensors ${t.name} (${length} bytes at data offset ${t.relativeOffset}) and ${next.name} (at ${next.relativeOffset}) overlap; re-download it`,
      );
    }
    spans.set(t, length);
  });
  return raw.map((t) => ({
    name: t.name,
    dims: t.dims,
    typeId: t.typeId,
    typeName: ggmlTypeName(t.typeId),
    offset: dataOffset + Number(t.relativeOffset),
    byteLength: Number(spans.get(t)!),
  }));
}

function checkVersion(c: Cursor): number {
  const version = c.u32("the version");
  if (GGUF_SUPPORTED_VERSIONS.includes(version)) return version;
  const swapped = ((version & 0xff) << 24) | ((version & 0xff00) << 8) | ((version >>> 8) & 0xff00) | (version >>> 24);
  if (GGUF_SUPPORTED_VERSIONS.includes(swapped >>> 0)) {
    throw fileError(c.file, `is a big-endian GGUF file (version ${swapped >>> 0}); only little-endian files are supported: convert it on a little-endian machine`);
  }
  const hint = version === 1 ? " (version 1, from before August 2023, stores 32-bit counts): re-convert the model with a current llama.cpp" : ": it is newer than this reader";
  throw fileError(c.file, `is GGUF version ${version}, which is not supported; supported versions are ${GGUF_SUPPORTED_VERSIONS.join(" and ")}${hint}`);
}

/** Parses the header from `bytes` (a prefix of the file); NeedMore when the prefix is too short. */
function parse(file: string, bytes: Buffer, fileByteLength: number): GgufFile {
  const c = new Cursor(bytes, fileByteLength, file);
  if (fileByteLength < 4 || bytes.toString("latin1", 0, 4) !== GGUF_MAGIC) {
    const head = [...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    throw fileError(
      file,
      fileByteLength < 4
        ? `is not a GGUF file: it has ${fileByteLength} bytes, fewer than the 4-byte magic "GGUF"`
        : `is not a GGUF file: it starts with bytes ${head}, not "GGUF" (47 47 55 46)`,
    );
  }
  c.pos = 4;
  const version = checkVersion(c);
  // Each tensor info is at least 24 bytes (name length, n_dims, type, offset); each entry 13.
  const tensorCount = c.count("the tensor count", 24, "tensors", true);
  const kvCount = c.count("the metadata entry count", 13, "metadata entries", true);
  const metadata = new Map<string, GgufValue>();
  const metadataTypes = new Map<string, string>();
  for (let i = 0; i < kvCount; i++) {
    c.where = `metadata entry ${i + 1} of ${kvCount}`;
    const key = c.string("the key", MAX_NAME_BYTES);
    c.where = `metadata key ${key} (entry ${i + 1} of ${kvCount})`;
    if (metadata.has(key)) throw fileError(file, `is corrupt: metadata key ${key} appears twice (entry ${i + 1}); re-download it`);
    const typeAt = c.pos;
    const type = c.u32("the value type");
    const { value, typeText } = readValue(c, type, 0, typeAt);
    metadata.set(key, value);
    metadataTypes.set(key, typeText);
  }
  const alignment = alignmentOf(file, metadata);
  const raw: RawTensor[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const t = readTensorInfo(c, i, tensorCount);
    if (names.has(t.name)) throw fileError(file, `is corrupt: tensor ${t.name} is listed twice (info ${i + 1}); re-download it`);
    names.add(t.name);
    raw.push(t);
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const tensors = placeTensors(file, raw, dataOffset, alignment, fileByteLength);
  return { file, version, metadata, metadataTypes, tensors, alignment, dataOffset, fileByteLength };
}

async function readInto(handle: FileHandle, bytes: Buffer, from: number): Promise<void> {
  let filled = from;
  while (filled < bytes.length) {
    const { bytesRead } = await handle.read(bytes, filled, bytes.length - filled, filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
}

const FIRST_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * The header of a GGUF file: metadata and tensor directory, checked against the file's size
 * (every tensor's data inside the file, aligned, not overlapping). Reads the header in growing
 * chunks from the start; tensor data is never read.
 */
export async function readGgufFile(fileArg: string): Promise<GgufFile> {
  const file = resolve(fileArg);
  const handle = await openModelFile(file);
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw fileError(file, "is not a file; pass a .gguf file");
    const fileByteLength = stats.size;
    let bytes = Buffer.alloc(Math.min(fileByteLength, FIRST_CHUNK_BYTES));
    await readInto(handle, bytes, 0);
    for (;;) {
      try {
        return parse(file, bytes, fileByteLength);
      } catch (e) {
        if (!(e instanceof NeedMore)) throw e;
        const wanted = Math.min(fileByteLength, Math.max(bytes.length * 2, e.until + FIRST_CHUNK_BYTES));
        if (e.until > MAX_GGUF_HEADER_BYTES) {
          throw fileError(file, `is corrupt: its header runs past ${MAX_GGUF_HEADER_BYTES / 2 ** 20} MiB (no real model's does); re-download it`);
        }
        const grown = Buffer.alloc(Math.min(wanted, MAX_GGUF_HEADER_BYTES));
        bytes.copy(grown);
        const from = bytes.length;
        bytes = grown;
        await readInto(handle, bytes, from);
      }
    }
  } catch (e) {
    if (e instanceof RuntimeError) throw e;
    throw fileError(file, `cannot be read: ${(e as Error).message}`);
  } finally {
    await handle.close();
  }
}

/** Whether `file` starts with the GGUF magic (false for anything unreadable or shorter). */
export async function isGgufFile(file: string): Promise<boolean> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(file, "r");
    const head = Buffer.alloc(4);
    const { bytesRead } = await handle.read(head, 0, 4, 0);
    return bytesRead === 4 && head.toString("latin1") === GGUF_MAGIC;
  } catch {
    return false;
  } finally {
    await handle?.close();
  }
}
