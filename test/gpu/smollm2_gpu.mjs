#!/usr/bin/env node
// SmolLM2-135M-Instruct's GGUF on a GPU host, against Hugging Face transformers loading the
// same file (its own dequantization and Q/K un-permutation, through the `gguf` package):
// prompts of generated documents with a needle, tokenized by apb; transformers' float32
// last-position logits and 8 greedy tokens (hf_gguf_reference.py) beside apb's full attention
// on the CPU (float32) and on the GPU (bf16), and apb/star over 4 emulated hosts (approximate:
// reported as KL, not checked). Writes smollm2-check.json to $OUT; exits 1 if a check fails.
// usage: bundle/bin/node bundle/test/gpu/smollm2_gpu.mjs FILE.gguf [--lengths 1024,4096]
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateCase, klDivergence } from "@apb/eval";
import { agreeingPrefix, loadModel } from "@apb/runtime";
import { logitAgreement } from "@apb/runtime/testing";

const file = process.argv[2];
const arg = (name, fallback) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : fallback);
const lengths = arg("--lengths", "1024,4096").split(",").map(Number);
const here = dirname(fileURLToPath(import.meta.url));
const out = process.env.OUT ?? ".";
const NEW_TOKENS = 8;

const cpu = await loadModel(file, { backend: "cpu" });
const countTokens = (text) => cpu.dir.tokenizer.encode(text, { addSpecialTokens: false }).length;
const cases = lengths.map((length, i) => generateCase({ task: "needle-number", length, depth: 0.4, seed: 100 + i, countTokens }));
const prompts = cases.map((c) => {
  const p = cpu.tokenize(c.document, c.query);
  return [...p.prefix, ...p.document, ...p.query];
});
writeFileSync(join(out, "prompts.json"), JSON.stringify({ prompts }));
const started = performance.now();
const py = spawnSync("python3", [join(here, "hf_gguf_reference.py"), file, join(out, "prompts.json"), join(out, "hf.json")], { stdio: "inherit" });
if (py.status !== 0) process.exit(1);
const hf = JSON.parse(readFileSync(join(out, "hf.json"), "utf8"));
console.log(JSON.stringify({ transformers: hf.transformers, seconds: (performance.now() - started) / 1e3 }));

const cuda = await loadModel(file, { backend: "cuda" });
const results = { date: new Date().toISOString().slice(0, 10), transformers: hf.transformers, rows: [] };
let failures = 0;
// float32 on the CPU: the same arithmetic up to summation order; bf16 weights and activations on the GPU.
const BOUNDS = { cpu: 1e-3, cuda: 6e-2 };
for (const [i, c] of cases.entries()) {
  const ref = Float32Array.from(hf.results[i].logits);
  const runs = [
    ["cpu", cpu, "full", 1],
    ["cuda", cuda, "full", 1],
    ["cuda", cuda, "apb", 4],
    ["cuda", cuda, "star", 4],
  ];
  for (const [backend, model, strategy, hosts] of runs) {
    const g = await model.generate({ document: c.document, query: c.query, strategy, hosts, maxTokens: NEW_TOKENS, stopTokenIds: [] });
    const a = logitAgreement(g.firstLogits, ref);
    const row = {
      promptTokens: prompts[i].length,
      backend,
      strategy,
      hosts,
      relativeError: a.relativeError,
      sameTop1: a.sameTop1,
      kl: klDivergence(ref, g.firstLogits),
      greedyAgree: `${agreeingPrefix(g.tokens, hf.results[i].greedy)}/${NEW_TOKENS}`,
      text: g.text,
    };
    if (strategy === "full") {
      row.ok = a.sameTop1 && a.relativeError < BOUNDS[backend];
      if (!row.ok) failures += 1;
    }
    results.rows.push(row);
    console.log(JSON.stringify(row));
  }
}
writeFileSync(join(out, "smollm2-check.json"), `${JSON.stringify(results, null, 2)}\n`);
console.log(failures === 0 ? "smollm2 check: all full-attention runs agree with transformers" : `smollm2 check: ${failures} FAILED`);
process.exit(failures === 0 ? 0 : 1);
