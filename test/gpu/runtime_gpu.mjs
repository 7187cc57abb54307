#!/usr/bin/env node
// The runtime's controls on a GPU host, with a real model on the CUDA backend: an aborted
// load and an aborted generation reject with CANCELLED and leave the device as they found it;
// a model stays usable after an abort; a throwing onToken rejects generate; dispose() gives the
// weights' device memory back (10 load/dispose cycles); a model whose bf16 activations
// overflow is refused with NUMERIC, never answered. Writes runtime-gpu.json to $OUT; exits 1
// if a check fails.
// usage: bundle/bin/node bundle/test/gpu/runtime_gpu.mjs FILE.gguf
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateCase } from "@apb/eval";
import { loadModel } from "@apb/runtime";
import { writeTinyModel } from "@apb/runtime/testing";

const file = process.argv[2];
const out = process.env.OUT ?? ".";
const MIB = 2 ** 20;
const rows = [];
let failures = 0;
const check = (name, pass, details = {}) => {
  if (!pass) failures += 1;
  const row = { name, pass, ...details };
  rows.push(row);
  console.log(JSON.stringify(row));
};
const codeOf = async (promise) => {
  try {
    await promise;
    return "resolved";
  } catch (e) {
    return e?.code ?? String(e);
  }
};

// The weights' device memory: free memory with one model loaded minus with two.
const a = await loadModel(file, { backend: "cuda" });
const oneModelFree = a.gpuMemory().freeBytes;
const b = await loadModel(file, { backend: "cuda" });
const twoModelsFree = b.gpuMemory().freeBytes;
const weightsBytes = oneModelFree - twoModelsFree;
b.dispose();
const afterDisposeFree = a.gpuMemory().freeBytes;
check("dispose gives the weights' device memory back", Math.abs(afterDisposeFree - oneModelFree) < 0.1 * weightsBytes + 8 * MIB, {
  weightsMiB: weightsBytes / MIB,
  freeWithOneMiB: oneModelFree / MIB,
  freeWithTwoMiB: twoModelsFree / MIB,
  freeAfterDisposingOneMiB: afterDisposeFree / MIB,
});

const cycles = [];
for (let i = 0; i < 10; i++) {
  const m = await loadModel(file, { backend: "cuda" });
  m.dispose();
  cycles.push(a.gpuMemory().freeBytes / MIB);
}
check("10 load/dispose cycles leave device memory where it was", Math.max(...cycles) - Math.min(...cycles) < 16 && Math.abs(cycles.at(-1) - afterDisposeFree / MIB) < 16, { freeMiBAfterEachCycle: cycles });

// An aborted load.
{
  const controller = new AbortController();
  const code = await codeOf(loadModel(file, { backend: "cuda", signal: controller.signal, onProgress: (done) => done >= 5 && controller.abort() }));
  check("an aborted load rejects with CANCELLED", code === "CANCELLED", { code, freeMiBAfter: a.gpuMemory().freeBytes / MIB });
}

// An aborted generation at ~8K tokens, then the same model answers.
const countTokens = (text) => a.dir.tokenizer.encode(text, { addSpecialTokens: false }).length;
const c = generateCase({ task: "needle-number", length: 7000, depth: 0.5, seed: 11, countTokens });
const request = { document: c.document, query: c.query, answerPrefix: c.answerPrefix, maxTokens: 16 };
const fresh = await a.generate({ ...request, strategy: "apb", hosts: 4 });
for (const strategy of ["full", "apb", "ring"]) {
  const controller = new AbortController();
  let abortedAt = 0;
  const code = await codeOf(
    a.generate({
      ...request,
      // Long enough that the abort, which arrives with a progress event, lands mid-run.
      maxTokens: 400,
      stopTokenIds: [],
      strategy,
      hosts: 4,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.layer >= 10 && !abortedAt) {
          abortedAt = performance.now();
          controller.abort();
        }
      },
    }),
  );
  const rejectedAfterMs = performance.now() - abortedAt;
  check(`${strategy}: an aborted generation rejects with CANCELLED`, code === "CANCELLED" && abortedAt > 0, { code, rejectedAfterMs });
}
const again = await a.generate({ ...request, strategy: "apb", hosts: 4 });
check("after aborts the model gives the answer it gave before", again.text === fresh.text, { before: fresh.text, after: again.text, expected: c.answers });

// A throwing onToken.
{
  const boom = new Error("the caller's onToken failed");
  let caught;
  try {
    await a.generate({ ...request, strategy: "apb", hosts: 4, onToken: () => { throw boom; } });
  } catch (e) {
    caught = e;
  }
  check("a throwing onToken rejects generate with its error", caught === boom, { caught: String(caught) });
}
a.dispose();
check("generate after dispose rejects with DISPOSED", (await codeOf(a.generate({ ...request, strategy: "full" }))) === "DISPOSED");

// Finite weights whose bf16 activations overflow: NUMERIC, never an answer made of NaN.
{
  const dir = mkdtempSync(join(tmpdir(), "apb-overflow-"));
  // Head dim 64: the CUDA kernels take 64 or 128.
  await writeTinyModel(dir, { dtype: "bfloat16", weightStd: 1e30, seed: 5, hidden: 128, heads: 2, kvHeads: 1, headDim: 64 });
  const m = await loadModel(dir, { backend: "cuda" });
  let code = "resolved";
  let finite = true;
  try {
    const g = await m.generate({ document: "one two three four five six seven eight nine ten ".repeat(20), query: "count", strategy: "full", maxTokens: 4 });
    finite = g.firstLogits.every(Number.isFinite);
  } catch (e) {
    code = e?.code ?? String(e);
  }
  check("overflowing activations are NUMERIC or finite, never a NaN answer", code === "NUMERIC" || (code === "resolved" && finite), { code, finite });
  m.dispose();
}

writeFileSync(join(out, "runtime-gpu.json"), JSON.stringify({ date: new Date().toISOString().slice(0, 10), rows }, null, 2));
console.log(JSON.stringify({ failures }));
process.exit(failures ? 1 : 0);
