#!/bin/sh
# The eval on GPUs: `apb eval` at 2K, 4K and ~8K tokens (8000: the document, the query and the
# answer must fit SmolLM2's 8192 positions), full/apb/star/ring on 2, 4 and 8 emulated hosts,
# CASES per cell. A case is launch-bound on a 135M model (the GPU mostly waits for the host),
# so one process per (length, host count) runs side by side, spread over the GPUs; each
# writes eval-LENGTH-hHOSTS.json and .txt to $OUT. Prefill times in them are taken with the
# processes sharing GPUs: read accuracy from them, not speed.
# usage: sh bundle/test/gpu/eval_gpu.sh MODEL [CASES] [LIMIT_SECONDS]
model=$1
cases=${2:-56}
limit=${3:-540}
here=$(cd "$(dirname "$0")/../.." && pwd)
gpus=$(nvidia-smi --list-gpus | wc -l)
out=${OUT:-.}
i=0
for job in 2048:2 2048:4 2048:8 8000:2 8000:4 4096:2 4096:4 4096:8 8000:8; do
  length=${job%%:*}
  hosts=${job##*:}
  gpu=$((i < 5 ? 0 : 1))
  [ "$gpus" -lt 2 ] && gpu=0
  CUDA_VISIBLE_DEVICES=$gpu timeout "$limit" "$here/bin/apb" eval --model "$model" --backend cuda --lengths "$length" --hosts "$hosts" \
    --strategies full,apb,star,ring --cases "$cases" --seed 2026 --out "$out/eval-$length-h$hosts.json" > "$out/eval-$length-h$hosts.txt" 2> "$out/eval-$length-h$hosts.log" &
  i=$((i + 1))
done
wait
ls "$out"
