#!/usr/bin/env node
// The attention kernels timed through the Node addon, the path the engine uses (driver API,
// tensor maps encoded per call included), on the shapes: Llama-3.1-8B heads (32/8,
// d 128), full causal 8K/32K/128K and APB host shapes for 128K on 8 hosts (local 16K,
// anchor 4K, passing 0..7 x 2K). FLOPs counted as FlashAttention does. Writes
// attention-node.json and attention-node.md to $OUT (or the current directory).
// PyTorch's FlashAttention-2 and cuDNN are timed on the same shapes by attention_check.py.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { cudaAttentionBench } from "@apb/native";

const quick = process.argv.includes("--quick");
const heads = { qHeads: 32, kvHeads: 8, headDim: 128 };
const shapes = [{ name: "full causal 8K", rows: 8192, prefix: [] }];
if (!quick) shapes.push({ name: "full causal 32K", rows: 32768, prefix: [] }, { name: "full causal 128K", rows: 131072, prefix: [] });
for (const p of quick ? [0, 7] : [0, 1, 2, 3, 4, 5, 6, 7]) {
  shapes.push({ name: `apb local 16K + anchor 4K + passing ${p}x2K`, rows: 16384, prefix: p ? [p * 2048, 4096] : [4096] });
}
const rows = [];
let gpu = "";
for (const s of shapes) {
  const row = { shape: s.name, rows: s.rows, keys: s.rows + s.prefix.reduce((a, b) => a + b, 0) };
  for (const kernel of ["sm90", "portable"]) {
    try {
      const r = cudaAttentionBench({ ...heads, rows: s.rows, prefix: s.prefix, kernel, iterations: s.rows > 32768 ? 5 : 20 });
      gpu = r.gpu;
      row[`${kernel}Ms`] = r.medianMs;
      row[`${kernel}Tflops`] = r.tflops;
    } catch (e) {
      row[`${kernel}Error`] = String(e.message).slice(0, 160);
    }
  }
  console.log(JSON.stringify(row));
  rows.push(row);
}
const date = new Date().toISOString().slice(0, 10);
const out = process.env.OUT ?? ".";
writeFileSync(join(out, "attention-node.json"), JSON.stringify({ date, gpu, node: process.version, bench: rows }, null, 2));
const fmt = (x) => (x ? x.toFixed(0) : "n/a");
const lines = [
  `# APB attention through the Node addon (${date}, ${gpu}, node ${process.version})`,
  "",
  "| shape (32/8 heads, d 128) | sm90 ms | sm90 TFLOP/s | portable ms | portable TFLOP/s |",
  "|---|---:|---:|---:|---:|",
  ...rows.map((r) => `| ${r.shape} | ${r.sm90Ms?.toFixed(2) ?? "n/a"} | ${fmt(r.sm90Tflops)} | ${r.portableMs?.toFixed(2) ?? "n/a"} | ${fmt(r.portableTflops)} |`),
];
writeFileSync(join(out, "attention-node.md"), lines.join("\n") + "\n");
console.log(lines.join("\n"));
