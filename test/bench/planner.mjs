#!/usr/bin/env node
// Times plan() and recommend() through the wasm module (the full TypeScript API: zod check,
// JSON both ways) and natively (the Rust binary timing itself in-process, JSON included).
// Writes bench/results/planner.json and planner.md at the repository root.
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { Planner } from "@apb/planner";

const root = new URL("../../", import.meta.url);
const NATIVE = fileURLToPath(new URL("crates/apb-plan/pkg/apb-plan", root));
const out = new URL("bench/results/", root);

const CASES = [
  { name: "plan 128K on 8 hosts", op: "plan", iterations: 2000, request: { model: "llama-3.1-8b", contextTokens: 131_072, hosts: 8 } },
  { name: "plan 1M on 64 hosts", op: "plan", iterations: 500, request: { model: "llama-3-8b-1m", contextTokens: 1_048_576, hosts: 64 } },
  { name: "plan 1M on 64 hosts, balanced", op: "plan", iterations: 50, request: { model: "llama-3-8b-1m", contextTokens: 1_048_576, hosts: 64, balanced: true } },
  { name: "compare 128K on 8 hosts", op: "compare", iterations: 500, request: { model: "llama-3.1-8b", contextTokens: 131_072, hosts: 8 } },
  { name: "recommend 128K, up to 8 hosts", op: "recommend", iterations: 50, request: { model: "llama-3.1-8b", contextTokens: 131_072, maxHosts: 8 } },
  { name: "recommend 1M, up to 64 hosts", op: "recommend", iterations: 10, request: { model: "llama-3-8b-1m", contextTokens: 1_048_576, maxHosts: 64 } },
];

function timeWasm(planner, c) {
  const call = () => planner[c.op](c.request);
  for (let i = 0; i < Math.min(20, c.iterations); i++) call(); // warm up the JIT
  const samples = [];
  for (let i = 0; i < c.iterations; i++) {
    const t = performance.now();
    call();
    samples.push((performance.now() - t) * 1000);
  }
  samples.sort((a, b) => a - b);
  return { meanUs: samples.reduce((a, b) => a + b, 0) / samples.length, medianUs: samples[samples.length >> 1], minUs: samples[0] };
}

function timeNative(c) {
  const input = JSON.stringify(Planner.wireInput(c.op, c.request));
  const r = spawnSync(NATIVE, ["bench", c.op, String(c.iterations)], { input: `${input}\n`, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`native bench failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const planner = await Planner.create();
const results = CASES.map((c) => {
  const wasm = timeWasm(planner, c);
  const native = timeNative(c);
  return { name: c.name, op: c.op, iterations: c.iterations, wasm, native: { meanUs: native.meanUs, minUs: native.minUs }, wasmOverNative: wasm.meanUs / native.meanUs };
});

const machine = { cpu: cpus()[0]?.model ?? "unknown", cores: cpus().length, node: process.version };
const date = new Date().toISOString().slice(0, 10);
mkdirSync(out, { recursive: true });
writeFileSync(new URL("planner.json", out), `${JSON.stringify({ date, machine, results }, null, 2)}\n`);

const ms = (us) => (us / 1000).toFixed(3);
const lines = [
  `# Planner benchmark (${date})`,
  "",
  `${machine.cpu}, ${machine.cores} cores, Node ${machine.node}. Mean of N calls after warm-up; wasm through the`,
  "TypeScript API (zod check and JSON both ways), native in-process in Rust (JSON both ways).",
  "",
  "| case | N | wasm mean ms | wasm median ms | native mean ms | wasm / native |",
  "|---|---:|---:|---:|---:|---:|",
  ...results.map((r) => `| ${r.name} | ${r.iterations} | ${ms(r.wasm.meanUs)} | ${ms(r.wasm.medianUs)} | ${ms(r.native.meanUs)} | ${r.wasmOverNative.toFixed(2)} |`),
  "",
  "Aims: plan() under 1 ms for 64 hosts, recommend() under 100 ms.",
];
writeFileSync(new URL("planner.md", out), `${lines.join("\n")}\n`);
console.log(lines.join("\n"));
