// A model's fingerprint: hosts of one group must hold the same weights, or their answers
// mix two models. It hashes what defines the forward (the engine's config, every tensor's
// name, dtype and shape, the tokenizer's size) and a sample of every tensor's bytes (its
// first and last 64), so two checkpoints of one shape differ while reading a few KiB, not
// the weights. Paths are left out: the same model copied to each machine matches.
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";
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

export function modelFingerprint(dir: ModelDir): string {
  const hash = createHash("sha256");
  hash.update(
    JSON.stringify({
      config: dir.config,
      tensors: dir.tensors.map((t) => [t.name, t.dtype, t.shape, t.byteLength]),
      retaining: dir.retaining?.tensors.map((t) => [t.name, t.dtype, t.shape]) ?? null,
      tokenizerMaxId: dir.tokenizer.maxTokenId,
    }),
  );
  sampleBytes([...dir.tensors, ...(dir.retaining?.tensors ?? [])], hash);
  return `sha256:${hash.digest("hex").slice(0, 32)}`;
}
