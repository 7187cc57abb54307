// A small Llama-3-style tokenizer for test models: byte-level BPE over the 256 bytes (GPT-2's
// byte-to-unicode map), a few merges, and Llama 3's chat special tokens after them.

/** GPT-2's map from bytes to printable characters, so every byte is a visible vocab entry. */
export function byteToUnicode(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const map: string[] = [];
  let shifted = 0;
  for (let b = 0; b < 256; b++) map[b] = String.fromCodePoint(printable(b) ? b : 256 + shifted++);
  return map;
}

// Merges must only combine tokens that already exist; "Ġ" is the byte-level space.
const MERGES: ReadonlyArray<readonly [string, string]> = [
  ["Ġ", "t"], ["h", "e"], ["Ġt", "he"], ["i", "n"], ["e", "r"], ["a", "n"], ["Ġ", "a"], ["o", "n"], ["r", "e"], ["Ġ", "s"],
];

export const SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"] as const;
export type SpecialToken = (typeof SPECIAL_TOKENS)[number];

/** Llama 3's template, minus tools and dates. */
export const TINY_CHAT_TEMPLATE =
  "{{- bos_token }}" +
  "{%- for message in messages %}" +
  "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}" +
  "{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";

export interface TinyTokenizerFiles {
  tokenizerJson: object;
  tokenizerConfig: object;
  /** Ids of the special tokens; all are below `tokenCount`. */
  specialIds: Record<SpecialToken, number>;
  tokenCount: number;
}

export function tinyTokenizerFiles(options: { addBos: boolean; chatTemplate: boolean; maxLengthTokens: number }): TinyTokenizerFiles {
  const bytes = byteToUnicode();
  const vocab: Record<string, number> = {};
  bytes.forEach((token, id) => (vocab[token] = id));
  MERGES.forEach(([a, b], k) => (vocab[a + b] = 256 + k));
  const firstSpecial = 256 + MERGES.length;
  const specialIds = Object.fromEntries(SPECIAL_TOKENS.map((t, k) => [t, firstSpecial + k])) as Record<SpecialToken, number>;
  const bos = "<|begin_of_text|>";
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  const postProcessor = options.addBos
    ? {
        type: "TemplateProcessing",
        single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
        pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
        special_tokens: { [bos]: { id: bos, ids: [specialIds[bos]], tokens: [bos] } },
      }
    : byteLevel;
  const tokenizerJson = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((content) => ({ id: specialIds[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: postProcessor,
    decoder: byteLevel,
    model: {
      type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: MERGES.map(([a, b]) => [a, b]),
    },
  };
  const tokenizerConfig = {
    tokenizer_class: "PreTrainedTokenizerFast",
    bos_token: options.addBos ? bos : null,
    eos_token: "<|eot_id|>",
    clean_up_tokenization_spaces: false,
    model_max_length: options.maxLengthTokens,
    ...(options.chatTemplate ? { chat_template: TINY_CHAT_TEMPLATE } : {}),
    added_tokens_decoder: Object.fromEntries(
      SPECIAL_TOKENS.map((content) => [String(specialIds[content]), { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true }]),
    ),
  };
  return { tokenizerJson, tokenizerConfig, specialIds, tokenCount: firstSpecial + SPECIAL_TOKENS.length };
}
