#!/usr/bin/env python3
"""Writes bpe-gguf-tokenizer.json: a small byte-level BPE (GGUF "gpt2") vocabulary and how llama.cpp
tokenizes a set of texts with it under each pre-tokenizer the runtime supports, for
gguf-tokenizer.test.ts. It checks that each `tokenizer.ggml.pre` means the same split there as here.

1. Trains a 900-token byte-level BPE with the `tokenizers` library on text written below.
2. For each pre-tokenizer name, writes the vocabulary as a GGUF (gguf's GGUFWriter) and tokenizes
   the texts with llama.cpp (llama-cpp-python, vocab_only; the format's own implementation), and
   with `tokenizers` given that pre-tokenizer as a tokenizer.json would state it (the models'
   own: GPT-2's ByteLevel; SmolLM's Digits + ByteLevel; Llama 3's and Qwen2's Split + ByteLevel,
   Llama 3's BPE ignoring merges for whole-token words). The script fails unless both agree.

Usage (Python 3.11):
    /tmp/tfenv/bin/pip install tokenizers gguf llama-cpp-python
    /tmp/tfenv/bin/python make-bpe-gguf-fixture.py
"""

import json
import sys
import tempfile
from pathlib import Path

CORPUS = """\
The tokenizer splits text into pieces that the model knows. Each piece has an id.
Hello world, hello there, hello again: the world says hello back to everyone.
I'm sure they'll say it's what we've done; THEY'LL SAY IT'S WHAT WE'VE DONE.
Numbers like 12345, 2024 and 3.14159 appear in text, as do dates such as 2024-06-01.
def tokenize(text):
    return [piece for piece in text.split()]
$price = 100; _private = True; x.y = z
Spaces matter: two  spaces, three   spaces, and a tab\tare different from one.
Newlines too.\n\nAnd paragraphs.\r\n
""" * 3

TEXTS = [
    "Hello world",
    "I'm sure they'll say it's what we've done",
    "I'M SURE THEY'LL SAY IT'S WHAT WE'VE DONE",
    "12345 and 1234567 and 3.14159",
    "2024-06-01",
    "$price = 100; _private = True",
    "two  spaces, three   spaces\tand a tab",
    "a \n\n b",
    "end.\n\nNext paragraph.\r\n",
    "   \n  x",
    "def tokenize(text):\n    return text.split()\n",
    "Unicode: café, naïve, Привет, 日本語, ½ ² ①",
    "emoji 😀👍🏽 and ZWJ 👩\u200d💻",
    "odd whitespace: a\u00a0b\u2009c\u3000d\u0085e\ufefff",
    "<|im_start|>user\nhi<|im_end|>\n",
    "",
]

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
PRE_NAMES = ["gpt-2", "smollm", "llama-bpe", "qwen2"]

LLAMA3_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def reference_tokenizer(trained, pre_name):
    """`trained` with the pre-tokenizer (and BPE options) a tokenizer.json states for this model family."""
    from tokenizers import Regex, Tokenizer, pre_tokenizers

    state = json.loads(trained.to_str())
    state["model"]["ignore_merges"] = pre_name == "llama-bpe"
    tokenizer = Tokenizer.from_str(json.dumps(state))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if pre_name == "gpt-2":
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif pre_name == "smollm":
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    else:
        split = LLAMA3_SPLIT if pre_name == "llama-bpe" else QWEN2_SPLIT
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(split), behavior="isolated"), byte_level])
    return tokenizer


def main() -> None:
    import gguf
    import llama_cpp
    import tokenizers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trained.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=900, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    trained.train_from_iterator(CORPUS.splitlines(keepends=True) + TEXTS, trainer=trainer)
    state = json.loads(trained.to_str())
    vocab = state["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.get)
    assert [vocab[t] for t in tokens] == list(range(len(tokens)))
    merges = [" ".join(m) if isinstance(m, list) else m for m in state["model"]["merges"]]
    types = [gguf.TokenType.CONTROL if t in SPECIALS else gguf.TokenType.NORMAL for t in tokens]

    work = Path(tempfile.mkdtemp(prefix="bpe-gguf-"))
    ids = {}
    for pre_name in PRE_NAMES:
        file = work / f"{pre_name}.gguf"
        writer = gguf.GGUFWriter(str(file), "llama")
        writer.add_context_length(256)
        writer.add_embedding_length(64)
        writer.add_block_count(1)
        writer.add_feed_forward_length(128)
        writer.add_head_count(4)
        writer.add_head_count_kv(4)
        writer.add_rope_dimension_count(16)
        writer.add_layer_norm_rms_eps(1e-5)
        writer.add_vocab_size(len(tokens))
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre_name)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(merges)
        writer.add_bos_token_id(vocab["<|im_start|>"])
        writer.add_eos_token_id(vocab["<|im_end|>"])
        writer.add_add_bos_token(False)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

        llama = llama_cpp.Llama(model_path=str(file), vocab_only=True, verbose=False)
        reference = reference_tokenizer(trained, pre_name)
        ids[pre_name] = []
        for text in TEXTS:
            got = llama.tokenize(text.encode("utf-8"), add_bos=False, special=True) if text else []
            expected = reference.encode(text, add_special_tokens=False).ids
            if got != expected:
                sys.exit(f"{pre_name}: llama.cpp and tokenizers disagree on {text!r}:\n  llama.cpp  {got}\n  tokenizers {expected}")
            ids[pre_name].append(got)

    distinct = {name: sum(ids[name][i] != ids["gpt-2"][i] for i in range(len(TEXTS))) for name in PRE_NAMES}
    fixture = {
        "comment": "Written by make-bpe-gguf-fixture.py: a byte-level BPE vocabulary as a GGUF stores it (tokenizer.ggml.pre left out), "
        "and encode(text) without special tokens under each pre-tokenizer, by llama.cpp and tokenizers (which agree).",
        "reference": [f"llama.cpp via llama-cpp-python {llama_cpp.__version__}", f"tokenizers {tokenizers.__version__}"],
        "metadata": {
            "tokenizer.ggml.model": "gpt2",
            "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.token_type": [int(t) for t in types],
            "tokenizer.ggml.merges": merges,
            "tokenizer.ggml.bos_token_id": vocab["<|im_start|>"],
            "tokenizer.ggml.eos_token_id": vocab["<|im_end|>"],
            "tokenizer.ggml.add_bos_token": False,
        },
        "texts": TEXTS,
        "ids": ids,
    }
    out = Path(__file__).with_name("bpe-gguf-tokenizer.json")
    out.write_text(json.dumps(fixture, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out} ({len(tokens)} tokens, {len(TEXTS)} texts; texts tokenized unlike gpt-2: {distinct})")


if __name__ == "__main__":
    main()
