// The model's tokenizer (tokenizer.json via @huggingface/tokenizers) and chat template
// (tokenizer_config.json or chat_template.jinja via @huggingface/jinja), with transformers'
// conventions for special tokens and for rendering chats.
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";
import { z } from "zod";
import { CONFIG_LIMITS } from "./config-limits.js";
import { fromZod, RuntimeError, wrapErrors } from "./errors.js";
import { exists, parseJson, readText } from "./files.js";

export interface ChatMessage {
  role: string;
  content: string;
}

/**
 * The part of @huggingface/tokenizers' Tokenizer used here. Its published .d.ts files import
 * each other without extensions, which NodeNext resolution cannot follow, so the class arrives
 * as `any`; this interface restores the types.
 */
interface HfTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
  decode(ids: number[], options?: { skip_special_tokens?: boolean; clean_up_tokenization_spaces?: boolean }): string;
  token_to_id(token: string): number | undefined;
  get_vocab(withAddedTokens?: boolean): Map<string, number>;
}
const HfTokenizerClass = Tokenizer as unknown as new (tokenizerJson: object, tokenizerConfig: object) => HfTokenizer;

// Special tokens are written either as strings or as AddedToken objects ({content, ...}).
const tokenText = z.union([z.string(), z.looseObject({ content: z.string() }).transform((t) => t.content), z.null()]).optional();
const namedTemplate = z.object({ name: z.string(), template: z.string() });

const tokenizerConfigSchema = z.looseObject({
  chat_template: z.union([z.string(), z.array(namedTemplate), z.null()]).optional(),
  bos_token: tokenText,
  eos_token: tokenText,
  unk_token: tokenText,
  pad_token: tokenText,
  add_bos_token: z.boolean().optional(),
  add_eos_token: z.boolean().optional(),
  clean_up_tokenization_spaces: z.boolean().optional(),
});
type TokenizerConfig = z.infer<typeof tokenizerConfigSchema>;

/** What tokenizer_config.json (and chat_template.jinja) say, normalized. */
export interface TokenizerSettings {
  bosToken: string | null;
  eosToken: string | null;
  /** bos_token, eos_token, unk_token and pad_token where set: what chat templates may print. */
  templateTokens: Record<string, string>;
  /** When set, they decide BOS/EOS over tokenizer.json's post-processor (as in transformers). */
  addBosToken?: boolean;
  addEosToken?: boolean;
  cleanUpTokenizationSpaces: boolean;
  chatTemplate: string | null;
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The ids tokenizer.json's post-processor puts around text, found by encoding a probe both ways. */
function postProcessorIds(hf: HfTokenizer): { prefix: number[]; suffix: number[] } {
  const plain = hf.encode("a", { add_special_tokens: false }).ids;
  const full = hf.encode("a", { add_special_tokens: true }).ids;
  for (let start = 0; start + plain.length <= full.length; start++) {
    if (sameIds(full.slice(start, start + plain.length), plain)) return { prefix: full.slice(0, start), suffix: full.slice(start + plain.length) };
  }
  return { prefix: [], suffix: [] };
}

/** Use loadTokenizer(dir) (or ggufTokenizer) to get one. */
export class ModelTokenizer {
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  /** What encode(text, {addSpecialTokens: true}) puts around the text: usually [bos] and []. */
  readonly specialPrefixIds: readonly number[];
  readonly specialSuffixIds: readonly number[];
  /** The largest token id, added tokens included: the model's vocab must cover it. */
  readonly maxTokenId: number;
  readonly chatTemplate: string | null;
  private readonly template: Template | null;

  constructor(
    private readonly hf: HfTokenizer,
    private readonly settings: TokenizerSettings,
  ) {
    const idOf = (token: string | null) => (token ? (hf.token_to_id(token) ?? null) : null);
    this.bosTokenId = idOf(settings.bosToken);
    this.eosTokenId = idOf(settings.eosToken);
    let maxTokenId = -1; // a loop, not Math.max(...ids): vocabularies of 150K ids overflow the argument limit
    for (const [token, id] of hf.get_vocab(true)) {
      // The library takes any JSON value as an id; one that is not a token id would reach the engine.
      if (!Number.isSafeInteger(id) || id < 0) {
        throw new RuntimeError({ code: "TOKENIZER", path: "model.vocab", message: `the tokenizer gives token ${JSON.stringify(token)} the id ${JSON.stringify(id)}; ids must be whole numbers >= 0. The tokenizer file is corrupt: re-download it` });
      }
      maxTokenId = Math.max(maxTokenId, id);
    }
    this.maxTokenId = maxTokenId;
    let { prefix, suffix } = postProcessorIds(hf);
    // transformers rebuilds the post-processor from add_bos_token/add_eos_token when they are set.
    if (settings.addBosToken !== undefined) prefix = settings.addBosToken && this.bosTokenId !== null ? [this.bosTokenId] : [];
    if (settings.addEosToken !== undefined) suffix = settings.addEosToken && this.eosTokenId !== null ? [this.eosTokenId] : [];
    this.specialPrefixIds = prefix;
    this.specialSuffixIds = suffix;
    this.chatTemplate = settings.chatTemplate;
    const source = settings.chatTemplate;
    this.template = source === null ? null : wrapErrors(() => new Template(source), "TOKENIZER", "chat_template", "the chat template does not parse");
  }

  /** Token ids of `text`; special-token text in it (e.g. "<|eot_id|>") becomes the special token. */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    const ids = this.hf.encode(text, { add_special_tokens: false }).ids;
    // The library hands back whatever a corrupt vocabulary holds as an id.
    for (const id of ids) {
      if (!Number.isSafeInteger(id) || id < 0) {
        throw new RuntimeError({ code: "TOKENIZER", path: "model.vocab", message: `the tokenizer encodes text to the id ${JSON.stringify(id)}; ids must be whole numbers >= 0. The tokenizer file is corrupt: re-download it` });
      }
    }
    if (options.addSpecialTokens === false) return ids;
    return [...this.specialPrefixIds, ...ids, ...this.specialSuffixIds];
  }

  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return ""; // the library throws on an empty list
    return this.hf.decode([...ids], {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: this.settings.cleanUpTokenizationSpaces,
    });
  }

  /** The chat as text, as transformers' apply_chat_template(tokenize=False) renders it. */
  renderChat(messages: readonly ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): string {
    const template = this.template;
    if (template === null) {
      throw new RuntimeError({
        code: "TOKENIZER",
        path: "chat_template",
        message: "the tokenizer has no chat template (no chat_template in tokenizer_config.json, no chat_template.jinja); use an instruct model or pass plain text",
      });
    }
    return wrapErrors(
      () => template.render({ ...this.settings.templateTokens, messages: messages.map((m) => ({ ...m })), add_generation_prompt: options.addGenerationPrompt ?? false }),
      "TOKENIZER",
      "chat_template",
      "the chat template failed to render",
    );
  }
}

/** A named template list ([{name, template}]) means "default" unless there is none. */
function templateOf(value: TokenizerConfig["chat_template"]): string | null {
  if (typeof value === "string") return value;
  if (!value || value.length === 0) return null;
  return (value.find((t) => t.name === "default") ?? value[0]!).template;
}

function settingsOf(config: TokenizerConfig, chatTemplate: string | null): TokenizerSettings {
  const templateTokens: Record<string, string> = {};
  for (const key of ["bos_token", "eos_token", "unk_token", "pad_token"] as const) {
    const value = config[key];
    if (typeof value === "string") templateTokens[key] = value;
  }
  return {
    bosToken: config.bos_token ?? null,
    eosToken: config.eos_token ?? null,
    templateTokens,
    ...(config.add_bos_token !== undefined ? { addBosToken: config.add_bos_token } : {}),
    ...(config.add_eos_token !== undefined ? { addEosToken: config.add_eos_token } : {}),
    // transformers' default is now false; the library's is true, which rewrites " ." and " 's".
    cleanUpTokenizationSpaces: config.clean_up_tokenization_spaces ?? false,
    chatTemplate,
  };
}

/** tokenizer_config.json, parsed (raw, for the library) and checked; {} when absent. */
async function readTokenizerConfig(dir: string): Promise<{ raw: object; config: TokenizerConfig }> {
  const file = join(dir, "tokenizer_config.json");
  const raw = (await exists(file)) ? parseJson(await readText(file, "tokenizer_config.json", "TOKENIZER"), file, "tokenizer_config.json") : {};
  const parsed = tokenizerConfigSchema.safeParse(raw);
  if (!parsed.success) throw new RuntimeError({ ...fromZod(parsed.error, raw, "tokenizer_config.json").toJSON(), code: "TOKENIZER" });
  return { raw: raw as object, config: parsed.data };
}

/** Loads tokenizer.json, tokenizer_config.json (optional) and chat_template.jinja (optional) from `dir`. */
export async function loadTokenizer(dir: string): Promise<ModelTokenizer> {
  const tokenizerFile = join(dir, "tokenizer.json");
  if (!(await exists(tokenizerFile))) {
    throw new RuntimeError({
      code: "TOKENIZER",
      path: tokenizerFile,
      message: `tokenizer.json is missing from ${dir}; the engine needs the fast-tokenizer file (save it with AutoTokenizer.from_pretrained(...).save_pretrained(dir))`,
    });
  }
  const tokenizerJson = parseJson(await readText(tokenizerFile, "tokenizer.json", "TOKENIZER"), tokenizerFile, "tokenizer.json");
  if (tokenizerJson === null || typeof tokenizerJson !== "object" || Array.isArray(tokenizerJson)) {
    throw new RuntimeError({ code: "TOKENIZER", path: tokenizerFile, message: "tokenizer.json must hold a JSON object (a fast tokenizer)" });
  }
  const { raw, config } = await readTokenizerConfig(dir);
  // Newer transformers save the template beside the config; it wins over the config's field.
  const jinjaFile = join(dir, "chat_template.jinja");
  const chatTemplate = (await exists(jinjaFile)) ? await readText(jinjaFile, "chat_template.jinja", "TOKENIZER") : templateOf(config.chat_template);
  // The library reads a few tokenizer_config fields as plain strings: hand it the normalized ones.
  return createTokenizer({ tokenizerJson, libraryConfig: { ...raw, ...config }, settings: settingsOf(config, chatTemplate), path: tokenizerFile, name: "tokenizer.json" });
}

/**
 * Refuses ids no vocabulary has before the library sees them: it sizes tables by the
 * largest id, so one id of 10^9 in a corrupt file costs minutes and gigabytes.
 */
function checkIds(tokenizerJson: object, path: string, name: string): void {
  const json = tokenizerJson as { model?: { vocab?: unknown }; added_tokens?: unknown };
  const vocab = json.model?.vocab;
  const ids: [string, unknown][] = vocab !== null && typeof vocab === "object" && !Array.isArray(vocab) ? Object.entries(vocab) : [];
  if (Array.isArray(json.added_tokens)) {
    for (const t of json.added_tokens as unknown[]) if (t !== null && typeof t === "object") ids.push([String((t as { content?: unknown }).content), (t as { id?: unknown }).id]);
  }
  for (const [token, id] of ids) {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= CONFIG_LIMITS.vocab) {
      throw new RuntimeError({
        code: "TOKENIZER",
        path,
        message: `${name} gives token ${JSON.stringify(token)} the id ${JSON.stringify(id)}; ids are whole numbers from 0 to ${CONFIG_LIMITS.vocab - 1}. The file is corrupt: re-download it`,
      });
    }
  }
}

/**
 * The one way to a ModelTokenizer: a tokenizer.json object for @huggingface/tokenizers, the
 * tokenizer_config fields that library reads itself, and the settings. Library errors become
 * TOKENIZER errors at `path`, their messages starting with `name` (what the tokenizer came from).
 */
export function createTokenizer(source: { tokenizerJson: object; libraryConfig: object; settings: TokenizerSettings; path: string; name: string }): ModelTokenizer {
  const { tokenizerJson, libraryConfig, settings, path, name } = source;
  checkIds(tokenizerJson, path, name);
  const hf = wrapErrors(() => new HfTokenizerClass(tokenizerJson, libraryConfig), "TOKENIZER", path, `${name} cannot be loaded`);
  return wrapErrors(() => new ModelTokenizer(hf, settings), "TOKENIZER", path, `${name} cannot encode`);
}
