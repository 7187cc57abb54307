#!/usr/bin/env node
// The GPU kernels through the Node addon (driver API, embedded fatbins) against the engine's
// CPU attention, on a GPU host; runs from the bundle (bundle/bin/node test/gpu/addon_check.mjs).
import { cudaAttentionCheck } from "@apb/native";

const cases = [
  { name: "anchor rows, 32/8 d128", rows: 777, qHeads: 32, kvHeads: 8, headDim: 128, prefix: [] },
  { name: "apb local rows, 32/8 d128", rows: 1500, qHeads: 32, kvHeads: 8, headDim: 128, prefix: [2048, 1024] },
  { name: "apb local rows, 28/4 d128", rows: 1100, qHeads: 28, kvHeads: 4, headDim: 128, prefix: [513, 256] },
  { name: "apb local rows, 40/8 d64", rows: 999, qHeads: 40, kvHeads: 8, headDim: 64, prefix: [700] },
];
let failed = 0;
for (const c of cases) {
  const r = cudaAttentionCheck({ ...c, seed: Date.now() % 1e9 });
  const pass = r.oRelErr < 1e-2 && r.lseMaxAbsErr < 1e-3;
  if (!pass) failed += 1;
  console.log(JSON.stringify({ case: c.name, gpu: r.gpu, oRelErr: r.oRelErr, lseMaxAbsErr: r.lseMaxAbsErr, ms: r.ms, tflops: r.tflops, pass }));
}
process.exit(failed ? 1 : 0);
