#!/usr/bin/env python3
"""Writes spm-gguf-tokenizer.json: a small SentencePiece (GGUF "llama") vocabulary and how the
references tokenize a set of texts with it, for gguf-tokenizer.test.ts.

1. Trains a tiny SentencePiece BPE model (byte fallback, Llama's settings: no normalization, no
   collapsing of whitespace, a dummy "▁" prefix) on text written below.
2. Writes it as a GGUF with gguf's GGUFWriter, the way llama.cpp's converter does (tokens, scores,
   token types, special ids), and reads the vocabulary back from that file.
3. Tokenizes each text with SentencePiece itself, with transformers' GGUF path
   (AutoTokenizer.from_pretrained(dir, gguf_file=...)) and, when llama-cpp-python is installed,
   with llama.cpp; the script fails unless they agree where they should:
   - SentencePiece and llama.cpp on every text without added tokens (<s>, </s>, <think>);
   - transformers too, except on text that starts with a space: its Metaspace pre-tokenizer
     (prepend_scheme "first") adds no "▁" there, SentencePiece and llama.cpp do;
   - text with added tokens: only llama.cpp matches them in text; it prefixes the text after one
     with "▁" (as the runtime does), transformers does not.

Usage (Python 3.11):
    /tmp/tfenv/bin/pip install transformers tokenizers torch gguf sentencepiece [llama-cpp-python]
    /tmp/tfenv/bin/python make-spm-gguf-fixture.py
"""

import json
import sys
import tempfile
from pathlib import Path

CORPUS = """\
The tokenizer splits text into pieces that the model knows. Each piece has an id.
Hello world, hello there, hello again: the world says hello back to everyone.
A long document is spread over several hosts; each host reads its part of the prompt.
The query comes last, after the document, and the model answers it.
Numbers like 12345, 2024 and 3.14159 appear in text, as do dates such as 2024-06-01.
def tokenize(text):
    return [piece for piece in text.split()]
Spaces matter: two  spaces, three   spaces, and a tab\tare different from one.
Newlines too.
Some words repeat: tokenizer tokenizer tokenizer, model model, prompt prompt prompt.
The quick brown fox jumps over the lazy dog while the dog sleeps in the sun.
Attention is computed in blocks, and each block passes its state to the next one.
""" * 3

TEXTS = [
    "Hello world",
    "hello world, hello there",
    "The tokenizer splits text into pieces.",
    " a leading space",
    "   three leading spaces",
    "trailing spaces   ",
    "two  spaces and three   spaces",
    "tab\tand\nnewline\n\n",
    "12345 and 3.14159",
    "def tokenize(text):\n    return text.split()",
    "unknown letters: café, naïve, Zürich",
    "日本語 and emoji 😀👍",
    "xyzzy qwv jjj",
    "",
    "a<think>b",
    "<s>Hello world</s>",
]

ADDED = ("<s>", "</s>", "<think>")


def main() -> None:
    import gguf
    import sentencepiece as spm
    import tokenizers
    import transformers
    from transformers import AutoTokenizer

    work = Path(tempfile.mkdtemp(prefix="spm-gguf-"))
    (work / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(work / "corpus.txt"),
        model_prefix=str(work / "spm"),
        model_type="bpe",
        vocab_size=600,
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        split_digits=False,
        user_defined_symbols=["<think>"],
        character_coverage=1.0,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=str(work / "spm.model"))

    # The vocabulary as llama.cpp's converter (_set_vocab_sentencepiece) writes it.
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif sp.is_control(i):
            types.append(gguf.TokenType.CONTROL)
        elif sp.is_unused(i):
            types.append(gguf.TokenType.UNUSED)
        elif sp.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        elif tokens[-1] == "<think>":
            types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)

    file = work / "spm.gguf"
    writer = gguf.GGUFWriter(str(file), "llama")
    # Enough hyperparameters for transformers to rebuild a config (the file has no tensors).
    writer.add_context_length(256)
    writer.add_embedding_length(64)
    writer.add_block_count(1)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    writer.add_rope_dimension_count(16)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(sp.bos_id())
    writer.add_eos_token_id(sp.eos_id())
    writer.add_unk_token_id(sp.unk_id())
    writer.add_add_bos_token(True)
    writer.add_add_space_prefix(True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    # The metadata as the runtime will see it, read back from the file.
    reader = gguf.GGUFReader(str(file))
    metadata = {key: field.contents() for key, field in reader.fields.items() if key.startswith("tokenizer.")}

    # SentencePiece itself: the vocabulary's own tokenizer. It knows nothing of added tokens in
    # text (it would spell "<s>" out), so only texts without them.
    bos = sp.bos_id()
    plain = [not any(token in text for token in ADDED) for text in TEXTS]
    sentencepiece_ids = [[bos] + sp.encode(text) if ok else None for text, ok in zip(TEXTS, plain)]
    checked_by = [f"sentencepiece {spm.__version__}"]

    # transformers' GGUF path: LlamaTokenizer, whose Metaspace (prepend_scheme "first") adds no "▁"
    # to text that starts with a space, and none after an added token; SentencePiece and llama.cpp
    # add one to both. Recorded, and checked on the texts where that cannot matter.
    reference = AutoTokenizer.from_pretrained(str(work), gguf_file=file.name)
    transformers_ids = [reference(text, add_special_tokens=True)["input_ids"] for text in TEXTS]
    for text, own, theirs in zip(TEXTS, sentencepiece_ids, transformers_ids):
        if own is not None and not text.startswith(" ") and own != theirs:
            sys.exit(f"SentencePiece and transformers disagree on {text!r}:\n  sentencepiece {own}\n  transformers  {theirs}")
    checked_by.append(f"transformers {transformers.__version__} (tokenizers {tokenizers.__version__}) where it adds the same prefix space")

    llama_cpp_ids = None
    try:
        import llama_cpp
    except ImportError:
        print("llama-cpp-python is not installed: no llama.cpp ids for the texts with added tokens", file=sys.stderr)
    else:
        llama = llama_cpp.Llama(model_path=str(file), vocab_only=True, verbose=False)
        llama_cpp_ids = [llama.tokenize(text.encode("utf-8"), add_bos=True, special=True) for text in TEXTS]
        for text, own, theirs in zip(TEXTS, sentencepiece_ids, llama_cpp_ids):
            if own is not None and own != theirs:
                sys.exit(f"SentencePiece and llama.cpp disagree on {text!r}:\n  sentencepiece {own}\n  llama.cpp     {theirs}")
        checked_by.append(f"llama.cpp via llama-cpp-python {llama_cpp.__version__}")

    fixture = {
        "comment": "Written by make-spm-gguf-fixture.py: a SentencePiece vocabulary as a GGUF stores it, and encode(text) with special tokens "
        "by SentencePiece (texts without added tokens), llama.cpp (all, when it was installed) and transformers (which differs on leading spaces).",
        "reference": checked_by,
        "metadata": metadata,
        "texts": TEXTS,
        "sentencepiece_ids": sentencepiece_ids,
        "llama_cpp_ids": llama_cpp_ids,
        "transformers_ids": transformers_ids,
    }
    out = Path(__file__).with_name("spm-gguf-tokenizer.json")
    out.write_text(json.dumps(fixture, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out} ({len(tokens)} tokens, {len(TEXTS)} texts; references: {', '.join(checked_by)})")


if __name__ == "__main__":
    main()
