// Safetensors headers, read without touching tensor data. A file is: an 8-byte little-endian
// u64 N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?},
// then the data section; offsets are relative to the start of the data section.
import { basename, join, resolve, sep } from "node:path";
import { z } from "zod";
import { RuntimeError } from "./errors.js";
import { exists, openModelFile, readJson } from "./files.js";

/** The dtypes of safetensors checkpoints the engine loads. */
export type TensorDtype = "BF16" | "F16" | "F32";

/** What the engine loads: safetensors' float dtypes and, from GGUF files, these ggml types (by their GGUF names). */
export type WeightDtype = TensorDtype | "Q8_0" | "Q4_0" | "Q4_1" | "Q4_K" | "Q5_K" | "Q6_K";
export const WEIGHT_DTYPES: readonly WeightDtype[] = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K"];

export interface TensorEntry {
  name: string;
  /** Absolute path of the file that holds the data. */
  file: string;
  dtype: WeightDtype;
  /** Outermost first, as PyTorch (for GGUF tensors: the file's dims reversed). */
  shape: number[];
  /** Absolute byte offset of the tensor's first byte in `file`. */
  offset: number;
  byteLength: number;
  /**
   * Rows stored in llama.cpp's rotary order: within each of this many heads, the converter
   * interleaved the two halves of the head (Llama's q_proj and k_proj in GGUF files); the
   * engine puts them back in Hugging Face's order as it loads them.
   */
  permuteHeads?: number;
}

export const DTYPE_BYTES: Readonly<Record<TensorDtype, number>> = { BF16: 2, F16: 2, F32: 4 };

/** A header beyond this is not a real checkpoint's (the spec's own limit is 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;
const LENGTH_PREFIX_BYTES = 8;

const entrySchema = z.object({
  dtype: z.string(),
  shape: z.array(z.number().int().nonnegative()),
  data_offsets: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
});

function fileError(file: string, message: string): RuntimeError {
  return new RuntimeError({ code: "MODEL_FILE", path: file, message: `${basename(file)} ${message}` });
}

/** Reads exactly `byteLength` bytes at `position`, or fewer if the file ends first. */
async function readAt(file: string, position: number, byteLength: number): Promise<{ bytes: Buffer; fileByteLength: number }> {
  const handle = await openModelFile(file);
  try {
    const fileByteLength = (await handle.stat()).size;
    const wanted = Math.max(0, Math.min(byteLength, fileByteLength - position));
    const bytes = Buffer.alloc(wanted);
    let filled = 0;
    while (filled < wanted) {
      const { bytesRead } = await handle.read(bytes, filled, wanted - filled, position + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return { bytes: bytes.subarray(0, filled), fileByteLength };
  } finally {
    await handle.close();
  }
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function checkEntry(file: string, name: string, raw: unknown, dataStart: number, dataByteLength: number): TensorEntry {
  const parsed = entrySchema.safeParse(raw);
  const where = `${basename(file)}: tensor ${name}`;
  if (!parsed.success) {
    throw new RuntimeError({
      code: "MODEL_FILE",
      path: name,
      message: `${where} has a malformed header entry ${JSON.stringify(raw)}; expected {dtype, shape, data_offsets: [begin, end]}. The file is corrupt: re-download it`,
    });
  }
  const { dtype, shape, data_offsets: [begin, end] } = parsed.data;
  if (!(dtype in DTYPE_BYTES)) {
    throw new RuntimeError({
      code: "TENSOR_DTYPE",
      path: name,
      message: `${where} has dtype ${dtype}; the engine loads BF16, F16 or F32. Use an unquantized checkpoint or convert it (e.g. save it with torch_dtype=bfloat16)`,
    });
  }
  const elementBytes = DTYPE_BYTES[dtype as TensorDtype];
  const byteLength = end - begin;
  const expectedByteLength = product(shape) * elementBytes;
  if (end < begin || end > dataByteLength) {
    throw new RuntimeError({
      code: "MODEL_FILE",
      path: name,
      message: `${where} has data_offsets [${begin}, ${end}] outside the data section of ${dataByteLength} bytes; the file is truncated or corrupt: re-download it`,
    });
  }
  if (byteLength !== expectedByteLength) {
    throw new RuntimeError({
      code: "MODEL_FILE",
      path: name,
      message: `${where} spans ${byteLength} bytes but its shape [${shape.join(", ")}] of ${dtype} needs ${expectedByteLength}; the file is corrupt: re-download it`,
    });
  }
  return { name, file, dtype: dtype as TensorDtype, shape, offset: dataStart + begin, byteLength };
}

/** Tensors of one safetensors file, in data order; the file is checked, its tensor data is not read. */
export async function readSafetensorsFile(fileArg: string): Promise<TensorEntry[]> {
  const file = resolve(fileArg);
  const prefix = await readAt(file, 0, LENGTH_PREFIX_BYTES);
  if (prefix.bytes.length < LENGTH_PREFIX_BYTES) {
    throw fileError(file, `is truncated: it has ${prefix.fileByteLength} bytes but a safetensors file starts with an 8-byte header length`);
  }
  const declaredByteLength = prefix.bytes.readBigUInt64LE(0);
  const afterPrefix = prefix.fileByteLength - LENGTH_PREFIX_BYTES;
  if (declaredByteLength > BigInt(MAX_HEADER_BYTES)) {
    throw fileError(file, `is not a safetensors file: its header length field says ${declaredByteLength} bytes (over the 100 MB limit); the file is corrupt or of another format`);
  }
  const headerByteLength = Number(declaredByteLength);
  if (headerByteLength > afterPrefix) {
    throw fileError(file, `is truncated: header says ${headerByteLength} bytes of JSON but the file has ${afterPrefix}; re-download it`);
  }
  const { bytes } = await readAt(file, LENGTH_PREFIX_BYTES, headerByteLength);
  let header: unknown;
  try {
    header = JSON.parse(bytes.toString("utf8"));
  } catch (e) {
    throw new RuntimeError({ code: "INVALID_JSON", path: file, message: `${basename(file)} has a corrupt header: its ${headerByteLength} bytes of JSON do not parse (${(e as Error).message}); re-download it` });
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw new RuntimeError({ code: "INVALID_JSON", path: file, message: `${basename(file)} has a corrupt header: expected a JSON object of tensors, found ${JSON.stringify(header).slice(0, 40)}` });
  }
  const dataStart = LENGTH_PREFIX_BYTES + headerByteLength;
  const dataByteLength = afterPrefix - headerByteLength;
  const entries = Object.entries(header)
    .filter(([name]) => name !== "__metadata__")
    .map(([name, raw]) => checkEntry(file, name, raw, dataStart, dataByteLength))
    .sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < entries.length; i++) {
    const [before, after] = [entries[i - 1]!, entries[i]!];
    if (before.offset + before.byteLength > after.offset) {
      throw fileError(file, `is corrupt: the data of tensors ${before.name} and ${after.name} overlap; re-download it`);
    }
  }
  return entries;
}

const indexSchema = z.object({ weight_map: z.record(z.string(), z.string()) });

/** Shard names from the index, each checked to be a plain file name in `dir` (no path escape). */
function shardFile(dir: string, shard: string, indexFile: string): string {
  const file = resolve(dir, shard);
  if (!file.startsWith(resolve(dir) + sep)) {
    throw fileError(indexFile, `names shard "${shard}" outside the model directory; shards must be files in ${dir}`);
  }
  return file;
}

async function readSharded(dir: string, indexFile: string): Promise<TensorEntry[]> {
  const raw = await readJson(indexFile, "model.safetensors.index.json");
  const parsed = indexSchema.safeParse(raw);
  if (!parsed.success) {
    throw fileError(indexFile, "has no weight_map of tensor name -> shard file; re-download it");
  }
  const weightMap = parsed.data.weight_map;
  const shards = [...new Set(Object.values(weightMap))];
  for (const shard of shards) {
    const file = shardFile(dir, shard, indexFile);
    if (!(await exists(file))) {
      throw fileError(file, `is listed in model.safetensors.index.json but does not exist in ${dir}; download every shard`);
    }
  }
  const byName = new Map<string, TensorEntry>();
  for (const shard of shards) {
    for (const entry of await readSafetensorsFile(shardFile(dir, shard, indexFile))) {
      const seen = byName.get(entry.name);
      if (seen) throw fileError(entry.file, `holds tensor ${entry.name}, which ${basename(seen.file)} holds too; the shards are from different checkpoints`);
      byName.set(entry.name, entry);
    }
  }
  for (const [name, shard] of Object.entries(weightMap)) {
    if (byName.get(name)?.file !== shardFile(dir, shard, indexFile)) {
      throw fileError(shardFile(dir, shard, indexFile), `lacks tensor ${name}, which model.safetensors.index.json places there; the shards and the index do not match`);
    }
  }
  return [...byName.values()];
}

/**
 * Tensors of a model directory: `model.safetensors` (checked first, as transformers does) or the
 * shards named by `model.safetensors.index.json`.
 */
export async function readSafetensorsDir(dir: string): Promise<TensorEntry[]> {
  const single = join(dir, "model.safetensors");
  if (await exists(single)) return readSafetensorsFile(single);
  const index = join(dir, "model.safetensors.index.json");
  if (await exists(index)) return readSharded(dir, index);
  throw new RuntimeError({
    code: "MODEL_FILE",
    path: resolve(dir),
    message: `no model.safetensors or model.safetensors.index.json in ${dir}; the engine reads safetensors weights only (convert pytorch_model.bin with transformers' save_pretrained(safe_serialization=True))`,
  });
}
