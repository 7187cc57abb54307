"""transformers' side of the whole-model benchmark, on a GPU host.

Builds a Llama-3.1-8B-shaped model (random weights, bf16, 32 layers) with transformers on
the GPU, times its prefill with attn_implementation "sdpa" at each length (one forward over
the prompt, keeping the KV cache and only the last logits, as serving does), records peak
memory, then saves the model (safetensors) to OUTDIR/model for apb's side
(model_bench.mjs). With --decode-tokens N it also times N greedy decode steps after each
prefill (the forward on one token with the cache, as generate runs them). Writes
OUTDIR/transformers.json.

usage: python3 test/gpu/model_bench.py OUTDIR [--lengths 8192,32768,131072] [--layers 32] [--decode-tokens N]
"""
import json
import os
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def decode_ms(model, ids, steps):
    """Milliseconds per greedy decode step after a prefill of `ids` (wall time, synchronized)."""
    out = model(ids, logits_to_keep=1, use_cache=True)
    past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
    del out
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        out = model(token, past_key_values=past, use_cache=True)
        past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
    token.item()
    ms = (time.perf_counter() - t) * 1e3 / steps
    del past, out
    torch.cuda.empty_cache()
    return ms


def main():
    out_dir = sys.argv[1]
    lengths = [int(x) for x in arg("--lengths", "8192,32768,131072").split(",")]
    layers = int(arg("--layers", "32"))
    decode_tokens = int(arg("--decode-tokens", "0"))
    config = LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=layers,
                         num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072,
                         rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False, bos_token_id=128000,
                         eos_token_id=128001, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                           "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
    torch.manual_seed(int(time.time()))
    t = time.time()
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    attn = getattr(model.config, "_attn_implementation", None)  # sdpa is transformers' default
    init_s = time.time() - t
    results = []
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with torch.no_grad():
        warm = torch.randint(3, config.vocab_size, (1, 2048), device="cuda")
        model(warm, logits_to_keep=1)  # warm-up
        if decode_tokens > 0:
            decode_ms(model, warm, 4)
        for n in lengths:
            ids = torch.randint(3, config.vocab_size, (1, n), device="cuda")
            times = []
            for _ in range(2 if n <= 32768 else 1):
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                start.record()
                out = model(ids, logits_to_keep=1, use_cache=True)
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
                del out
            ms = sorted(times)[len(times) // 2]
            row = {"tokens": n, "ms": ms, "tokens_per_s": n / ms * 1e3, "peak_bytes": torch.cuda.max_memory_allocated()}
            if decode_tokens > 0:
                row["decode_ms_per_token"] = decode_ms(model, ids, decode_tokens)
            print(json.dumps(row), flush=True)
            results.append(row)
    t = time.time()
    path = os.path.join(out_dir, "model")
    model.save_pretrained(path, safe_serialization=True, max_shard_size="4GB")
    save_s = time.time() - t
    report = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "transformers": __import__("transformers").__version__,
              "layers": layers, "attn_implementation": attn, "init_s": init_s, "save_s": save_s, "prefill": results}
    with open(os.path.join(out_dir, "transformers.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps({"init_s": init_s, "save_s": save_s}))


if __name__ == "__main__":
    main()
