#!/usr/bin/env python3
"""Writes smollm2-tokenizer.json: how the reference tokenizes a set of texts with the tokenizer of
the SmolLM2-135M-Instruct GGUF, for gguf-tokenizer.test.ts to compare the runtime's against.

The reference is transformers' own GGUF path (AutoTokenizer.from_pretrained(dir, gguf_file=...)),
which builds a Rust `tokenizers` tokenizer from the file's metadata, given SmolLM2's pre-tokenizer
(see below). When llama-cpp-python is
installed, every text is also tokenized by llama.cpp (the format's own implementation, reading
the same file with vocab_only) and the script fails unless both agree.

Usage (Python 3.11; transformers' GGUF reader imports torch):
    python -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install transformers tokenizers torch gguf
    /tmp/tfenv/bin/pip install llama-cpp-python   # optional second reference (builds llama.cpp)
    /tmp/tfenv/bin/python make-gguf-tokenizer-fixture.py /path/to/SmolLM2-135M-Instruct.Q4_1.gguf
"""

import json
import sys
import unicodedata
from pathlib import Path

TEXTS = [
    "",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "12345",
    "Call 555-0199 or 3.14159 at 10:30pm on 2024-06-01; 1,000,000 is 1e6.",
    "Mixed123numbers456and789letters",
    "Unicode numbers: ½ ² ³ ① Ⅻ ٣ ४ and ℕ ≥ ∑ √2",
    " single leading space",
    "   three leading spaces",
    "trailing spaces   ",
    "multiple     spaces    between   words",
    "   ",
    "\n",
    "tabs\tand\nnewlines\r\n\n\nmore\n\n",
    "exotic whitespace: a\u00a0b\u2009c\u3000d\u0085e\ufefff\u2028g",
    "def add(a, b):\n    return a + b  # sum\n\n\nclass Foo:\n\tpass\n",
    "const x = {a: [1, 2, 3]}; console.log(x?.a ?? []); // done",
    "Special chars: ~!@#$%^&*()_+-=[]{}|;':\",./<>?`",
    "URL https://example.com/path?q=1&x=y#frag and email a.b@c.io",
    "I'm sure they'll say it's what we've done, isn't it? I'M SURE THEY'LL SAY IT'S",
    "Unicode: café, naïve, Zürich, São Paulo, Ærøskøbing, Œuvre",
    "日本語のテキストと中文文本",
    "안녕하세요 세계",
    "Привет мир — Καλημέρα κόσμε",
    "مرحبا بالعالم",
    "Emoji 😀👍🏽🎉 and flags 🇫🇷 plus ZWJ 👩‍💻",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more text",
    "fake <|im_start without end and <|unknown|> tokens <|im_end|>",
    "# Title\n\n- item 1\n- item 2\n\n**bold** _italic_ `code`",
    "Pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism",
]

CHAT = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "What is 2+2? Answer in one word."},
]


def compact_json(value: dict) -> str:
    """One line per top-level key, and per element of a top-level list (texts, ids)."""
    def dump(v) -> str:
        # Readable text, but invisible characters (U+0085, U+FEFF, U+2028, ...) escaped.
        text = json.dumps(v, ensure_ascii=False)
        return "".join(f"\\u{ord(c):04x}" if ord(c) > 127 and unicodedata.category(c)[0] in "ZC" else c for c in text)

    lines = []
    for key, item in value.items():
        if isinstance(item, list):
            inner = ",\n".join(f"  {dump(element)}" for element in item)
            lines.append(f"{dump(key)}: [\n{inner}\n ]")
        else:
            lines.append(f"{dump(key)}: {dump(item)}")
    return "{\n " + ",\n ".join(lines) + "\n}\n"


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    gguf = Path(sys.argv[1]).resolve()

    import tokenizers
    import transformers
    from transformers import AutoTokenizer

    from tokenizers import pre_tokenizers

    reference = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # transformers' GGUF path does not know tokenizer.ggml.pre = "smollm" and falls back to GPT-2's
    # ByteLevel regex. SmolLM2's own tokenizer.json (and llama.cpp, reading "smollm") first puts
    # every numeric character (\p{N}) on its own; without that, " ½" becomes "ĠÂ" + "½" instead of
    # "Ġ" + "Â½". Give the reference SmolLM2's pre-tokenizer, and note where the unpatched one differs.
    unpatched = [reference(text, add_special_tokens=True)["input_ids"] for text in TEXTS]
    reference.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    ids = [reference(text, add_special_tokens=True)["input_ids"] for text in TEXTS]
    differs = [text for text, a, b in zip(TEXTS, unpatched, ids) if a != b]
    for text, encoded in zip(TEXTS, ids):
        decoded = reference.decode(encoded)
        if decoded != text:
            sys.exit(f"the reference does not round-trip {text!r}: {decoded!r}")
    rendered = reference.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    chat_ids = reference(rendered, add_special_tokens=False)["input_ids"]

    checked_by = [
        f"transformers {transformers.__version__} (tokenizers {tokenizers.__version__}) GGUF tokenizer with SmolLM2's pre-tokenizer"
        f" (Digits individual + ByteLevel); its unpatched GGUF path differs on {len(differs)} text(s): {differs}"
    ]
    try:
        import llama_cpp
    except ImportError:
        print("llama-cpp-python is not installed: transformers is the only reference", file=sys.stderr)
    else:
        llama = llama_cpp.Llama(model_path=str(gguf), vocab_only=True, verbose=False)
        for text, expected in list(zip(TEXTS, ids)) + [(rendered, chat_ids)]:
            got = llama.tokenize(text.encode("utf-8"), add_bos=False, special=True) if text else []
            if got != expected:
                sys.exit(f"llama.cpp and transformers disagree on {text!r}:\n  llama.cpp    {got}\n  transformers {expected}")
        checked_by.append(f"llama.cpp via llama-cpp-python {llama_cpp.__version__}")

    fixture = {
        "comment": "Written by make-gguf-tokenizer-fixture.py; ids are encode(text) with special tokens (SmolLM2 adds none).",
        "model": gguf.name,
        "reference": checked_by,
        "texts": TEXTS,
        "ids": ids,
        "chat": {"messages": CHAT, "rendered": rendered, "ids": chat_ids},
    }
    out = Path(__file__).with_name("smollm2-tokenizer.json")
    out.write_text(compact_json(fixture), encoding="utf-8")
    print(f"wrote {out} ({len(TEXTS)} texts; reference: {', '.join(checked_by)})")


if __name__ == "__main__":
    main()
