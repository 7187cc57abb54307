#!/usr/bin/env node
// Compiles each cuda/*.cu into a fatbin (cuda/build/<name>.fatbin): machine code for Hopper
// (sm_90a) plus PTX that the driver compiles for other GPUs (compute_80: the kernels use cp.async, ldmatrix and
// mma.sync). Without nvcc it says so in one line and builds nothing: the CPU engine does
// not need the kernels.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { findNvcc } from "./cuda-toolchain.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const cudaDir = join(root, "cuda");
const out = join(cudaDir, "build");
const toolchain = findNvcc();
if (!toolchain) {
  console.log("apb kernels: no nvcc (set CUDA_HOME, or run `node scripts/setup.mjs --with-cuda`); building without CUDA kernels");
  process.exit(0);
}
mkdirSync(out, { recursive: true });
const sources = readdirSync(cudaDir).filter((f) => f.endsWith(".cu"));
let bytes = 0;
for (const source of sources) {
  const fatbin = join(out, source.replace(/\.cu$/, ".fatbin"));
  const args = [
    "-O3", "-std=c++17", "--use_fast_math", "-lineinfo", `-I${toolchain.include}`,
    "--fatbin", "-gencode=arch=compute_90a,code=sm_90a", "-gencode=arch=compute_80,code=compute_80",
    "-Xptxas=-warn-spills", join(cudaDir, source), "-o", fatbin,
  ];
  const r = spawnSync(toolchain.nvcc, args, { stdio: "inherit" });
  if (r.status !== 0) {
    console.error(`apb kernels: nvcc (${toolchain.source}) failed on cuda/${source}`);
    process.exit(1);
  }
  bytes += statSync(fatbin).size;
}
console.log(`apb kernels: ${sources.length} fatbins, ${(bytes / 1024).toFixed(0)} KiB (sm_90a + compute_80 PTX), nvcc from ${toolchain.source}`);
