// Mutations of a tiny model's files for the loader fuzz test: config.json (values of the
// wrong type, huge, negative, non-finite, missing, the text itself broken), the safetensors
// file (its length prefix, its header's JSON and entries, truncation, data bytes) and the
// tokenizer files (their structure and text). Each returns the files to write and a label
// that says what it did, so a failing case can be read and replayed from its seed.

export interface ModelFiles {
  "config.json": string;
  "generation_config.json": string;
  "model.safetensors": Buffer;
  "tokenizer.json": string;
  "tokenizer_config.json": string;
}

export interface Mutation {
  files: ModelFiles;
  label: string;
}

type Rand = () => number;

const pick = <T>(rand: Rand, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const int = (rand: Rand, lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));

/** Values a JSON field should not hold, or holds only at its edges. */
function oddValue(rand: Rand): unknown {
  return pick(rand, [
    null, true, false, "", "12", "llama", -1, 0, 1, 2, 3, 7, 1.5, -0.5, 1e-300, 1e308, -1e308, 2 ** 31, 2 ** 32 + 1, 2 ** 53, 2 ** 64,
    1_000_000_000, [], {}, [1, 2], [[]], { a: 1 }, int(rand, 0, 1 << 20), -int(rand, 1, 1 << 20), rand() * 1e6,
  ]);
}

/** Numbers JSON.stringify cannot write: written into the text instead (1e999 parses as Infinity). */
const NON_FINITE_TEXT = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "0x10", "01", "1.", ".5", "+1"];

function mutateJsonText(rand: Rand, text: string): { text: string; label: string } {
  const kind = int(rand, 0, 4);
  if (kind === 0) {
    const at = int(rand, 0, text.length - 1);
    return { text: text.slice(0, at), label: `truncated at ${at} of ${text.length}` };
  }
  if (kind === 1) {
    const at = int(rand, 0, text.length - 1);
    const ch = String.fromCharCode(int(rand, 0, 127));
    return { text: text.slice(0, at) + ch + text.slice(at + 1), label: `char ${at} -> ${JSON.stringify(ch)}` };
  }
  if (kind === 2) {
    // A number literal replaced by one of JSON's non-numbers.
    const numbers = [...text.matchAll(/-?\d+(\.\d+)?(e[+-]?\d+)?/g)];
    if (numbers.length === 0) return { text: "{", label: "no numbers: broken text" };
    const m = pick(rand, numbers);
    const by = pick(rand, NON_FINITE_TEXT);
    return { text: text.slice(0, m.index) + by + text.slice(m.index! + m[0].length), label: `number ${m[0]} at ${m.index} -> ${by}` };
  }
  if (kind === 3) return { text: pick(rand, ["", "null", "[]", "1", '"x"', "{}", "[{}]", '{"":{}}']), label: "replaced by another JSON value" };
  return { text: `${text}${pick(rand, ["}", "{", ",", "x", "\u0000"])}`, label: "junk appended" };
}

/** Every path to a value in `value` (objects and arrays, up to `depth`). */
function paths(value: unknown, depth: number, prefix: (string | number)[] = []): (string | number)[][] {
  if (depth === 0 || value === null || typeof value !== "object") return [prefix];
  const keys: (string | number)[] = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value);
  return [prefix, ...keys.flatMap((k) => paths((value as Record<string | number, unknown>)[k], depth - 1, [...prefix, k]))];
}

/** Sets (or with `undefined`, deletes) the value at `path` in a copy of `root`. */
function setAt(root: unknown, path: (string | number)[], to: unknown): unknown {
  if (path.length === 0) return to;
  const copy = structuredClone(root) as Record<string | number, unknown>;
  let node = copy;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  const last = path.at(-1)!;
  if (to === undefined) {
    if (Array.isArray(node)) node.splice(last as number, 1);
    else delete node[last];
  } else node[last] = to;
  return copy;
}

/** A structural change to a JSON value: a field deleted, given an odd value, or added. */
function mutateJsonValue(rand: Rand, value: unknown, depth: number): { value: unknown; label: string } {
  const all = paths(value, depth).filter((p) => p.length > 0);
  const path = pick(rand, all.length > 0 ? all : [[]]);
  const where = path.join(".") || "(root)";
  const kind = int(rand, 0, 3);
  if (kind === 0 && path.length > 0) return { value: setAt(value, path, undefined), label: `${where} deleted` };
  if (kind === 1) {
    const added = [...path.slice(0, -1), `fuzz_${int(rand, 0, 99)}`];
    return { value: setAt(value, added, oddValue(rand)), label: `${added.join(".")} added` };
  }
  const odd = oddValue(rand);
  return { value: setAt(value, path, odd), label: `${where} -> ${JSON.stringify(odd)}` };
}

/** Config fields the loader reads, so most config mutations hit something that matters. */
const CONFIG_FIELDS = [
  "model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
  "intermediate_size", "hidden_act", "rms_norm_eps", "rope_theta", "rope_scaling", "tie_word_embeddings", "attention_bias",
  "mlp_bias", "max_position_embeddings", "bos_token_id", "eos_token_id", "sliding_window",
];

function mutateConfig(rand: Rand, base: ModelFiles): Mutation {
  const config = JSON.parse(base["config.json"]) as Record<string, unknown>;
  const kind = int(rand, 0, 9);
  if (kind <= 1) {
    const t = mutateJsonText(rand, base["config.json"]);
    return { files: { ...base, "config.json": t.text }, label: `config.json text: ${t.label}` };
  }
  if (kind === 2) {
    const t = mutateJsonText(rand, base["generation_config.json"]);
    return { files: { ...base, "generation_config.json": t.text }, label: `generation_config.json text: ${t.label}` };
  }
  if (kind === 3) {
    const scaling = pick(rand, [
      { rope_type: "llama3", factor: oddValue(rand), low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
      { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4 },
      { type: pick(rand, ["linear", "dynamic", "yarn", "default", 7]) },
      { rope_type: "llama3", factor: 8, low_freq_factor: oddValue(rand), high_freq_factor: oddValue(rand), original_max_position_embeddings: oddValue(rand) },
      oddValue(rand),
    ]);
    return { files: { ...base, "config.json": JSON.stringify({ ...config, rope_scaling: scaling }) }, label: `rope_scaling -> ${JSON.stringify(scaling)}` };
  }
  const field = pick(rand, CONFIG_FIELDS);
  if (kind === 4) {
    const { [field]: _, ...rest } = config;
    return { files: { ...base, "config.json": JSON.stringify(rest) }, label: `config.json ${field} deleted` };
  }
  // A plausible number a little off the model's own (the shapes no longer match).
  if (kind === 5 && typeof config[field] === "number") {
    const to = (config[field] as number) + pick(rand, [-1, 1, 2, (config[field] as number) * 3]);
    return { files: { ...base, "config.json": JSON.stringify({ ...config, [field]: to }) }, label: `config.json ${field} -> ${to}` };
  }
  const odd = oddValue(rand);
  return { files: { ...base, "config.json": JSON.stringify({ ...config, [field]: odd }) }, label: `config.json ${field} -> ${JSON.stringify(odd)}` };
}

/** The safetensors file as prefix, header JSON and data. */
function splitSafetensors(bytes: Buffer): { header: Record<string, unknown>; data: Buffer } {
  const length = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + length).toString("utf8")) as Record<string, unknown>, data: bytes.subarray(8 + length) };
}

function joinSafetensors(headerText: string, data: Buffer, declared?: bigint): Buffer {
  const header = Buffer.from(headerText, "utf8");
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(declared ?? BigInt(header.length));
  return Buffer.concat([prefix, header, data]);
}

function mutateSafetensors(rand: Rand, base: ModelFiles): Mutation {
  const bytes = base["model.safetensors"];
  const { header, data } = splitSafetensors(bytes);
  const headerText = JSON.stringify(header);
  const kind = int(rand, 0, 7);
  const withWeights = (b: Buffer, label: string): Mutation => ({ files: { ...base, "model.safetensors": b }, label: `model.safetensors: ${label}` });
  if (kind === 0) {
    const declared = pick(rand, [0n, 1n, 2n ** 64n - 1n, 2n ** 63n, BigInt(bytes.length), BigInt(headerText.length + int(rand, -50, 50)), BigInt(int(rand, 0, 1 << 30))]);
    return withWeights(joinSafetensors(headerText, data, declared < 0n ? 0n : declared), `length prefix -> ${declared}`);
  }
  if (kind === 1) {
    const at = int(rand, 0, bytes.length - 1);
    return withWeights(bytes.subarray(0, at), `truncated to ${at} of ${bytes.length} bytes`);
  }
  if (kind === 2) {
    const copy = Buffer.from(bytes);
    const at = int(rand, 0, 8 + headerText.length - 1);
    copy[at] = int(rand, 0, 255);
    return withWeights(copy, `header byte ${at} -> ${copy[at]}`);
  }
  if (kind === 3) {
    const t = mutateJsonText(rand, headerText);
    return withWeights(joinSafetensors(t.text, data), `header text: ${t.label}`);
  }
  if (kind === 4 || kind === 5) {
    const m = mutateJsonValue(rand, header, 3);
    const text = JSON.stringify(m.value) ?? "";
    return withWeights(joinSafetensors(text, data), `header: ${m.label}`);
  }
  if (kind === 6) {
    // Data bytes: values change, some to NaN or Inf.
    const copy = Buffer.from(bytes);
    const start = 8 + headerText.length;
    for (let k = int(rand, 1, 8); k > 0; k--) copy[int(rand, start, copy.length - 1)] = pick(rand, [0xff, 0x7f, 0x80, int(rand, 0, 255)]);
    return withWeights(copy, "data bytes changed");
  }
  return withWeights(Buffer.concat([bytes, Buffer.alloc(int(rand, 1, 64), int(rand, 0, 255))]), "junk appended");
}

function mutateTokenizer(rand: Rand, base: ModelFiles): Mutation {
  const kind = int(rand, 0, 5);
  if (kind === 0) {
    const t = mutateJsonText(rand, base["tokenizer.json"]);
    return { files: { ...base, "tokenizer.json": t.text }, label: `tokenizer.json text: ${t.label}` };
  }
  if (kind === 1) {
    const t = mutateJsonText(rand, base["tokenizer_config.json"]);
    return { files: { ...base, "tokenizer_config.json": t.text }, label: `tokenizer_config.json text: ${t.label}` };
  }
  if (kind === 2) {
    const config = JSON.parse(base["tokenizer_config.json"]) as Record<string, unknown>;
    const field = pick(rand, ["chat_template", "bos_token", "eos_token", "add_bos_token", "add_eos_token", "clean_up_tokenization_spaces", "added_tokens_decoder"]);
    const to = pick(rand, [oddValue(rand), "{% for %}", "{{ messages[0]['content'] }}", "{{ raise_exception('no') }}", [{ name: "default", template: 5 }], { content: 5 }]);
    return { files: { ...base, "tokenizer_config.json": JSON.stringify({ ...config, [field]: to }) }, label: `tokenizer_config.json ${field} -> ${JSON.stringify(to)}` };
  }
  const tokenizer = JSON.parse(base["tokenizer.json"]) as Record<string, unknown>;
  if (kind === 3) {
    const section = pick(rand, ["model", "pre_tokenizer", "decoder", "post_processor", "normalizer", "added_tokens"]);
    const to = pick(rand, [oddValue(rand), { type: pick(rand, ["BPE", "WordPiece", "Unigram", "Nope", 3]) }, { type: "Sequence", pretokenizers: oddValue(rand) }]);
    return { files: { ...base, "tokenizer.json": JSON.stringify({ ...tokenizer, [section]: to }) }, label: `tokenizer.json ${section} -> ${JSON.stringify(to)}` };
  }
  const m = mutateJsonValue(rand, tokenizer, 3);
  return { files: { ...base, "tokenizer.json": JSON.stringify(m.value) ?? "" }, label: `tokenizer.json: ${m.label}` };
}

/** One mutation: mostly config and safetensors headers (they fail fast), some tokenizer files. */
export function mutate(rand: Rand, base: ModelFiles): Mutation {
  const r = rand();
  if (r < 0.45) return mutateConfig(rand, base);
  if (r < 0.8) return mutateSafetensors(rand, base);
  return mutateTokenizer(rand, base);
}
