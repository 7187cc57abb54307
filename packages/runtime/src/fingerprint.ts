// A model's fingerprint: hosts of one group must hold the same weights, or their answers
// mix two models. It hashes what defines the forward (the engine's config, every tensor's
// name, dtype and shape, the tokenizer's size; for a GGUF file its whole metadata, tokenizer
// and chat template included, and its tensor directory) and a sample of every tensor's bytes
// (its first and last 64), so two checkpoints of one shape differ while reading a few KiB, not
// the weights. Paths are left out: the same model copied to each machine matches.
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";
import type { GgufFile } from "./gguf.js";
import type { ModelDir } from "./model-dir.js";
import type { TensorEntry } from "./safetensors.js";

const SAMPLE_BYTES = 64;

function sampleBytes(tensors: TensorEntry[], hash: ReturnType<typeof createHash>): void {
  const open = new Map<string, number>();
  const buffer = Buffer.alloc(SAMPLE_BYTES);
  try {
    for (const t of tensors) {
      let fd = open.get(t.file);
      if (fd === undefined) {
        fd = openSync(t.file, "r");
        open.set(t.file, fd);
      }
      const n = Math.min(SAMPLE_BYTES, t.byteLength);
      for (const at of [t.offset, t.offset + t.byteLength - n]) {
        const got = readSync(fd, buffer, 0, n, at);
        hash.update(buffer.subarray(0, got));
      }
    }
  } finally {
    for (const fd of open.values()) closeSync(fd);
  }
}

/** A GGUF file's metadata (keys in file order, with their types) and tensor directory. */
function hashGgufHeader(gguf: GgufFile, hash: ReturnType<typeof createHash>): void {
  const text = (v: unknown): string => JSON.stringify(v, (_, x: unknown) => (typeof x === "bigint" ? `${x}n` : x));
  hash.update(text({ version: gguf.version, alignment: gguf.alignment }));
  for (const [key, value] of gguf.metadata) hash.update(text([key, gguf.metadataTypes.get(key) ?? null, value]));
  hash.update(text(gguf.tensors.map((t) => [t.name, t.typeName, t.dims, t.offset - gguf.dataOffset, t.byteLength])));
}

export function modelFingerprint(dir: ModelDir): string {
  const hash = createHash("sha256");
  hash.update(
    JSON.stringify({
      config: dir.config,
      tensors: dir.tensors.map((t) => (t.permuteHeads === undefined ? [t.name, t.dtype, t.shape, t.byteLength] : [t.name, t.dtype, t.shape, t.byteLength, t.permuteHeads])),
      retaining: dir.retaining?.tensors.map((t) => [t.name, t.dtype, t.shape]) ?? null,
      tokenizerMaxId: dir.tokenizer.maxTokenId,
    }),
  );
  if (dir.gguf) hashGgufHeader(dir.gguf, hash);
  sampleBytes([...dir.tensors, ...(dir.retaining?.tensors ?? [])], hash);
  return `sha256:${hash.digest("hex").slice(0, 32)}`;
}
