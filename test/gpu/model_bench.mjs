#!/usr/bin/env node
// apb's side of the whole-model benchmark, on a GPU host, after model_bench.py wrote OUTDIR
// (a Llama-3.1-8B-shaped model with random bf16 weights and transformers' timings):
//   - one GPU, full prefill at each length: time to first token (prefill + the query's pass),
//     tokens/s, peak memory, beside transformers (sdpa) measured on the same GPU;
//   - 8 hosts emulated on the GPU at 32K/64K/128K: the slowest host's prefill for apb, star,
//     ulysses and ring beside full on one host, with the planner's predictions for 8 of this GPU in
//     an NVLink node (the h200-nvlink profile on an H200, else h100-nvlink).
// Writes model-bench.json and model-bench.md to $OUT (or the current directory).
// usage: bundle/bin/node bundle/test/gpu/model_bench.mjs OUTDIR [--lengths 8192,32768,131072]
//          [--hosts-lengths 32768,65536,131072] [--strategies full,apb,star,ulysses,ring]
//          (apb runs its default, balanced blocks; apb-even the paper's even split; star-even
//          is star as it runs by default, named for symmetry) [--decode-tokens N]
//   With --decode-tokens N (and model_bench.py run with it): one GPU also generates N tokens
//   after each prefill, and the table gives decode ms per token beside transformers'.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Engine } from "@apb/native";
import { Planner } from "@apb/planner";
import { buildWeightSpec, readEngineConfig, readSafetensorsDir } from "@apb/runtime";

const outDir = process.argv[2];
const arg = (name, fallback) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : fallback);
const lengths = arg("--lengths", "8192,32768,131072").split(",").map(Number);
const hostLengths = arg("--hosts-lengths", "32768,65536,131072").split(",").map(Number);
const strategies = arg("--strategies", "full,apb,star,ulysses,ring").split(",");
const decodeTokens = Number(arg("--decode-tokens", "0"));
const HOSTS = 8;
const QUERY = 64;
const PREFIX = 1;
const GiB = 2 ** 30;

const hf = JSON.parse(readFileSync(join(outDir, "transformers.json"), "utf8"));
const PLANNER_HARDWARE = /H200/.test(hf.gpu) ? "h200-nvlink" : "h100-nvlink";
const dir = join(outDir, "model");
const config = await readEngineConfig(dir);
const tensors = buildWeightSpec(config, await readSafetensorsDir(dir));
let started = performance.now();
const engine = await Engine.load({ config: { ...config, ropeScaling: config.ropeScaling ?? undefined }, tensors, backend: "cuda" });
const loadS = (performance.now() - started) / 1e3;
console.log(JSON.stringify({ loaded: engine.backend, loadS, memory: engine.gpuMemory(false) }));

const randomIds = (n) => Array.from({ length: n }, () => 3 + Math.floor(Math.random() * (config.vocab - 3)));
// "apb-even" and "star-even" are apb and star with the paper's even split (`apb run
// --no-balanced`); plain apb and star run their defaults (apb balanced blocks, star even).
const EVEN = "-even";
const settingsOf = (strategy) => (strategy.endsWith(EVEN) ? { strategy: strategy.slice(0, -EVEN.length), balanced: false } : { strategy });
async function run(n, strategy, hosts, newTokens = 1) {
  const ids = randomIds(n);
  engine.gpuMemory(true);
  const r = await engine.generate({ context: ids.slice(0, -QUERY), prefixTokens: PREFIX, query: ids.slice(-QUERY), ...settingsOf(strategy), hosts, maxNewTokens: newTokens, stopTokens: [] });
  const memory = engine.gpuMemory(false);
  const slowest = r.hosts.reduce((a, b) => (b.prefillMs > a.prefillMs ? b : a));
  const comm = slowest.phasesMs.comm ?? 0;
  // Emulated hosts hand blocks over in place; comm is the copies around them. Compute alone is
  // what the host's GPU did; real hosts overlap NVLink/IB transfers with it.
  const compute = Math.max(...r.hosts.map((h) => h.prefillMs - (h.phasesMs.comm ?? 0)));
  // Each host runs the query pass over its own KV (merged by LSE), as real hosts do.
  const queryMs = Math.max(...r.hosts.map((h) => h.phasesMs.query ?? 0));
  const scoringMs = Math.max(...r.hosts.map((h) => h.phasesMs.scoring ?? 0));
  // Wall time from the first token to the last, per token after the first.
  const decodeMsPerToken = r.tokens.length > 1 ? (r.totalWallMs - r.firstTokenWallMs) / (r.tokens.length - 1) : undefined;
  return { tokens: n, strategy, hosts, decodeMsPerToken, phasesMs: slowest.phasesMs, prefillMs: slowest.prefillMs, slowestHost: slowest.host, commMs: comm, computeMs: compute, queryMs, scoringMs, ttftMs: slowest.prefillMs + queryMs, peakBytes: memory.peakBytes, wallMs: r.prefillWallMs };
}

await run(2048, "full", 1, decodeTokens > 0 ? 4 : 1); // warm-up: cuBLAS heuristics, module loads, the decode path
const single = [];
for (const n of lengths) {
  const r = await run(n, "full", 1, decodeTokens > 0 ? decodeTokens + 1 : 1);
  const peer = hf.prefill.find((p) => p.tokens === n);
  const row = { ...r, tokensPerS: (n / r.ttftMs) * 1e3, transformersMs: peer?.ms, transformersPeakBytes: peer?.peak_bytes, speedup: peer ? peer.ms / r.ttftMs : undefined, transformersDecodeMsPerToken: peer?.decode_ms_per_token };
  console.log(JSON.stringify(row));
  single.push(row);
}

const planner = await Planner.create(new URL("../../wasm/apb_plan.wasm", import.meta.url));
const multi = [];
// Ring last at each length, and the report rewritten after every row: emulated ring moves
// every block through host memory, so it is by far the slowest to run.
for (const n of hostLengths) {
  const predicted = planner.compare({ model: "llama-3.1-8b", contextTokens: n - QUERY, queryTokens: QUERY, hosts: HOSTS, hardware: PLANNER_HARDWARE });
  const full = single.find((s) => s.tokens === n) ?? (await run(n, "full", 1));
  for (const strategy of strategies) {
    const r = strategy === "full" ? full : await run(n, strategy, HOSTS);
    const plan = strategy.endsWith(EVEN)
      ? (() => {
          const p = planner.plan({ model: "llama-3.1-8b", contextTokens: n - QUERY, queryTokens: QUERY, hosts: HOSTS, hardware: PLANNER_HARDWARE, ...settingsOf(strategy) });
          const fullPlan = predicted.strategies.find((s) => s.strategy === "full");
          return { ...p, speedupVsFull: fullPlan?.summary ? fullPlan.summary.prefillMs / p.summary.prefillMs : undefined };
        })()
      : predicted.strategies.find((s) => s.strategy === r.strategy);
    const row = { ...r, speedupVsFull: full.prefillMs / r.prefillMs, computeSpeedupVsFull: full.computeMs / r.computeMs, plannedPrefillMs: plan?.summary.prefillMs, plannedSpeedupVsFull: plan?.speedupVsFull };
    console.log(JSON.stringify(row));
    multi.push(row);
    write();
  }
}

function write() {
  const date = new Date().toISOString().slice(0, 10);
  const report = { date, gpu: hf.gpu, transformers: hf.transformers, torch: hf.torch, layers: hf.layers, loadS, single, multi };
  const out = process.env.OUT ?? ".";
  writeFileSync(join(out, "model-bench.json"), JSON.stringify(report, null, 2));
  const f0 = (x) => (x === undefined ? "n/a" : x.toFixed(0));
  const f2 = (x) => (x === undefined ? "n/a" : x.toFixed(2));
  const lines = [
    `# Whole-model prefill on one GPU (${date}, ${hf.gpu}; transformers ${hf.transformers}, torch ${hf.torch})`,
    "",
    `Llama-3.1-8B-shaped model, ${hf.layers} layers, random bf16 weights, loaded from safetensors in ${loadS.toFixed(1)} s.`,
    "",
    "| tokens | apb TTFT ms | apb tokens/s | apb peak GiB | transformers ms | transformers peak GiB | apb / transformers |",
    "|---:|---:|---:|---:|---:|---:|---:|",
    ...single.map((r) => `| ${r.tokens} | ${f0(r.ttftMs)} | ${f0(r.tokensPerS)} | ${f2(r.peakBytes / GiB)} | ${f0(r.transformersMs)} | ${f2(r.transformersPeakBytes / GiB)} | ${f2(r.speedup)}x |`),
    "",
    ...(decodeTokens > 0
      ? [
          `Decode after each prefill: ${decodeTokens} greedy tokens, wall ms per token after the first (apb: generate's wall time; transformers: its forward on one token with the cache, synchronized).`,
          "",
          "| tokens | apb decode ms/token | transformers decode ms/token | apb / transformers |",
          "|---:|---:|---:|---:|",
          ...single.map((r) => `| ${r.tokens} | ${f2(r.decodeMsPerToken)} | ${f2(r.transformersDecodeMsPerToken)} | ${r.decodeMsPerToken && r.transformersDecodeMsPerToken ? f2(r.transformersDecodeMsPerToken / r.decodeMsPerToken) + "x" : "n/a"} |`),
          "",
        ]
      : []),
    `## ${HOSTS} hosts emulated on the GPU (each host's work timed alone; the slowest host)`,
    "",
    "Emulated hosts hand K/V blocks over in place on the GPU; comm is the copies around them (stacking received blocks), timed apart; compute is the slowest host's own GPU work. The planner's column predicts 8 real GPUs of this kind in an NVLink node (transfers included).",
    "",
    `| tokens | strategy | prefill ms (slowest host) | of which comm ms | compute ms (slowest) | passing score ms (slowest) | query pass ms (slowest) | TTFT ms | speedup vs full | compute speedup | planner prefill ms (${PLANNER_HARDWARE}, 8 GPUs) | planner speedup |`,
    "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...multi.map((r) => `| ${r.tokens} | ${r.strategy}${r.hosts > 1 ? ` x${r.hosts}` : ""} | ${f0(r.prefillMs)} | ${f0(r.commMs)} | ${f0(r.computeMs)} | ${f0(r.scoringMs)} | ${f0(r.queryMs)} | ${f0(r.ttftMs)} | ${f2(r.speedupVsFull)}x | ${f2(r.computeSpeedupVsFull)}x | ${f0(r.plannedPrefillMs)} | ${f2(r.plannedSpeedupVsFull)}x |`),
  ];
  writeFileSync(join(out, "model-bench.md"), lines.join("\n") + "\n");
}
write();
console.log(readFileSync(join(process.env.OUT ?? ".", "model-bench.md"), "utf8"));
