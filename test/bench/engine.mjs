#!/usr/bin/env node
// CPU prefill: tokens/s for a tiny model and a ~100M-parameter model at 2K and 8K tokens,
// full attention on one host vs APB over 4 emulated hosts, in the same run. APB's time is
// its slowest host's own prefill work (emulated hosts take turns on this machine), which is
// what 4 real hosts would wait for. Writes bench/results/engine-cpu.json and .md.
import { mkdirSync, existsSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { loadModel } from "@apb/runtime";
import { writeTinyModel } from "@apb/runtime/testing";

const out = new URL("../../bench/results/", import.meta.url);
const MODELS = [
  { name: "tiny (2 layers, hidden 64)", options: { layers: 2, hidden: 64, heads: 4, kvHeads: 2, intermediate: 128, vocab: 512, dtype: "float32" } },
  { name: "~100M (12 layers, hidden 768, 12/4 heads, vocab 32000, tied)", options: { layers: 12, hidden: 768, heads: 12, kvHeads: 4, intermediate: 2048, vocab: 32000, tiedEmbeddings: true, dtype: "bfloat16" } },
];
const LENGTHS = [2048, 8192];
const HOSTS = 4;
const SENTENCE = "The archive holds letters, maps and ledgers from the old harbour town. ";

/** A document of about `tokens` tokens under this model's tokenizer. */
function documentOf(model, tokens) {
  const perSentence = model.tokenize(SENTENCE, "q").document.length;
  return SENTENCE.repeat(Math.max(1, Math.round(tokens / perSentence)));
}

function parameters(c) {
  const layer = c.hidden * c.heads * c.headDim * 2 + 2 * c.hidden * c.kvHeads * c.headDim + 3 * c.hidden * c.intermediate + 2 * c.hidden;
  return c.vocab * c.hidden * (c.tiedEmbeddings ? 1 : 2) + c.layers * layer + c.hidden;
}

const results = [];
for (const m of MODELS) {
  const dir = join(tmpdir(), `apb-bench-${m.options.layers}x${m.options.hidden}`);
  if (!existsSync(join(dir, "config.json"))) await writeTinyModel(dir, { ...m.options, seed: 3, maxPositions: 65536 });
  const model = await loadModel(dir);
  const params = parameters(model.dir.config);
  for (const length of LENGTHS) {
    const document = documentOf(model, length);
    const query = "Which town do the letters come from?";
    const row = { model: m.name, parameters: params, targetTokens: length };
    for (const [label, strategy, hosts] of [["full", "full", 1], ["apb", "apb", HOSTS]]) {
      const g = await model.generate({ document, query, strategy, hosts, maxTokens: 1 });
      const tokens = g.promptTokens.prefix + g.promptTokens.document;
      row.contextTokens = tokens;
      row[label] = {
        hosts: g.layout.hosts,
        anchorTokens: g.layout.anchorTokens,
        passingTokens: g.layout.passingTokens,
        prefillMs: g.timings.prefillMs,
        tokensPerS: tokens / (g.timings.prefillMs / 1000),
        wallMs: g.timings.prefillWallMs,
      };
      console.error(`${m.name} ${tokens} tokens ${label}: ${g.timings.prefillMs.toFixed(0)} ms`);
    }
    row.apbSpeedup = row.full.prefillMs / row.apb.prefillMs;
    results.push(row);
  }
}

const machine = { cpu: cpus()[0]?.model ?? "unknown", cores: cpus().length, node: process.version };
const date = new Date().toISOString().slice(0, 10);
mkdirSync(out, { recursive: true });
writeFileSync(new URL("engine-cpu.json", out), `${JSON.stringify({ date, machine, hosts: HOSTS, results }, null, 2)}\n`);
const f = (x) => x.toFixed(0);
const lines = [
  `# CPU prefill benchmark (${date})`,
  "",
  `${machine.cpu}, ${machine.cores} cores, Node ${machine.node}. Random weights; byte-level tokenizer. APB over ${HOSTS} emulated`,
  "hosts: prefill time is the slowest host's own work (hosts take turns on this machine); wall time is all hosts in turn.",
  "",
  "| model | params | context tokens | full ms | full tok/s | apb ms (slowest host) | apb tok/s | apb l_a / l_p | apb wall ms | apb speedup |",
  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ...results.map(
    (r) =>
      `| ${r.model} | ${(r.parameters / 1e6).toFixed(1)}M | ${r.contextTokens} | ${f(r.full.prefillMs)} | ${f(r.full.tokensPerS)} | ${f(r.apb.prefillMs)} | ${f(r.apb.tokensPerS)} | ${r.apb.anchorTokens} / ${r.apb.passingTokens} | ${f(r.apb.wallMs)} | ${r.apbSpeedup.toFixed(2)}x |`,
  ),
];
writeFileSync(new URL("engine-cpu.md", out), `${lines.join("\n")}\n`);
console.log(lines.join("\n"));
