"""Logits from Hugging Face transformers loading a GGUF file (its own dequantization, via the
`gguf` package, and its own undoing of llama.cpp's Q/K permutation): the independent reference
for apb's GGUF loader on a real model.

Reads PROMPTS_JSON ({"prompts": [[ids...], ...]}) and writes OUT_JSON with, per prompt, the
last position's logits in float32 and 8 greedy tokens.

usage: python3 test/gpu/hf_gguf_reference.py FILE.gguf PROMPTS_JSON OUT_JSON
"""
import json
import os
import sys
import time

import torch
from transformers import AutoModelForCausalLM

NEW_TOKENS = 8


def main():
    gguf_path, prompts_path, out_path = sys.argv[1:4]
    started = time.time()
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(gguf_path)), gguf_file=os.path.basename(gguf_path),
                                                 dtype=torch.float32, attn_implementation="eager").cuda().eval()
    load_s = time.time() - started
    prompts = json.load(open(prompts_path))["prompts"]
    results = []
    for ids in prompts:
        x = torch.tensor([ids], device="cuda")
        with torch.no_grad():
            logits = model(x).logits[0, -1].float()
            out = model.generate(x, max_new_tokens=NEW_TOKENS, do_sample=False, min_new_tokens=NEW_TOKENS, pad_token_id=0, eos_token_id=None)
        results.append({"logits": logits.cpu().tolist(), "greedy": out[0, len(ids):].cpu().tolist()})
    json.dump({"transformers": __import__("transformers").__version__, "loadSeconds": load_s, "results": results}, open(out_path, "w"))


if __name__ == "__main__":
    main()
