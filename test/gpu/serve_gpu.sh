#!/bin/sh
# apb serve under load on a GPU host, from the bundle: the same 200 requests from 16 clients
# against full attention on one GPU (the peer) and, where the machine has more than one GPU,
# APB on all of them, one host per GPU, in one run. Writes bench/results-style JSON and markdown to $OUT (or ./).
#
#   sh bundle/test/gpu/serve_gpu.sh MODEL [DOCUMENT_TOKENS] [GPUS]
set -e
here="$(CDPATH= cd -- "$(dirname -- "$0")/../.." && pwd -P)"
model="$1"
tokens="${2:-7000}"
gpus="${3:-$(nvidia-smi -L | wc -l)}"
out="${OUT:-.}"
export NCCL_NVLS_ENABLE=0
run() {
  "$here/bin/node" "$here/bench/serve-load.mjs" --cli "$here/bin/apb" --out "$out" --model "$model" --backend cuda \
    --requests 200 --concurrency 16 --max-queue 64 --max-tokens 32 --document-tokens "$tokens" "$@"
}
run --hosts 1 --strategy full --label "cuda-full-1gpu"
if [ "$gpus" -gt 1 ]; then run --hosts "$gpus" --strategy apb --label "cuda-apb-${gpus}gpu"; fi
