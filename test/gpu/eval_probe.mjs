#!/usr/bin/env node
// Where an eval case's time goes on this machine: making the cases, prefill only (one new
// token), and prefill plus 32 decoded tokens, for full attention and for APB over 8 hosts.
// usage: bundle/bin/node bundle/test/gpu/eval_probe.mjs MODEL [--backend cuda] [--length 8000]
import { generateCases } from "@apb/eval";
import { loadModel } from "@apb/runtime";

const arg = (name, fallback) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : fallback);
const length = Number(arg("--length", "8000"));
let t = performance.now();
const lap = () => {
  const now = performance.now();
  const ms = now - t;
  t = now;
  return Math.round(ms);
};
const model = await loadModel(process.argv[2], { backend: arg("--backend", "cuda") });
console.log(JSON.stringify({ loadMs: lap() }));
const countTokens = (text) => model.dir.tokenizer.encode(text, { addSpecialTokens: false }).length;
const [c] = generateCases({ length, count: 1, seed: 1, countTokens });
console.log(JSON.stringify({ caseMs: lap() }));
for (const [strategy, hosts] of [["full", 1], ["apb", 8], ["full", 1], ["apb", 8]]) {
  for (const maxTokens of [1, 32]) {
    lap();
    const g = await model.generate({ document: c.document, query: c.query, strategy, hosts, maxTokens, stopTokenIds: [] });
    console.log(JSON.stringify({ strategy, hosts, maxTokens, wallMs: lap(), prefillMs: Math.round(g.timings.prefillMs), prefillWallMs: Math.round(g.timings.prefillWallMs), totalWallMs: Math.round(g.timings.totalWallMs), phasesMs: g.timings.hosts.at(-1).phasesMs }));
  }
}
