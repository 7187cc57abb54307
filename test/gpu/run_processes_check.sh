#!/usr/bin/env bash
# `apb run --processes --backend cuda` as a user runs it on a machine with 2+ GPUs: for each
# strategy, the same prompt on 2 emulated hosts (one GPU) and on 2 worker processes (one per
# GPU, NCCL) must give the same tokens and first-token logits; prints both runs' summary
# lines (time to first token, per-host decode time) for comparison.
# usage: bash bundle/test/gpu/run_processes_check.sh MODELDIR (a directory with tokenizer.json,
#        e.g. one of hf_reference.py's after hosts_gpu.mjs --check has added a tokenizer)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
apb="$here/../../bin/apb"
node="$here/../../bin/node"
model="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$node" -e 'const w=["lantern","ledger","harbor","violet","copper","meadow","signal","orbit"];let s="";for(let i=0;i<3000;i++)s+=w[(i*7+Math.floor(i/5))%w.length]+" ";process.stdout.write(s)' > "$work/doc.txt"
failures=0
for strategy in apb star ring ring-zigzag; do
  common=(run --model "$model" --prompt-file "$work/doc.txt" --query "Which word comes first?" --backend cuda --strategy "$strategy" --hosts 2 --max-tokens 128 --ignore-eos)
  "$apb" "${common[@]}" --logits-out "$work/e.f32" --json > "$work/e.json"
  "$apb" "${common[@]}" --logits-out "$work/p.f32" --json --processes > "$work/p.json"
  "$node" -e '
    const fs = require("fs");
    const [e, p] = ["e", "p"].map((k) => JSON.parse(fs.readFileSync(process.argv[1] + "/" + k + ".json")));
    const [le, lp] = ["e", "p"].map((k) => { const b = fs.readFileSync(process.argv[1] + "/" + k + ".f32"); return new Float32Array(b.buffer, b.byteOffset, b.length / 4); });
    let num = 0, den = 0; for (let i = 0; i < le.length; i++) { num += (lp[i] - le[i]) ** 2; den += le[i] ** 2; }
    const rel = Math.sqrt(num / den), same = JSON.stringify(e.tokens) === JSON.stringify(p.tokens);
    const decode = (g) => g.timings.hosts.map((h) => (h.phasesMs.decode / Math.max(1, g.tokens.length - 1)).toFixed(2));
    console.log(JSON.stringify({ strategy: process.argv[2], sameTokens: same, relErr: rel, tokens: p.tokens.length,
      emulated: { prefillMs: e.timings.prefillMs, totalWallMs: e.timings.totalWallMs, decodeMsPerTokenPerHost: decode(e) },
      processes: { prefillMs: p.timings.prefillMs, firstTokenWallMs: p.timings.firstTokenWallMs, totalWallMs: p.timings.totalWallMs, decodeMsPerTokenPerHost: decode(p) }, pass: same && rel < 2e-2 }));
    process.exit(same && rel < 2e-2 ? 0 : 1);
  ' "$work" "$strategy" || failures=$((failures + 1))
done
echo "{\"failures\": $failures}"
exit $failures
