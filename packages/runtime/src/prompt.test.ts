import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { splitPrompt } from "./prompt.js";
import { tinyTokenizerFiles } from "./tiny-tokenizer.js";
import { loadTokenizer } from "./tokenizer.js";
import { tempDirs } from "./temp-dirs.test-helper.js";

// Each test gets its own directory; all are removed when the file's tests end.
const freshDir = tempDirs("prompt");

async function tokenizer(options: { addBos?: boolean; chatTemplate?: boolean | string } = {}) {
  const dir = await freshDir();
  const files = tinyTokenizerFiles({ addBos: options.addBos ?? true, chatTemplate: options.chatTemplate !== false, maxLengthTokens: 4096 });
  const config = { ...files.tokenizerConfig, ...(typeof options.chatTemplate === "string" ? { chat_template: options.chatTemplate } : {}) };
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(files.tokenizerJson));
  await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify(config));
  return { tok: await loadTokenizer(dir), ids: files.specialIds };
}

describe("splitPrompt with a chat template", () => {
  it("puts BOS and the user header in the prefix, the document alone, and the query with the assistant header", async () => {
    const { tok, ids } = await tokenizer();
    const parts = splitPrompt(tok, { document: "The sky is green today.", query: "What colour is the sky?" });
    expect(tok.decode(parts.prefix)).toBe("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n");
    expect(tok.decode(parts.document)).toBe("The sky is green today.");
    expect(tok.decode(parts.query)).toBe("\n\nWhat colour is the sky?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    // BOS exactly once, first.
    const all = [...parts.prefix, ...parts.document, ...parts.query];
    expect(all.filter((id) => id === ids["<|begin_of_text|>"])).toHaveLength(1);
    expect(all[0]).toBe(ids["<|begin_of_text|>"]);
  });

  it("puts an answer prefix after the assistant header, for the model to continue", async () => {
    const { tok } = await tokenizer();
    const parts = splitPrompt(tok, { document: "The sky is green today.", query: "What colour is the sky?", answerPrefix: "The sky is" });
    expect(tok.decode(parts.query)).toBe("\n\nWhat colour is the sky?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nThe sky is");
  });

  it("reproduces the rendered chat when the parts are joined", async () => {
    const { tok } = await tokenizer();
    const [document, query] = ["Alpha beta.\nGamma: 42 ✓", "Which letters?"];
    const parts = splitPrompt(tok, { document, query, messages: [{ role: "system", content: "Answer from the document." }] });
    const rendered = tok.renderChat([{ role: "system", content: "Answer from the document." }, { role: "user", content: `${document}\n\n${query}` }], { addGenerationPrompt: true });
    expect(tok.decode([...parts.prefix, ...parts.document, ...parts.query])).toBe(rendered);
    expect(tok.decode(parts.prefix)).toContain("Answer from the document.");
  });

  it("keeps the document's own leading and trailing whitespace, which the template's trim does not reach", async () => {
    const { tok } = await tokenizer();
    expect(tok.decode(splitPrompt(tok, { document: "  indented\n", query: "q" }).document)).toBe("  indented\n");
  });

  it("names a template that does not keep the user message once and verbatim", async () => {
    const { tok } = await tokenizer({ chatTemplate: "{% for m in messages %}{{ m.content }}{{ m.content }}{% endfor %}" });
    expect(() => splitPrompt(tok, { document: "d", query: "q" })).toThrow(expect.objectContaining({ code: "TOKENIZER", message: expect.stringContaining("does not reproduce the user message once and verbatim") }));
  });
});

describe("splitPrompt without a chat template", () => {
  it("is [bos], the document, and '\\n\\n' + query", async () => {
    const { tok, ids } = await tokenizer({ chatTemplate: false });
    const parts = splitPrompt(tok, { document: "Some text.", query: "Why?" });
    expect(parts.prefix).toEqual([ids["<|begin_of_text|>"]]);
    expect(parts.document).toEqual(tok.encode("Some text.", { addSpecialTokens: false }));
    expect(parts.query).toEqual(tok.encode("\n\nWhy?", { addSpecialTokens: false }));
  });

  it("puts an answer prefix on a line after the query", async () => {
    const { tok } = await tokenizer({ chatTemplate: false });
    const parts = splitPrompt(tok, { document: "Some text.", query: "Why?", answerPrefix: "Because" });
    expect(parts.query).toEqual(tok.encode("\n\nWhy?\nBecause", { addSpecialTokens: false }));
  });

  it("has an empty prefix when the tokenizer adds no BOS, and refuses messages it cannot place", async () => {
    const { tok } = await tokenizer({ chatTemplate: false, addBos: false });
    expect(splitPrompt(tok, { document: "d", query: "q" }).prefix).toEqual([]);
    expect(() => splitPrompt(tok, { document: "d", query: "q", messages: [{ role: "system", content: "s" }] })).toThrow(
      expect.objectContaining({ code: "TOKENIZER", message: expect.stringContaining("no chat template") }),
    );
  });
});

describe("splitPrompt with chatTemplate: false (a completion)", () => {
  it("is the text as written even when the tokenizer has a chat template", async () => {
    const { tok, ids } = await tokenizer({ chatTemplate: true });
    expect(tok.chatTemplate).not.toBeNull();
    const parts = splitPrompt(tok, { document: "Some text.", query: "Why?", chatTemplate: false });
    expect(parts.prefix).toEqual([ids["<|begin_of_text|>"]]);
    expect(parts.document).toEqual(tok.encode("Some text.", { addSpecialTokens: false }));
    expect(parts.query).toEqual(tok.encode("\n\nWhy?", { addSpecialTokens: false }));
    expect(() => splitPrompt(tok, { document: "d", query: "q", chatTemplate: false, messages: [{ role: "system", content: "s" }] })).toThrow(
      expect.objectContaining({ code: "TOKENIZER", message: expect.stringContaining("chatTemplate is false") }),
    );
  });
});
