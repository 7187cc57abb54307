import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { seededUniform } from "./tiny-model.js";
import { tinyTokenizerFiles } from "./tiny-tokenizer.js";
import { loadTokenizer } from "./tokenizer.js";
import { tempDirs } from "./temp-dirs.test-helper.js";

// Each test gets its own directory; all are removed when the file's tests end.
const freshDir = tempDirs("tok");

/** A directory with the tiny tokenizer's files, tokenizer_config.json changed by `edit`. */
async function tokenizerDir(options: { addBos?: boolean; chatTemplate?: boolean; edit?: (config: Record<string, unknown>) => void } = {}) {
  const dir = await freshDir();
  const files = tinyTokenizerFiles({ addBos: options.addBos ?? true, chatTemplate: options.chatTemplate ?? true, maxLengthTokens: 4096 });
  const config = { ...files.tokenizerConfig } as Record<string, unknown>;
  options.edit?.(config);
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(files.tokenizerJson));
  await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify(config));
  return { dir, ids: files.specialIds };
}

const RANGES: ReadonlyArray<[number, number]> = [
  [0x20, 0x7e], [0x20, 0x7e], [0x20, 0x7e], // mostly ASCII, as real text is
  [0x09, 0x0d], [0xa0, 0xff], [0x370, 0x3ff], [0x400, 0x4ff], [0x300, 0x36f], // whitespace, Latin-1, Greek, Cyrillic, combining marks
  [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0x3000, 0x303f], [0x1f300, 0x1faff], [0x10000, 0x1007f], // CJK, Hangul, CJK punctuation, emoji, astral
];

function randomText(uniform: () => number, length: number): string {
  let text = "";
  for (let i = 0; i < length; i++) {
    const [low, high] = RANGES[Math.floor(uniform() * RANGES.length)]!;
    text += uniform() < 0.02 ? "<|eot_id|>" : String.fromCodePoint(low + Math.floor(uniform() * (high - low + 1)));
  }
  return text;
}

describe("ModelTokenizer", () => {
  it("round-trips arbitrary UTF-8 text through encode and decode", async () => {
    const tokenizer = await loadTokenizer((await tokenizerDir()).dir);
    const seed = Math.floor(Math.random() * 2 ** 32);
    const uniform = seededUniform(seed);
    for (let i = 0; i < 200; i++) {
      const text = randomText(uniform, Math.floor(uniform() * 80));
      expect(tokenizer.decode(tokenizer.encode(text, { addSpecialTokens: false })), `seed ${seed}`).toBe(text);
    }
  });

  it("encodes bytes and merges: 'Ġthe' is one token, bytes are ids 0..255", async () => {
    const tokenizer = await loadTokenizer((await tokenizerDir()).dir);
    expect(tokenizer.encode("A the", { addSpecialTokens: false })).toEqual([65, 258]);
    expect(tokenizer.encode("é", { addSpecialTokens: false })).toEqual([0xc3, 0xa9]);
    expect(tokenizer.encode("", { addSpecialTokens: false })).toEqual([]);
  });

  it("adds BOS (as the post-processor does) but no EOS, and reads special-token text as the token", async () => {
    const { dir, ids } = await tokenizerDir();
    const tokenizer = await loadTokenizer(dir);
    const bos = ids["<|begin_of_text|>"];
    expect(tokenizer.bosTokenId).toBe(bos);
    expect(tokenizer.eosTokenId).toBe(ids["<|eot_id|>"]);
    expect(tokenizer.specialPrefixIds).toEqual([bos]);
    expect(tokenizer.specialSuffixIds).toEqual([]);
    expect(tokenizer.encode("hi")).toEqual([bos, 104, 105]);
    expect(tokenizer.encode("hi<|eot_id|>", { addSpecialTokens: false })).toEqual([104, 105, ids["<|eot_id|>"]]);
    expect(tokenizer.maxTokenId).toBe(ids["<|eot_id|>"]);
  });

  it("follows add_bos_token / add_eos_token in tokenizer_config.json over the post-processor, as transformers does", async () => {
    const { dir, ids } = await tokenizerDir({ edit: (c) => Object.assign(c, { add_bos_token: false, add_eos_token: true }) });
    const tokenizer = await loadTokenizer(dir);
    expect(tokenizer.encode("hi")).toEqual([104, 105, ids["<|eot_id|>"]]);
  });

  it("adds nothing when the tokenizer has no BOS (Qwen's style)", async () => {
    const tokenizer = await loadTokenizer((await tokenizerDir({ addBos: false })).dir);
    expect(tokenizer.bosTokenId).toBeNull();
    expect(tokenizer.encode("hi")).toEqual([104, 105]);
  });

  it("decodes special tokens unless asked to skip them, keeps spaces before punctuation, and decodes [] to ''", async () => {
    const { dir, ids } = await tokenizerDir();
    const tokenizer = await loadTokenizer(dir);
    const encoded = tokenizer.encode("Hi , there .");
    expect(tokenizer.decode(encoded)).toBe("<|begin_of_text|>Hi , there .");
    expect(tokenizer.decode([...encoded, ids["<|eot_id|>"]], { skipSpecialTokens: true })).toBe("Hi , there .");
    expect(tokenizer.decode([])).toBe("");
  });

  it("renders a chat as Llama 3's template does", async () => {
    const tokenizer = await loadTokenizer((await tokenizerDir()).dir);
    const chat = [{ role: "system", content: "Be brief." }, { role: "user", content: "  Hello?  " }];
    expect(tokenizer.renderChat(chat, { addGenerationPrompt: true })).toBe(
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>" +
        "<|start_header_id|>user<|end_header_id|>\n\nHello?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    expect(tokenizer.renderChat(chat)).not.toContain("assistant");
  });

  it("takes chat_template.jinja over tokenizer_config.json, and the 'default' of a named template list", async () => {
    const { dir } = await tokenizerDir({ edit: (c) => (c.chat_template = [{ name: "tool_use", template: "T" }, { name: "default", template: "D{{ messages[0].content }}" }]) });
    expect((await loadTokenizer(dir)).renderChat([{ role: "user", content: "x" }])).toBe("Dx");
    await writeFile(join(dir, "chat_template.jinja"), "J{{ messages | length }}");
    expect((await loadTokenizer(dir)).renderChat([{ role: "user", content: "x" }])).toBe("J1");
  });

  it("reads special tokens written as AddedToken objects", async () => {
    const { dir, ids } = await tokenizerDir({ edit: (c) => (c.bos_token = { __type: "AddedToken", content: "<|begin_of_text|>", special: true }) });
    expect((await loadTokenizer(dir)).bosTokenId).toBe(ids["<|begin_of_text|>"]);
  });
});

describe("loadTokenizer errors", () => {
  it("names the directory when tokenizer.json is missing", async () => {
    const { dir } = await tokenizerDir();
    await rm(join(dir, "tokenizer.json"));
    await expect(loadTokenizer(dir)).rejects.toMatchObject({ code: "TOKENIZER", path: join(dir, "tokenizer.json"), message: expect.stringMatching(new RegExp(`^tokenizer.json is missing from ${dir}`)) });
  });

  it("names corrupt or unusable tokenizer.json", async () => {
    const { dir } = await tokenizerDir();
    await writeFile(join(dir, "tokenizer.json"), "{");
    await expect(loadTokenizer(dir)).rejects.toMatchObject({ code: "INVALID_JSON", message: expect.stringMatching(/^tokenizer.json is not valid JSON/) });
    await writeFile(join(dir, "tokenizer.json"), JSON.stringify({ added_tokens: [], normalizer: null }));
    await expect(loadTokenizer(dir)).rejects.toMatchObject({ code: "TOKENIZER", message: 'tokenizer.json cannot be loaded: Tokenizer must contain a "model" property' });
  });

  it("names a chat template that does not parse, one that raises, and a missing one", async () => {
    const broken = await tokenizerDir({ edit: (c) => (c.chat_template = "{% for m in messages %}") });
    await expect(loadTokenizer(broken.dir)).rejects.toMatchObject({ code: "TOKENIZER", path: "chat_template", message: expect.stringMatching(/^the chat template does not parse: /) });
    const raising = await loadTokenizer((await tokenizerDir({ edit: (c) => (c.chat_template = "{{ raise_exception('roles must alternate') }}") })).dir);
    expect(() => raising.renderChat([])).toThrow(expect.objectContaining({ code: "TOKENIZER", message: "the chat template failed to render: roles must alternate" }));
    const none = await loadTokenizer((await tokenizerDir({ chatTemplate: false })).dir);
    expect(none.chatTemplate).toBeNull();
    expect(() => none.renderChat([])).toThrow(expect.objectContaining({ code: "TOKENIZER", message: expect.stringMatching(/^the tokenizer has no chat template/) }));
  });

  it("names a wrong field in tokenizer_config.json", async () => {
    const { dir } = await tokenizerDir({ edit: (c) => (c.add_bos_token = "yes") });
    await expect(loadTokenizer(dir)).rejects.toMatchObject({ code: "TOKENIZER", path: "add_bos_token", message: 'tokenizer_config.json: add_bos_token must be a boolean, found "yes"' });
  });
});

describe("corrupt token ids (found by the loader fuzz test)", () => {
  async function withVocabEntry(token: string, id: unknown, where: "vocab" | "added"): Promise<string> {
    const dir = await freshDir();
    const files = tinyTokenizerFiles({ addBos: true, chatTemplate: true, maxLengthTokens: 4096 });
    const json = structuredClone(files.tokenizerJson) as { model: { vocab: Record<string, unknown> }; added_tokens: { id: unknown }[] };
    if (where === "vocab") json.model.vocab[token] = id;
    else json.added_tokens[0]!.id = id;
    await writeFile(join(dir, "tokenizer.json"), JSON.stringify(json));
    await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify(files.tokenizerConfig));
    return dir;
  }

  it("refuses an id that is not a whole number (was: INTERNAL from the addon at generate)", async () => {
    for (const id of ["llama", -1, 2.5, null, [3]]) {
      const dir = await withVocabEntry("d", id, "vocab");
      await expect(loadTokenizer(dir), JSON.stringify(id)).rejects.toMatchObject({ code: "TOKENIZER", message: expect.stringContaining(JSON.stringify(id)) });
    }
  });

  it("refuses an id beyond any vocabulary at once (was: minutes and gigabytes in the library)", async () => {
    for (const where of ["vocab", "added"] as const) {
      const id = 16_777_216 + Math.floor(Math.random() * 1e9);
      const dir = await withVocabEntry("Ď", id, where);
      const started = performance.now();
      await expect(loadTokenizer(dir), where).rejects.toMatchObject({ code: "TOKENIZER", message: expect.stringContaining(String(id)) });
      expect(performance.now() - started).toBeLessThan(5_000);
    }
  });
});
