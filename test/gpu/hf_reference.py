"""Reference models and outputs from Hugging Face transformers, for the CUDA backend's checks.

Builds random-initialised models with transformers from small configs (a Llama with head
dim 128 and llama3 RoPE scaling, a Qwen2 with head dim 64, QKV biases and tied embeddings),
saves each with save_pretrained (safetensors, bf16) into OUTDIR/<name>/, and writes
OUTDIR/<name>/reference.json: a fresh random prompt (ids), the last position's logits from
the bf16 model (attn_implementation "sdpa", as users run it) and from the same weights in
float32, and greedy continuations from both.

usage: python3 test/gpu/hf_reference.py OUTDIR [--prompt-tokens N]
"""
import json
import os
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

NEW_TOKENS = 8


def configs():
    common = dict(vocab_size=4096, num_hidden_layers=4, max_position_embeddings=16384, rms_norm_eps=1e-5,
                  initializer_range=0.05, bos_token_id=1, eos_token_id=2)
    llama = LlamaConfig(hidden_size=1024, intermediate_size=2816, num_attention_heads=8, num_key_value_heads=2,
                        head_dim=128, rope_theta=500000.0, tie_word_embeddings=False,
                        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0, "original_max_position_embeddings": 2048}, **common)
    qwen2 = Qwen2Config(hidden_size=896, intermediate_size=2432, num_attention_heads=14, num_key_value_heads=2,
                        rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False, **common)
    return [("llama", LlamaForCausalLM, llama), ("qwen2", Qwen2ForCausalLM, qwen2)]


def last_logits_and_greedy(model, ids):
    with torch.no_grad():
        logits = model(ids).logits[0, -1].float()
        out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False, min_new_tokens=NEW_TOKENS,
                             pad_token_id=0, eos_token_id=None)
    return logits.cpu().tolist(), out[0, ids.shape[1]:].cpu().tolist()


def main():
    out_dir = sys.argv[1]
    prompt_tokens = int(sys.argv[sys.argv.index("--prompt-tokens") + 1]) if "--prompt-tokens" in sys.argv else 1500
    torch.manual_seed(int(time.time()))
    for name, cls, config in configs():
        with torch.device("cuda"):
            model = cls(config).to(torch.bfloat16).eval()
        path = os.path.join(out_dir, name)
        model.save_pretrained(path, safe_serialization=True)
        del model
        # The references load the saved files as users do: from_pretrained keeps RoPE's
        # inv_freq in float32, while model.to(bfloat16) would have rounded it to bf16 too.
        load = lambda dtype: cls.from_pretrained(path, dtype=dtype, attn_implementation="sdpa").cuda().eval()
        ids = torch.randint(3, config.vocab_size, (1, prompt_tokens), device="cuda")
        model = load(torch.bfloat16)
        bf16_logits, bf16_greedy = last_logits_and_greedy(model, ids)
        model32 = load(torch.float32)
        f32_logits, f32_greedy = last_logits_and_greedy(model32, ids)
        ref = {"ids": ids[0].tolist(), "bf16_logits": bf16_logits, "f32_logits": f32_logits,
               "bf16_greedy": bf16_greedy, "f32_greedy": f32_greedy, "config": config.to_dict()}
        with open(os.path.join(path, "reference.json"), "w") as f:
            json.dump(ref, f)
        b, r = torch.tensor(bf16_logits), torch.tensor(f32_logits)
        print(json.dumps({"model": name, "params": sum(p.numel() for p in model.parameters()),
                          "hf_bf16_vs_f32_rel_err": ((b - r).norm() / r.norm()).item(),
                          "bf16_greedy": bf16_greedy, "f32_greedy": f32_greedy}))
        del model, model32
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
