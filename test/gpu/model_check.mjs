#!/usr/bin/env node
// The CUDA backend of the whole model, on a GPU host (run from the bundle after
// hf_reference.py has written OUTDIR):
//   - against Hugging Face transformers: logits of the full prefill (relative error against
//     the float32 reference, beside transformers' own bf16 error) and greedy tokens;
//   - against the CPU backend, every strategy (full, apb, star, ring over 4 emulated hosts;
//     ulysses over as many as share the model's heads, 4 or 2);
//   - apb with anchor 0 and passing = the whole block equals full, and ulysses equals full,
//     on CUDA as on CPU.
// usage: bundle/bin/node bundle/test/gpu/model_check.mjs OUTDIR
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Engine } from "@apb/native";
import { buildWeightSpec, readEngineConfig, readSafetensorsDir } from "@apb/runtime";

const outDir = process.argv[2];
const QUERY = 20;
const PREFIX = 8;

function relErr(got, want) {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i += 1) {
    num += (got[i] - want[i]) ** 2;
    den += want[i] ** 2;
  }
  return Math.sqrt(num / den);
}

const argmax = (v) => v.reduce((best, x, i) => (x > v[best] ? i : best), 0);
const agreeing = (a, b) => {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n += 1;
  return n;
};

async function load(dir, backend) {
  const config = await readEngineConfig(dir);
  const tensors = buildWeightSpec(config, await readSafetensorsDir(dir));
  return Engine.load({ config: { ...config, ropeScaling: config.ropeScaling ?? undefined }, tensors, backend });
}

function request(ids, strategy, hosts, extra = {}) {
  return { context: ids.slice(0, -QUERY), prefixTokens: PREFIX, query: ids.slice(-QUERY), strategy, hosts, maxNewTokens: 8, stopTokens: [], ...extra };
}

let failed = 0;
function report(row, pass) {
  if (!pass) failed += 1;
  console.log(JSON.stringify({ ...row, pass }));
}

for (const name of ["llama", "qwen2"]) {
  const dir = join(outDir, name);
  const ref = JSON.parse(readFileSync(join(dir, "reference.json"), "utf8"));
  const [cuda, cpu] = [await load(dir, "cuda"), await load(dir, "cpu")];
  const full = await cuda.generate(request(ref.ids, "full", 1));
  const logits = Array.from(full.firstLogits);
  const hfOwn = relErr(ref.bf16_logits, ref.f32_logits);
  const ours = relErr(logits, ref.f32_logits);
  // bf16 tolerance: within 1e-2 of the float32 reference, or no worse than twice transformers' own bf16 error.
  report({ model: name, check: "full prefill logits vs transformers float32", relErr: ours, transformersBf16RelErr: hfOwn, vsTransformersBf16: relErr(logits, ref.bf16_logits) }, ours < Math.max(1e-2, 2 * hfOwn));
  const first = argmax(logits) === argmax(ref.f32_logits);
  report({ model: name, check: "greedy tokens vs transformers", ours: full.tokens, transformersBf16: ref.bf16_greedy, transformersF32: ref.f32_greedy, agreeWithF32: agreeing(full.tokens, ref.f32_greedy), agreeWithBf16: agreeing(full.tokens, ref.bf16_greedy) }, first);
  // bf16 (CUDA) against f32 (CPU): as close as transformers' bf16 is to its own float32 (2x
  // margin). APB picks its passing tokens by a top-k over scores, which bf16 rounding can
  // reorder near the cut, so it gets a looser bound and must agree on the first token.
  const bf16Bound = Math.max(2e-2, 2 * hfOwn);
  // Ulysses splits the heads over its hosts: 4 where they share this model's heads (Llama's
  // 8 over 2 KV heads), else 2 (Qwen2's 14).
  const hc = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  const shares = (h) => hc.num_attention_heads % h === 0 && (hc.num_key_value_heads % h === 0 || h % hc.num_key_value_heads === 0);
  const ulyssesHosts = [4, 2].find(shares) ?? 1;
  for (const strategy of ["full", "apb", "star", "ring", "ulysses"]) {
    const hosts = strategy === "full" ? 1 : strategy === "ulysses" ? ulyssesHosts : 4;
    const [g, c] = [await cuda.generate(request(ref.ids, strategy, hosts)), await cpu.generate(request(ref.ids, strategy, hosts))];
    const e = relErr(Array.from(g.firstLogits), Array.from(c.firstLogits));
    // A first token that differs must be a near tie in the CPU's own logits: within the
    // measured bf16 difference (relErr x RMS of the logits) of its top choice.
    const cpuLogits = Array.from(c.firstLogits);
    const rms = Math.sqrt(cpuLogits.reduce((a, x) => a + x * x, 0) / cpuLogits.length);
    const gap = cpuLogits[c.tokens[0]] - cpuLogits[g.tokens[0]];
    const firstOk = g.tokens[0] === c.tokens[0] || gap <= 2 * e * rms;
    const pass = strategy === "apb" ? e < 0.25 && firstOk : e < bf16Bound;
    report({ model: name, check: `cuda vs cpu, ${strategy} over ${hosts} hosts`, relErr: e, bound: strategy === "apb" ? 0.25 : bf16Bound, firstTokenGap: gap, cudaTokens: g.tokens, cpuTokens: c.tokens, agree: agreeing(g.tokens, c.tokens) }, pass);
  }
  for (const [label, engine] of [["cuda", cuda], ["cpu", cpu]]) {
    const probe = await engine.generate(request(ref.ids, "apb", 4));
    const apbAsFull = await engine.generate(request(ref.ids, "apb", 4, { anchorTokens: 0, passingTokens: probe.blockTokens, balanced: false }));
    const fullHere = await engine.generate(request(ref.ids, "full", 1));
    const e = relErr(Array.from(apbAsFull.firstLogits), Array.from(fullHere.firstLogits));
    report({ model: name, check: `${label}: apb with l_a = 0, l_p = l_b equals full`, relErr: e, blockTokens: probe.blockTokens }, e < (label === "cpu" ? 1e-4 : bf16Bound));
    // Ulysses is exact: only which host computes which head changes.
    const ulysses = await engine.generate(request(ref.ids, "ulysses", ulyssesHosts));
    const eu = relErr(Array.from(ulysses.firstLogits), Array.from(fullHere.firstLogits));
    report({ model: name, check: `${label}: ulysses over ${ulyssesHosts} hosts equals full`, relErr: eu, ulyssesTokens: ulysses.tokens, fullTokens: fullHere.tokens }, eu < (label === "cpu" ? 1e-4 : bf16Bound));
  }
}
process.exit(failed ? 1 : 0);
