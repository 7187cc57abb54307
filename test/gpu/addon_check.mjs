#!/usr/bin/env node
// The GPU kernels through the Node addon (driver API, embedded fatbins) against the engine's
// CPU attention and merge, on a GPU host; runs from the bundle
// (bundle/bin/node bundle/test/gpu/addon_check.mjs). Fresh inputs every run.
import { cudaAttentionCheck, cudaMergeCheck } from "@apb/native";

const shapes = [
  { name: "anchor rows, 32/8 d128", rows: 777, qHeads: 32, kvHeads: 8, headDim: 128, prefix: [] },
  { name: "apb local rows, 32/8 d128", rows: 1500, qHeads: 32, kvHeads: 8, headDim: 128, prefix: [2048, 1024] },
  { name: "apb local rows, 28/4 d128", rows: 1100, qHeads: 28, kvHeads: 4, headDim: 128, prefix: [513, 256] },
  { name: "apb local rows, 40/8 d128, 3 prefix segments", rows: 333, qHeads: 40, kvHeads: 8, headDim: 128, prefix: [257, 129, 1] },
  { name: "apb local rows, 40/8 d64", rows: 999, qHeads: 40, kvHeads: 8, headDim: 64, prefix: [700] },
];
const seed = () => Math.floor(Math.random() * 1e9);
let failed = 0;
const report = (row, pass) => {
  if (!pass) failed += 1;
  console.log(JSON.stringify({ ...row, pass }));
};
for (const s of shapes) {
  const kernels = s.headDim === 128 ? ["sm90", "portable"] : ["portable"];
  for (const kernel of kernels) {
    let r;
    try {
      r = cudaAttentionCheck({ ...s, kernel, seed: seed() });
    } catch (e) {
      // The sm90 kernel exists on compute capability 9.0 only.
      if (kernel === "sm90" && /compute capability/.test(String(e.message))) continue;
      throw e;
    }
    report({ case: s.name, ...r }, r.oRelErr < 1e-2 && r.lseMaxAbsErr < 1e-3 && r.lseMismatchedRows === 0);
  }
}
for (const parts of [1, 2, 5, 16]) {
  const r = cudaMergeCheck({ rows: 257, heads: 8, headDim: 128, parts, seed: seed() });
  report({ case: `merge of ${parts} parts`, ...r }, r.oRelErr < 1e-2 && r.lseMaxAbsErr < 1e-3 && r.lseMismatchedRows === 0);
}
process.exit(failed ? 1 : 0);
