// The tokenizer and chat template a GGUF file carries in its metadata (llama.cpp's key names),
// rebuilt as a tokenizer.json object for @huggingface/tokenizers, so a GGUF model tokenizes
// through the same ModelTokenizer as a Hugging Face directory.
//
// Two vocabulary kinds (`tokenizer.ggml.model`):
// - "gpt2": byte-level BPE. Tokens are spelled in GPT-2's byte alphabet ("Ġ" is a space), the
//   merges are listed, and `tokenizer.ggml.pre` names the regex that splits text into words
//   before the merges run.
// - "llama": SentencePiece-style. Tokens use "▁" for a space and "<0x0A>" byte tokens for bytes
//   the vocabulary lacks; there are no merges but scores, from which the merges are rebuilt as
//   transformers does (every split of a token into two tokens, best score first).
// Control, unknown and user-defined tokens (and the BOS/EOS/UNK/PAD tokens) become added tokens,
// matched whole in the text before anything else, as llama.cpp does: "<|im_start|>" is one id.
import type { GgufMetadata, GgufValue } from "./gguf.js";
import { RuntimeError } from "./errors.js";
import { byteToUnicode } from "./tiny-tokenizer.js";
import { createTokenizer, type ModelTokenizer, type TokenizerSettings } from "./tokenizer.js";

const KEY = {
  model: "tokenizer.ggml.model",
  pre: "tokenizer.ggml.pre",
  tokens: "tokenizer.ggml.tokens",
  tokenType: "tokenizer.ggml.token_type",
  scores: "tokenizer.ggml.scores",
  merges: "tokenizer.ggml.merges",
  bos: "tokenizer.ggml.bos_token_id",
  eos: "tokenizer.ggml.eos_token_id",
  unk: "tokenizer.ggml.unknown_token_id",
  pad: "tokenizer.ggml.padding_token_id",
  addBos: "tokenizer.ggml.add_bos_token",
  addEos: "tokenizer.ggml.add_eos_token",
  addSpacePrefix: "tokenizer.ggml.add_space_prefix",
  chatTemplate: "tokenizer.chat_template",
} as const;

/** llama.cpp's token types (llama_token_type). */
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

// The word-splitting regexes (Oniguruma syntax, as tokenizer.json writes them; the library
// rewrites them for JavaScript). GPT-2's: contractions, letters, numbers and other runs, each
// with at most one leading space, then whitespace.
const GPT2_SPLIT = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;
// Llama 3's (tiktoken cl100k's): case-insensitive contractions, a word may take one leading
// non-letter, numbers in runs of up to three digits, punctuation keeps its trailing newlines.
const LLAMA3_SPLIT = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
// Qwen2's: Llama 3's with every digit on its own.
const QWEN2_SPLIT = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;

interface PreTokenization {
  /** Regexes applied in turn, each isolating its matches (llama.cpp's regex_exprs; tokenizer.json's Split). */
  splits: readonly string[];
  /** Use a whole word that is a token as that token, without merging (Llama 3's tokenizer.json; llama.cpp's ignore_merges). */
  ignoreMerges: boolean;
  /** Whether BOS is added when the file has no tokenizer.ggml.add_bos_token (llama.cpp's default per pre-tokenizer). */
  addBosByDefault: boolean;
}

const GPT2_PRE: PreTokenization = { splits: [GPT2_SPLIT], ignoreMerges: false, addBosByDefault: false };
const LLAMA3_PRE: PreTokenization = { splits: [LLAMA3_SPLIT], ignoreMerges: true, addBosByDefault: true };

/**
 * `tokenizer.ggml.pre` values and what they mean, as llama.cpp's vocabulary loader (llama-vocab.cpp)
 * defines them. "default" follows transformers (GPT-2's regex); llama.cpp's own "default" adds
 * punctuation and digit splits meant for no particular model.
 */
const PRE_TOKENIZATIONS: ReadonlyMap<string, PreTokenization> = new Map([
  ["default", GPT2_PRE],
  ["gpt-2", GPT2_PRE],
  // Each digit on its own, then GPT-2's regex (SmolLM's tokenizer.json: Digits(individual) + ByteLevel).
  ["smollm", { splits: [String.raw`\p{N}`, GPT2_SPLIT], ignoreMerges: false, addBosByDefault: false }],
  ["llama-bpe", LLAMA3_PRE],
  ["llama3", LLAMA3_PRE],
  ["llama-v3", LLAMA3_PRE],
  ["qwen2", { splits: [QWEN2_SPLIT], ignoreMerges: false, addBosByDefault: false }],
]);

const SUPPORTED_MODELS = "gpt2 (byte-level BPE) and llama (SentencePiece BPE)";

// ---------------------------------------------------------------------------------------------
// Reading metadata values, each failure a TOKENIZER error whose path is the metadata key.

class MetadataReader {
  constructor(
    private readonly metadata: GgufMetadata,
    private readonly file: string,
  ) {}

  fail(key: string, message: string): RuntimeError {
    return new RuntimeError({ code: "TOKENIZER", path: key, message: `${this.file}: ${key} ${message}` });
  }

  has(key: string): boolean {
    return this.metadata.has(key);
  }

  private get(key: string): GgufValue | undefined {
    return this.metadata.get(key);
  }

  string(key: string): string | undefined {
    const value = this.get(key);
    if (value === undefined || typeof value === "string") return value;
    throw this.fail(key, `must be a string, found ${shown(value)}`);
  }

  boolean(key: string): boolean | undefined {
    const value = this.get(key);
    if (value === undefined || typeof value === "boolean") return value;
    throw this.fail(key, `must be a boolean, found ${shown(value)}`);
  }

  /** An array whose elements all pass `check` (named by `what`, e.g. "strings"). */
  array<T extends GgufValue>(key: string, what: string, check: (v: GgufValue) => v is T): T[] | undefined {
    const value = this.get(key);
    if (value === undefined) return undefined;
    if (!Array.isArray(value)) throw this.fail(key, `must be an array of ${what}, found ${shown(value)}`);
    for (let i = 0; i < value.length; i++) {
      if (!check(value[i]!)) throw this.fail(key, `must be an array of ${what}, found ${shown(value[i])} at index ${i}`);
    }
    return value as T[];
  }

  /** An optional token id: an integer in [0, count). */
  tokenId(key: string, count: number): number | undefined {
    const value = this.get(key);
    if (value === undefined) return undefined;
    const id = typeof value === "bigint" ? Number(value) : value;
    if (typeof id !== "number" || !Number.isInteger(id)) throw this.fail(key, `must be a token id (an integer), found ${shown(value)}`);
    if (id < 0 || id >= count) throw this.fail(key, `must be a token id below the vocabulary size ${count}, found ${id}`);
    return id;
  }
}

function shown(value: unknown): string {
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return `an array of ${value.length}`;
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

const isString = (v: GgufValue): v is string => typeof v === "string";
const isNumber = (v: GgufValue): v is number => typeof v === "number";
const isInteger = (v: GgufValue): v is number => typeof v === "number" && Number.isInteger(v);

// ---------------------------------------------------------------------------------------------
// The vocabulary, shared by both kinds.

interface Vocabulary {
  tokens: string[];
  /** Token type per id; all normal when the file has none. */
  types: readonly number[] | null;
}

function readVocabulary(meta: MetadataReader): Vocabulary {
  const tokens = meta.array(KEY.tokens, "strings", isString);
  if (tokens === undefined) throw meta.fail(KEY.tokens, "is missing: the file carries no vocabulary, so it has no tokenizer this runtime can use");
  if (tokens.length === 0) throw meta.fail(KEY.tokens, "is empty: the file carries no vocabulary");
  const types = meta.array(KEY.tokenType, "integers (token types)", isInteger) ?? null;
  if (types !== null && types.length !== tokens.length) {
    throw meta.fail(KEY.tokenType, `has ${types.length} entries but ${KEY.tokens} has ${tokens.length}; they must be the same length`);
  }
  return { tokens, types };
}

interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/**
 * Control and unknown tokens as special added tokens, user-defined ones as plain added tokens,
 * text as in the file. The BOS/EOS/UNK/PAD tokens are special whatever their type, as transformers
 * makes them: a chat template prints them, and they must read back as one id.
 */
function addedTokens(vocabulary: Vocabulary, specialIds: ReadonlyArray<number | undefined>): AddedTokenJson[] {
  const added: AddedTokenJson[] = [];
  const { tokens, types } = vocabulary;
  const special = new Set(specialIds);
  for (let id = 0; id < tokens.length; id++) {
    const type = types?.[id] ?? TOKEN_TYPE.normal;
    if (type !== TOKEN_TYPE.control && type !== TOKEN_TYPE.unknown && type !== TOKEN_TYPE.userDefined && !special.has(id)) continue;
    const content = tokens[id]!;
    if (content.length === 0) continue; // an empty token cannot be matched in text
    added.push({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: type !== TOKEN_TYPE.userDefined || special.has(id) });
  }
  return added;
}

/** `{token: id}`, built so that a token named "__proto__" is an ordinary key; a repeated token keeps its last id (as transformers). */
function vocabObject(keys: readonly string[]): Record<string, number> {
  return Object.fromEntries(keys.map((key, id) => [key, id]));
}

/** The merges the file lists ("left right"), each checked against the vocabulary as tokenizers' BPE does. */
function readMerges(meta: MetadataReader, vocab: ReadonlyMap<string, number>): Array<[string, string]> | undefined {
  const merges = meta.array(KEY.merges, "strings", isString);
  if (merges === undefined) return undefined;
  const pairs: Array<[string, string]> = new Array(merges.length);
  for (let i = 0; i < merges.length; i++) {
    const merge = merges[i]!;
    const space = merge.indexOf(" ");
    if (space <= 0 || space === merge.length - 1 || merge.indexOf(" ", space + 1) >= 0) {
      throw meta.fail(KEY.merges, `entry ${i} must be two tokens separated by one space ("a b"), found ${shown(merge)}`);
    }
    const left = merge.slice(0, space);
    const right = merge.slice(space + 1);
    for (const piece of [left, right, left + right]) {
      if (!vocab.has(piece)) throw meta.fail(KEY.merges, `entry ${i} (${shown(merge)}) uses ${shown(piece)}, which is not in ${KEY.tokens}`);
    }
    pairs[i] = [left, right];
  }
  return pairs;
}

function idMap(keys: readonly string[]): Map<string, number> {
  const map = new Map<string, number>();
  keys.forEach((key, id) => map.set(key, id));
  return map;
}

function splitPreTokenizer(pattern: string) {
  return { type: "Split", pattern: { Regex: pattern }, behavior: "Isolated", invert: false };
}

function bpeModel(vocab: Record<string, number>, merges: Array<[string, string]>, options: { unkToken: string | null; byteFallback: boolean; fuseUnk: boolean; ignoreMerges: boolean }) {
  return {
    type: "BPE",
    dropout: null,
    unk_token: options.unkToken,
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: options.fuseUnk,
    byte_fallback: options.byteFallback,
    ignore_merges: options.ignoreMerges,
    vocab,
    merges,
  };
}

// ---------------------------------------------------------------------------------------------
// "gpt2": byte-level BPE.

const BYTE_ALPHABET = byteToUnicode();
const IN_BYTE_ALPHABET: ReadonlySet<string> = new Set(BYTE_ALPHABET);
const UTF8 = new TextEncoder();

/**
 * A vocabulary entry spelled in the byte alphabet, as the merges expect. llama.cpp's converter
 * writes a few added tokens as their text (e.g. "\n\n" for "ĊĊ"); those are spelled here as the
 * BPE spells them (as transformers does), and stay added tokens with their text.
 */
function byteLevelSpelling(token: string): string {
  for (const char of token) {
    if (!IN_BYTE_ALPHABET.has(char)) return Array.from(UTF8.encode(token), (byte) => BYTE_ALPHABET[byte]!).join("");
  }
  return token;
}

function byteLevelTokenizerJson(meta: MetadataReader, vocabulary: Vocabulary, specialIds: ReadonlyArray<number | undefined>, pre: PreTokenization) {
  const spelled = vocabulary.tokens.map(byteLevelSpelling);
  const merges = readMerges(meta, idMap(spelled));
  if (merges === undefined) throw meta.fail(KEY.merges, "is missing: a gpt2 (byte-level BPE) vocabulary needs its merges");
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: addedTokens(vocabulary, specialIds),
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [...pre.splits.map(splitPreTokenizer), { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false }],
    },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: bpeModel(vocabObject(spelled), merges, { unkToken: null, byteFallback: false, fuseUnk: false, ignoreMerges: pre.ignoreMerges }),
  };
}

// ---------------------------------------------------------------------------------------------
// "llama": SentencePiece BPE with byte fallback.

function codePoints(text: string): string[] {
  return /[\uD800-\uDFFF]/.test(text) ? Array.from(text) : text.split("");
}

/**
 * Merges recovered from a SentencePiece vocabulary, as transformers' generate_merges does with
 * scores: every split of a token into two tokens is a merge; merges rank by the merged token's
 * score (best first), then by longer left and right pieces, then by vocabulary order.
 */
export function mergesFromScores(tokens: readonly string[], scores: readonly number[]): Array<[string, string]> {
  const ids = idMap(tokens); // last id of a repeated token, like a Python dict
  const scoreOf = new Map<string, number>();
  tokens.forEach((token, id) => scoreOf.set(token, scores[id]!));
  interface Merge {
    left: string;
    right: string;
    score: number;
    leftLength: number;
    rightLength: number;
    order: number;
  }
  const merges: Merge[] = [];
  for (const [token, score] of scoreOf) {
    // A Map iterates in first-insertion order, as the dict transformers builds.
    const chars = codePoints(token);
    if (chars.length < 2) continue;
    const local: Merge[] = [];
    let left = "";
    for (let split = 1; split < chars.length; split++) {
      left += chars[split - 1];
      const right = token.slice(left.length);
      if (ids.has(left) && ids.has(right)) local.push({ left, right, score, leftLength: split, rightLength: chars.length - split, order: 0 });
    }
    local.sort((a, b) => ids.get(a.left)! - ids.get(b.left)! || ids.get(a.right)! - ids.get(b.right)!);
    for (const merge of local) merges.push({ ...merge, order: merges.length });
  }
  merges.sort((a, b) => b.score - a.score || b.leftLength - a.leftLength || b.rightLength - a.rightLength || a.order - b.order);
  return merges.map((m) => [m.left, m.right]);
}

function sentencePieceTokenizerJson(meta: MetadataReader, vocabulary: Vocabulary, specialIds: ReadonlyArray<number | undefined>, unkToken: string | null) {
  const { tokens } = vocabulary;
  const scores = meta.array(KEY.scores, "numbers (token scores)", isNumber);
  if (scores !== undefined && scores.length !== tokens.length) {
    throw meta.fail(KEY.scores, `has ${scores.length} entries but ${KEY.tokens} has ${tokens.length}; they must be the same length`);
  }
  let merges = readMerges(meta, idMap(tokens));
  if (merges === undefined) {
    if (scores === undefined) throw meta.fail(KEY.scores, "is missing: a llama (SentencePiece) vocabulary without merges needs its token scores to rank them");
    merges = mergesFromScores(tokens, scores);
  }
  const addSpacePrefix = meta.boolean(KEY.addSpacePrefix) ?? true;
  const replaceSpaces = { type: "Replace", pattern: { String: " " }, content: "▁" };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: addedTokens(vocabulary, specialIds),
    // Per stretch of text between added tokens, as llama.cpp adds its space after each special token.
    normalizer: addSpacePrefix ? { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "▁" }, replaceSpaces] } : replaceSpaces,
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        ...(addSpacePrefix ? [{ type: "Strip", content: " ", start: 1, stop: 0 }] : []),
      ],
    },
    model: bpeModel(vocabObject(tokens), merges, { unkToken, byteFallback: true, fuseUnk: true, ignoreMerges: false }),
  };
}

// ---------------------------------------------------------------------------------------------

/**
 * The tokenizer (and chat template) described by a GGUF file's metadata. `file` names the file in
 * error messages; every error is a TOKENIZER error whose path is the offending metadata key.
 */
export function ggufTokenizer(metadata: GgufMetadata, file: string): ModelTokenizer {
  const meta = new MetadataReader(metadata, file);
  const model = meta.string(KEY.model);
  if (model === undefined) throw meta.fail(KEY.model, `is missing: the file carries no tokenizer; this runtime reads ${SUPPORTED_MODELS} vocabularies`);
  if (model !== "gpt2" && model !== "llama") {
    throw meta.fail(KEY.model, `is ${shown(model)}, a vocabulary this runtime cannot tokenize; it reads ${SUPPORTED_MODELS}`);
  }
  const vocabulary = readVocabulary(meta);
  const count = vocabulary.tokens.length;
  const specialIds = [KEY.bos, KEY.eos, KEY.unk, KEY.pad].map((key) => meta.tokenId(key, count));
  const [bosToken, eosToken, unkToken, padToken] = specialIds.map((id) => (id === undefined ? null : vocabulary.tokens[id]!)) as [string | null, string | null, string | null, string | null];

  let tokenizerJson: object;
  let addBosByDefault: boolean;
  if (model === "gpt2") {
    const preName = meta.string(KEY.pre) ?? "default";
    const pre = PRE_TOKENIZATIONS.get(preName);
    if (pre === undefined) {
      throw meta.fail(KEY.pre, `is ${shown(preName)}, a pre-tokenizer this runtime does not know; it knows ${[...PRE_TOKENIZATIONS.keys()].join(", ")}`);
    }
    tokenizerJson = byteLevelTokenizerJson(meta, vocabulary, specialIds, pre);
    addBosByDefault = pre.addBosByDefault;
  } else {
    tokenizerJson = sentencePieceTokenizerJson(meta, vocabulary, specialIds, unkToken);
    addBosByDefault = true; // llama.cpp and transformers add BOS to a SentencePiece vocabulary that does not say otherwise
  }

  const addBosToken = meta.boolean(KEY.addBos) ?? addBosByDefault;
  const addEosToken = meta.boolean(KEY.addEos) ?? false;
  if (addBosToken && bosToken === null) {
    throw meta.fail(KEY.bos, `is missing, but ${meta.has(KEY.addBos) ? `${KEY.addBos} is true` : `a ${model} vocabulary adds BOS by default`}; set the BOS token's id (or ${KEY.addBos} = false)`);
  }
  if (addEosToken && eosToken === null) throw meta.fail(KEY.eos, `is missing, but ${KEY.addEos} is true; set the EOS token's id`);

  const templateTokens: Record<string, string> = {};
  for (const [name, text] of [["bos_token", bosToken], ["eos_token", eosToken], ["unk_token", unkToken], ["pad_token", padToken]] as const) {
    if (text !== null) templateTokens[name] = text;
  }
  const settings: TokenizerSettings = {
    bosToken,
    eosToken,
    templateTokens,
    addBosToken,
    addEosToken,
    cleanUpTokenizationSpaces: false,
    chatTemplate: meta.string(KEY.chatTemplate) ?? null,
  };
  try {
    return createTokenizer({ tokenizerJson, libraryConfig: {}, settings, path: file, name: `the tokenizer in ${file}` });
  } catch (e) {
    // A template that does not parse is named by its metadata key.
    if (e instanceof RuntimeError && e.path === "chat_template") throw new RuntimeError({ code: e.code, path: KEY.chatTemplate, message: `${file}: ${KEY.chatTemplate}: ${e.message}` });
    throw e;
  }
}
