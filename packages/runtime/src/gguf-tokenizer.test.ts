import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import type { GgufMetadata, GgufValue } from "./gguf.js";
import { readGgufFile } from "./gguf.js";
import { ggufTokenizer, mergesFromScores } from "./gguf-tokenizer.js";
import { seededUniform } from "./tiny-model.js";
import { byteToUnicode } from "./tiny-tokenizer.js";
import { freshSeed } from "./temp-dirs.test-helper.js";
import { smollm2ModelFile } from "./testing.js";

const FILE = "/models/test.gguf";
const CONTROL = 3;
const USER_DEFINED = 4;

// ---------------------------------------------------------------------------------------------
// A small byte-level (gpt2) vocabulary laid out as SmolLM2's: control tokens first, then the 256
// bytes, then merged tokens, then a user-defined token.

const GPT2_CONTROL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] as const;
const GPT2_MERGES = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "1 2", "12 3", "' S", "Ġ Ġ", "Ċ Ċ"] as const;
const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

function gpt2Vocabulary() {
  const tokens: string[] = [...GPT2_CONTROL, ...byteToUnicode()];
  for (const merge of GPT2_MERGES) tokens.push(merge.replace(" ", ""));
  tokens.push("Ġxyz"); // a token no merge reaches: only a pre-tokenizer that ignores merges finds it
  tokens.push("<think>"); // user-defined
  const types: number[] = tokens.map((_, id) => (id < GPT2_CONTROL.length ? CONTROL : 1));
  types[types.length - 1] = USER_DEFINED;
  return { tokens, types };
}

function gpt2Metadata(edit: Record<string, GgufValue | undefined> = {}): GgufMetadata {
  const { tokens, types } = gpt2Vocabulary();
  const entries: Record<string, GgufValue | undefined> = {
    "general.architecture": "llama",
    "tokenizer.ggml.model": "gpt2",
    "tokenizer.ggml.pre": "smollm",
    "tokenizer.ggml.tokens": tokens,
    "tokenizer.ggml.token_type": types,
    "tokenizer.ggml.merges": [...GPT2_MERGES],
    "tokenizer.ggml.bos_token_id": 1,
    "tokenizer.ggml.eos_token_id": 2,
    "tokenizer.ggml.unknown_token_id": 0,
    "tokenizer.ggml.padding_token_id": 2,
    "tokenizer.ggml.add_bos_token": false,
    "tokenizer.chat_template": CHATML,
    ...edit,
  };
  return new Map(Object.entries(entries).filter((e): e is [string, GgufValue] => e[1] !== undefined));
}

const gpt2 = (edit?: Record<string, GgufValue | undefined>) => ggufTokenizer(gpt2Metadata(edit), FILE);
const gpt2Id = (token: string) => gpt2Vocabulary().tokens.indexOf(token);
/** The byte token's id for each UTF-8 byte of `text`. */
const byteIds = (text: string) => Array.from(new TextEncoder().encode(text), (b) => GPT2_CONTROL.length + b);

// ---------------------------------------------------------------------------------------------
// A small SentencePiece (llama) vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then pieces
// with scores (higher merges first).

const SPM_PIECES: ReadonlyArray<readonly [string, number]> = [
  ["▁", -1], ["h", -2], ["e", -3], ["l", -4], ["o", -5], ["w", -6], ["r", -7], ["d", -8], ["a", -9], ["b", -10], ["c", -11],
  ["ll", -12], ["▁h", -13], ["he", -14], ["llo", -15], ["▁he", -16], ["▁hello", -17], ["▁w", -18], ["or", -19], ["▁wor", -20], ["▁world", -21],
  ["ld", -22], ["▁▁", -23], ["<think>", 0],
];

function spmVocabulary() {
  const hex = (b: number) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`;
  const tokens = ["<unk>", "<s>", "</s>", ...Array.from({ length: 256 }, (_, b) => hex(b)), ...SPM_PIECES.map(([p]) => p)];
  const scores = [0, 0, 0, ...Array.from({ length: 256 }, () => 0), ...SPM_PIECES.map(([, s]) => s)];
  const types = tokens.map((t, id) => (id === 0 ? 2 : id < 3 ? CONTROL : id < 259 ? 6 : t === "<think>" ? USER_DEFINED : 1));
  return { tokens, scores, types };
}

function spmMetadata(edit: Record<string, GgufValue | undefined> = {}): GgufMetadata {
  const { tokens, scores, types } = spmVocabulary();
  const entries: Record<string, GgufValue | undefined> = {
    "tokenizer.ggml.model": "llama",
    "tokenizer.ggml.tokens": tokens,
    "tokenizer.ggml.scores": scores,
    "tokenizer.ggml.token_type": types,
    "tokenizer.ggml.bos_token_id": 1,
    "tokenizer.ggml.eos_token_id": 2,
    "tokenizer.ggml.unknown_token_id": 0,
    ...edit,
  };
  return new Map(Object.entries(entries).filter((e): e is [string, GgufValue] => e[1] !== undefined));
}

const spm = (edit?: Record<string, GgufValue | undefined>) => ggufTokenizer(spmMetadata(edit), FILE);
const spmId = (token: string) => spmVocabulary().tokens.indexOf(token);

function randomText(uniform: () => number, length: number, specials: readonly string[]): string {
  const ranges: ReadonlyArray<[number, number]> = [[0x20, 0x7e], [0x20, 0x7e], [0x09, 0x0d], [0xa0, 0xff], [0x400, 0x4ff], [0x4e00, 0x9fff], [0x1f300, 0x1faff]];
  let text = "";
  for (let i = 0; i < length; i++) {
    const [low, high] = ranges[Math.floor(uniform() * ranges.length)]!;
    text += specials.length > 0 && uniform() < 0.03 ? specials[Math.floor(uniform() * specials.length)] : String.fromCodePoint(low + Math.floor(uniform() * (high - low + 1)));
  }
  return text;
}

describe("ggufTokenizer: gpt2 (byte-level BPE)", () => {
  it("encodes with the merges over the byte alphabet and decodes back", () => {
    const tokenizer = gpt2();
    expect(tokenizer.encode("A the", { addSpecialTokens: false })).toEqual([...byteIds("A"), gpt2Id("Ġthe")]);
    expect(tokenizer.encode("é", { addSpecialTokens: false })).toEqual(byteIds("é"));
    expect(tokenizer.decode([...byteIds("A"), gpt2Id("Ġthe")])).toBe("A the");
    const seed = freshSeed();
    const uniform = seededUniform(seed);
    for (let i = 0; i < 100; i++) {
      const text = randomText(uniform, Math.floor(uniform() * 60), ["<|im_start|>", "<|im_end|>", "<think>"]);
      expect(tokenizer.decode(tokenizer.encode(text)), `seed ${seed}`).toBe(text);
    }
  });

  it("matches control and user-defined tokens whole; only control tokens are special", () => {
    const tokenizer = gpt2();
    expect(tokenizer.encode("<|im_start|>user\nhi<|im_end|>")).toEqual([1, ...byteIds("user\nhi"), 2]);
    expect(tokenizer.encode("a<think>b")).toEqual([...byteIds("a"), gpt2Id("<think>"), ...byteIds("b")]);
    expect(tokenizer.decode([1, ...byteIds("hi"), gpt2Id("<think>"), 2], { skipSpecialTokens: true })).toBe("hi<think>");
    expect(tokenizer.maxTokenId).toBe(gpt2Id("<think>"));
  });

  it("makes the BOS/EOS/UNK/PAD tokens special even when typed normal, as transformers does", () => {
    const types = gpt2Vocabulary().types.map((type) => (type === CONTROL ? 1 : type));
    const tokenizer = gpt2({ "tokenizer.ggml.token_type": types, "tokenizer.ggml.unknown_token_id": undefined, "tokenizer.ggml.padding_token_id": undefined });
    expect(tokenizer.encode("<|im_start|>hi<|im_end|><|endoftext|>")).toEqual([1, ...byteIds("hi"), 2, ...byteIds("<|endoftext|>")]);
    expect(tokenizer.decode([1, ...byteIds("hi"), 2], { skipSpecialTokens: true })).toBe("hi");
  });

  it("reads BOS/EOS from the ids, adds no BOS by default and follows add_bos_token / add_eos_token", () => {
    const plain = gpt2({ "tokenizer.ggml.add_bos_token": undefined });
    expect([plain.bosTokenId, plain.eosTokenId]).toEqual([1, 2]);
    expect(plain.encode("hi")).toEqual(byteIds("hi"));
    const both = gpt2({ "tokenizer.ggml.add_bos_token": true, "tokenizer.ggml.add_eos_token": true });
    expect(both.encode("hi")).toEqual([1, ...byteIds("hi"), 2]);
    expect(both.encode("hi", { addSpecialTokens: false })).toEqual(byteIds("hi"));
    const none = gpt2({ "tokenizer.ggml.bos_token_id": undefined, "tokenizer.ggml.eos_token_id": undefined });
    expect([none.bosTokenId, none.eosTokenId]).toEqual([null, null]);
  });

  it("renders the chat template, with the special tokens' text available to it", () => {
    const tokenizer = gpt2();
    expect(tokenizer.renderChat([{ role: "user", content: "hi" }], { addGenerationPrompt: true })).toBe("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    const tokens = gpt2({ "tokenizer.chat_template": "{{ bos_token }}|{{ eos_token }}|{{ unk_token }}|{{ pad_token }}" });
    expect(tokens.renderChat([])).toBe("<|im_start|>|<|im_end|>|<|endoftext|>|<|im_end|>");
    const none = gpt2({ "tokenizer.chat_template": undefined });
    expect(none.chatTemplate).toBeNull();
    expect(() => none.renderChat([])).toThrow(expect.objectContaining({ code: "TOKENIZER", message: expect.stringMatching(/^the tokenizer has no chat template/) }));
  });

  it("pre-tokenizes as tokenizer.ggml.pre says", () => {
    const words = (pre: string | undefined, text: string) => gpt2({ "tokenizer.ggml.pre": pre }).encode(text, { addSpecialTokens: false });
    const [d1, d2, d3, d4] = byteIds("1234");
    // smollm: every digit alone; GPT-2 ("default", also when absent) keeps runs of digits; Llama 3 runs of up to three; Qwen2 single digits.
    expect(words("smollm", "1234")).toEqual([d1, d2, d3, d4]);
    for (const pre of ["default", "gpt-2", undefined]) expect(words(pre, "1234")).toEqual([gpt2Id("123"), d4]);
    expect(words("llama-bpe", "12345")).toEqual([gpt2Id("123"), ...byteIds("45")]);
    expect(words("llama3", "1234")).toEqual([gpt2Id("123"), d4]);
    expect(words("qwen2", "1234")).toEqual([d1, d2, d3, d4]);
    // Llama 3 and Qwen2 take contractions case-insensitively; GPT-2 only lowercase.
    expect(words("llama3", "'S")).toEqual([gpt2Id("'S")]);
    expect(words("qwen2", "'S")).toEqual([gpt2Id("'S")]);
    expect(words("gpt-2", "'S")).toEqual(byteIds("'S"));
    // Llama 3 uses a word that is a token as it is (ignore_merges), the others merge.
    expect(words("llama3", " xyz")).toEqual([gpt2Id("Ġxyz")]);
    expect(words("gpt-2", " xyz")).toEqual(byteIds(" xyz"));
    // Whitespace: GPT-2 leaves the last space of a run to the next word.
    expect(words("gpt-2", "a   the")).toEqual([...byteIds("a"), gpt2Id("ĠĠ"), gpt2Id("Ġthe")]);
    // Llama 3's and Qwen2's defaults for BOS differ (llama.cpp adds BOS for Llama 3 unless told not to).
    const llama3 = gpt2({ "tokenizer.ggml.pre": "llama-bpe", "tokenizer.ggml.add_bos_token": undefined });
    expect(llama3.encode("a")).toEqual([1, ...byteIds("a")]);
    expect(gpt2({ "tokenizer.ggml.pre": "qwen2", "tokenizer.ggml.add_bos_token": undefined }).encode("a")).toEqual(byteIds("a"));
  });

  it("keeps an added token written as its text (not in the byte alphabet) whole, and spells it for the merges", () => {
    const metadata = gpt2Metadata();
    const tokens = [...(metadata.get("tokenizer.ggml.tokens") as string[])];
    const types = [...(metadata.get("tokenizer.ggml.token_type") as number[])];
    const at = tokens.indexOf("ĊĊ");
    tokens[at] = "\n\n"; // as llama.cpp's converter writes a user-defined token
    types[at] = USER_DEFINED;
    const tokenizer = gpt2({ "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types });
    expect(tokenizer.encode("a\n\nb", { addSpecialTokens: false })).toEqual([...byteIds("a"), at, ...byteIds("b")]);
    expect(tokenizer.decode([...byteIds("a"), at])).toBe("a\n\n");
  });
});

describe("ggufTokenizer: llama (SentencePiece BPE)", () => {
  it("prefixes a space, merges by score, falls back to bytes and adds BOS by default", () => {
    const tokenizer = spm();
    expect(tokenizer.bosTokenId).toBe(1);
    expect(tokenizer.encode("hello world")).toEqual([1, spmId("▁hello"), spmId("▁world")]);
    expect(tokenizer.encode("hello", { addSpecialTokens: false })).toEqual([spmId("▁hello")]);
    expect(tokenizer.encode("é", { addSpecialTokens: false })).toEqual([spmId("▁"), spmId("<0xC3>"), spmId("<0xA9>")]);
    expect(tokenizer.decode(tokenizer.encode("hello é world"))).toBe("<s> hello é world");
    expect(tokenizer.decode(tokenizer.encode("hello é world"), { skipSpecialTokens: true })).toBe("hello é world");
    expect(tokenizer.decode(tokenizer.encode("  hello", { addSpecialTokens: false }))).toBe("  hello");
  });

  it("round-trips arbitrary text", () => {
    const tokenizer = spm();
    const seed = freshSeed();
    const uniform = seededUniform(seed);
    for (let i = 0; i < 100; i++) {
      // No added tokens: the text after one gets its own "▁" prefix (as llama.cpp), which decoding keeps.
      const text = randomText(uniform, 1 + Math.floor(uniform() * 60), []);
      expect(tokenizer.decode(tokenizer.encode(text, { addSpecialTokens: false })), `seed ${seed}`).toBe(text);
    }
  });

  it("matches control tokens whole and prefixes the text after one with a space, as llama.cpp does", () => {
    const tokenizer = spm();
    expect(tokenizer.encode("<s>hello</s>", { addSpecialTokens: false })).toEqual([1, spmId("▁hello"), 2]);
    expect(tokenizer.encode("hello<think>world", { addSpecialTokens: false })).toEqual([spmId("▁hello"), spmId("<think>"), spmId("▁world")]);
  });

  it("follows add_space_prefix, add_bos_token and add_eos_token", () => {
    const bare = spm({ "tokenizer.ggml.add_space_prefix": false, "tokenizer.ggml.add_bos_token": false, "tokenizer.ggml.add_eos_token": true });
    expect(bare.encode("hello world")).toEqual([spmId("he"), spmId("llo"), spmId("▁world"), 2]);
    expect(bare.decode(bare.encode(" hello", { addSpecialTokens: false }))).toBe(" hello");
  });

  it("uses <unk> for what neither a piece nor byte tokens cover", () => {
    const { tokens, scores, types } = spmVocabulary();
    const keep = tokens.map((t) => !/^<0x/.test(t));
    const tokenizer = spm({
      "tokenizer.ggml.tokens": tokens.filter((_, i) => keep[i]),
      "tokenizer.ggml.scores": scores.filter((_, i) => keep[i]),
      "tokenizer.ggml.token_type": types.filter((_, i) => keep[i]),
    });
    const id = (t: string) => tokens.filter((_, i) => keep[i]).indexOf(t);
    expect(tokenizer.encode("hello éé", { addSpecialTokens: false })).toEqual([id("▁hello"), id("▁"), 0]);
  });

  it("derives merges from scores: best merged score first, then longer pieces, then vocabulary order", () => {
    expect(mergesFromScores(["a", "b", "c", "ab", "bc", "abc"], [0, 0, 0, -1, -2, -3])).toEqual([["a", "b"], ["b", "c"], ["ab", "c"], ["a", "bc"]]);
    const tokens = ["<s>", "a", "b", "c", "ab", "bc"];
    const encode = (scores: number[]) =>
      ggufTokenizer(new Map<string, GgufValue>([["tokenizer.ggml.model", "llama"], ["tokenizer.ggml.tokens", tokens], ["tokenizer.ggml.scores", scores], ["tokenizer.ggml.add_space_prefix", false], ["tokenizer.ggml.add_bos_token", false]]), FILE).encode("abc");
    expect(encode([0, 0, 0, 0, -1, -2])).toEqual([4, 3]); // "ab" outranks "bc"
    expect(encode([0, 0, 0, 0, -2, -1])).toEqual([1, 5]);
    // Merges the file lists win over the scores.
    const listed = new Map<string, GgufValue>([["tokenizer.ggml.model", "llama"], ["tokenizer.ggml.tokens", tokens], ["tokenizer.ggml.merges", ["b c", "a b"]], ["tokenizer.ggml.add_space_prefix", false], ["tokenizer.ggml.add_bos_token", false]]);
    expect(ggufTokenizer(listed, FILE).encode("abc")).toEqual([1, 5]);
  });
});

describe("ggufTokenizer errors", () => {
  const fails = (metadata: GgufMetadata, path: string, message: string | RegExp) => {
    let error: unknown;
    try {
      ggufTokenizer(metadata, FILE);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: "TOKENIZER", path, message: typeof message === "string" ? `${FILE}: ${message}` : expect.stringMatching(message) });
  };

  it("names a missing or unsupported tokenizer model", () => {
    fails(gpt2Metadata({ "tokenizer.ggml.model": undefined }), "tokenizer.ggml.model", /^\/models\/test.gguf: tokenizer.ggml.model is missing: the file carries no tokenizer/);
    for (const model of ["bert", "t5", "rwkv"]) {
      fails(gpt2Metadata({ "tokenizer.ggml.model": model }), "tokenizer.ggml.model", `tokenizer.ggml.model is "${model}", a vocabulary this runtime cannot tokenize; it reads gpt2 (byte-level BPE) and llama (SentencePiece BPE)`);
    }
    fails(gpt2Metadata({ "tokenizer.ggml.model": 3 }), "tokenizer.ggml.model", "tokenizer.ggml.model must be a string, found 3");
  });

  it("names an unknown pre-tokenizer and lists the known ones", () => {
    fails(gpt2Metadata({ "tokenizer.ggml.pre": "deepseek-coder" }), "tokenizer.ggml.pre", 'tokenizer.ggml.pre is "deepseek-coder", a pre-tokenizer this runtime does not know; it knows default, gpt-2, smollm, llama-bpe, llama3, llama-v3, qwen2');
  });

  it("names a bad vocabulary", () => {
    fails(gpt2Metadata({ "tokenizer.ggml.tokens": undefined }), "tokenizer.ggml.tokens", /tokenizer.ggml.tokens is missing/);
    fails(gpt2Metadata({ "tokenizer.ggml.tokens": "abc" }), "tokenizer.ggml.tokens", 'tokenizer.ggml.tokens must be an array of strings, found "abc"');
    fails(gpt2Metadata({ "tokenizer.ggml.tokens": ["a", 7n] }), "tokenizer.ggml.tokens", "tokenizer.ggml.tokens must be an array of strings, found 7 at index 1");
    fails(gpt2Metadata({ "tokenizer.ggml.tokens": [] }), "tokenizer.ggml.tokens", "tokenizer.ggml.tokens is empty: the file carries no vocabulary");
    fails(gpt2Metadata({ "tokenizer.ggml.token_type": [1, 1] }), "tokenizer.ggml.token_type", /^\/models\/test.gguf: tokenizer.ggml.token_type has 2 entries but tokenizer.ggml.tokens has 271; they must be the same length$/);
    fails(gpt2Metadata({ "tokenizer.ggml.token_type": gpt2Vocabulary().types.map(() => 1.5) }), "tokenizer.ggml.token_type", "tokenizer.ggml.token_type must be an array of integers (token types), found 1.5 at index 0");
    fails(spmMetadata({ "tokenizer.ggml.scores": [0, 1] }), "tokenizer.ggml.scores", /tokenizer.ggml.scores has 2 entries but tokenizer.ggml.tokens has 283/);
    fails(spmMetadata({ "tokenizer.ggml.scores": spmVocabulary().scores.map(() => "x") }), "tokenizer.ggml.scores", 'tokenizer.ggml.scores must be an array of numbers (token scores), found "x" at index 0');
    fails(spmMetadata({ "tokenizer.ggml.scores": undefined }), "tokenizer.ggml.scores", /tokenizer.ggml.scores is missing: a llama \(SentencePiece\) vocabulary without merges needs its token scores/);
  });

  it("names bad merges", () => {
    fails(gpt2Metadata({ "tokenizer.ggml.merges": undefined }), "tokenizer.ggml.merges", "tokenizer.ggml.merges is missing: a gpt2 (byte-level BPE) vocabulary needs its merges");
    fails(gpt2Metadata({ "tokenizer.ggml.merges": "Ġ t" }), "tokenizer.ggml.merges", 'tokenizer.ggml.merges must be an array of strings, found "Ġ t"');
    for (const merge of ["Ġt", " t", "Ġ ", "Ġ t h"]) {
      fails(gpt2Metadata({ "tokenizer.ggml.merges": ["h e", merge] }), "tokenizer.ggml.merges", `tokenizer.ggml.merges entry 1 must be two tokens separated by one space ("a b"), found ${JSON.stringify(merge)}`);
    }
    fails(gpt2Metadata({ "tokenizer.ggml.merges": ["x yz"] }), "tokenizer.ggml.merges", 'tokenizer.ggml.merges entry 0 ("x yz") uses "yz", which is not in tokenizer.ggml.tokens');
    fails(gpt2Metadata({ "tokenizer.ggml.merges": ["x y"] }), "tokenizer.ggml.merges", 'tokenizer.ggml.merges entry 0 ("x y") uses "xy", which is not in tokenizer.ggml.tokens');
  });

  it("names bad special-token ids and flags", () => {
    const key = "tokenizer.ggml.bos_token_id";
    fails(gpt2Metadata({ [key]: 271 }), key, `${key} must be a token id below the vocabulary size 271, found 271`);
    fails(gpt2Metadata({ [key]: -1 }), key, `${key} must be a token id below the vocabulary size 271, found -1`);
    fails(gpt2Metadata({ "tokenizer.ggml.eos_token_id": 1.5 }), "tokenizer.ggml.eos_token_id", "tokenizer.ggml.eos_token_id must be a token id (an integer), found 1.5");
    fails(gpt2Metadata({ "tokenizer.ggml.unknown_token_id": "0" }), "tokenizer.ggml.unknown_token_id", 'tokenizer.ggml.unknown_token_id must be a token id (an integer), found "0"');
    fails(gpt2Metadata({ "tokenizer.ggml.padding_token_id": 2n ** 40n }), "tokenizer.ggml.padding_token_id", /padding_token_id must be a token id below the vocabulary size 271, found 1099511627776$/);
    expect(gpt2({ [key]: 1n }).bosTokenId).toBe(1);
    fails(gpt2Metadata({ "tokenizer.ggml.add_bos_token": 1 }), "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_bos_token must be a boolean, found 1");
    fails(spmMetadata({ "tokenizer.ggml.add_space_prefix": "yes" }), "tokenizer.ggml.add_space_prefix", 'tokenizer.ggml.add_space_prefix must be a boolean, found "yes"');
    fails(gpt2Metadata({ [key]: undefined, "tokenizer.ggml.add_bos_token": true }), key, `${key} is missing, but tokenizer.ggml.add_bos_token is true; set the BOS token's id (or tokenizer.ggml.add_bos_token = false)`);
    fails(spmMetadata({ [key]: undefined }), key, `${key} is missing, but a llama vocabulary adds BOS by default; set the BOS token's id (or tokenizer.ggml.add_bos_token = false)`);
    fails(gpt2Metadata({ "tokenizer.ggml.eos_token_id": undefined, "tokenizer.ggml.add_eos_token": true }), "tokenizer.ggml.eos_token_id", "tokenizer.ggml.eos_token_id is missing, but tokenizer.ggml.add_eos_token is true; set the EOS token's id");
  });

  it("names a chat template that is not a string or does not parse", () => {
    fails(gpt2Metadata({ "tokenizer.chat_template": ["x"] }), "tokenizer.chat_template", "tokenizer.chat_template must be a string, found an array of 1");
    fails(gpt2Metadata({ "tokenizer.chat_template": "{% for m in messages %}" }), "tokenizer.chat_template", /^\/models\/test.gguf: tokenizer.chat_template: the chat template does not parse: /);
  });
});

describe("ggufTokenizer on a trained byte-level BPE vocabulary", () => {
  it("splits text as llama.cpp does for each tokenizer.ggml.pre", async () => {
    // test-fixtures/make-bpe-gguf-fixture.py: ids from llama.cpp (and tokenizers, which agree) per pre-tokenizer.
    const fixture = JSON.parse(await readFile(new URL("../test-fixtures/bpe-gguf-tokenizer.json", import.meta.url), "utf8")) as {
      metadata: Record<string, GgufValue>;
      texts: string[];
      ids: Record<string, number[][]>;
    };
    expect(Object.keys(fixture.ids)).toEqual(["gpt-2", "smollm", "llama-bpe", "qwen2"]);
    for (const [pre, ids] of Object.entries(fixture.ids)) {
      const tokenizer = ggufTokenizer(new Map(Object.entries({ ...fixture.metadata, "tokenizer.ggml.pre": pre })), FILE);
      fixture.texts.forEach((text, i) => {
        expect(tokenizer.encode(text, { addSpecialTokens: false }), `${pre}: ${JSON.stringify(text)}`).toEqual(ids[i]);
        expect(tokenizer.decode(ids[i]!)).toBe(text);
      });
    }
  });
});

describe("ggufTokenizer on a trained SentencePiece vocabulary", () => {
  it("encodes as SentencePiece (and llama.cpp, where the fixture has its ids) does", async () => {
    // test-fixtures/make-spm-gguf-fixture.py: a 600-piece SentencePiece BPE model with byte fallback, written as a GGUF and read back.
    const fixture = JSON.parse(await readFile(new URL("../test-fixtures/spm-gguf-tokenizer.json", import.meta.url), "utf8")) as {
      metadata: Record<string, GgufValue>;
      texts: string[];
      sentencepiece_ids: Array<number[] | null>;
      llama_cpp_ids: number[][] | null;
    };
    const tokenizer = ggufTokenizer(new Map(Object.entries(fixture.metadata)), FILE);
    let compared = 0;
    fixture.texts.forEach((text, i) => {
      const expected = fixture.llama_cpp_ids?.[i] ?? fixture.sentencepiece_ids[i];
      if (!expected) return;
      compared++;
      expect(tokenizer.encode(text), JSON.stringify(text)).toEqual(expected);
      // The text after an added token gets its own "▁" (llama.cpp), so only texts without one decode to themselves.
      if (fixture.sentencepiece_ids[i]) expect(tokenizer.decode(expected, { skipSpecialTokens: true })).toBe(text);
    });
    expect(compared).toBe(fixture.llama_cpp_ids ? fixture.texts.length : 14);
  });
});

// The real SmolLM2-135M-Instruct GGUF (fetched into the models cache on first use) against ids
// transformers and llama.cpp computed (test-fixtures/make-gguf-tokenizer-fixture.py).
describe("ggufTokenizer on SmolLM2-135M-Instruct", () => {
  it("encodes, decodes and renders chats as transformers does", async () => {
    const SMOLLM2_GGUF = await smollm2ModelFile();
    const fixture = JSON.parse(await readFile(new URL("../test-fixtures/smollm2-tokenizer.json", import.meta.url), "utf8")) as {
      texts: string[];
      ids: number[][];
      chat: { messages: Array<{ role: string; content: string }>; rendered: string; ids: number[] };
    };
    const gguf = await readGgufFile(SMOLLM2_GGUF!);
    const tokenizer = ggufTokenizer(gguf.metadata, gguf.file);
    expect(tokenizer.encode("hi")).toEqual(tokenizer.encode("hi", { addSpecialTokens: false })); // add_bos_token is false
    expect([tokenizer.bosTokenId, tokenizer.eosTokenId, tokenizer.maxTokenId]).toEqual([1, 2, 49151]);
    const mismatches = fixture.texts.filter((text, i) => JSON.stringify(tokenizer.encode(text)) !== JSON.stringify(fixture.ids[i]));
    expect(mismatches).toEqual([]);
    fixture.texts.forEach((text, i) => expect(tokenizer.decode(fixture.ids[i]!)).toBe(text));
    const rendered = tokenizer.renderChat(fixture.chat.messages, { addGenerationPrompt: true });
    expect(rendered).toBe(fixture.chat.rendered);
    expect(tokenizer.encode(rendered, { addSpecialTokens: false })).toEqual(fixture.chat.ids);
  }, 300_000); // the first use fetches the model (~93 MB)
});
