// A prompt split the way APB consumes it: the prefix (BOS, system turn, user header), the long
// document (spread over hosts), and the query with everything the chat template puts after it
// (end of turn, assistant header). Each part is tokenized on its own.
import { randomBytes } from "node:crypto";
import { RuntimeError } from "./errors.js";
import type { ChatMessage, ModelTokenizer } from "./tokenizer.js";

export interface PromptInput {
  document: string;
  query: string;
  /** Turns before the user's (e.g. a system message); needs a chat template. */
  messages?: readonly ChatMessage[];
  /** Text the answer starts with, placed after the assistant header (RULER's answer prefix):
   * the model continues it, and the generated text excludes it. */
  answerPrefix?: string;
  /** false: the text as written, without the chat template (a completion, not a chat):
   * BOS, the document, then the separator and the query. Default true. */
  chatTemplate?: boolean;
}

export interface PromptTokens {
  prefix: number[];
  document: number[];
  query: number[];
}

/** Between document and query, as in the user message `${document}\n\n${query}`. */
export const DOCUMENT_QUERY_SEPARATOR = "\n\n";

function once(haystack: string, needle: string): number {
  const at = haystack.indexOf(needle);
  return at >= 0 && haystack.indexOf(needle, at + 1) < 0 ? at : -1;
}

export function splitPrompt(tokenizer: ModelTokenizer, input: PromptInput): PromptTokens {
  const plain = (text: string) => tokenizer.encode(text, { addSpecialTokens: false });
  if (tokenizer.chatTemplate === null || input.chatTemplate === false) {
    if (input.messages && input.messages.length > 0) {
      const why = input.chatTemplate === false ? "chatTemplate is false" : "the tokenizer has no chat template to place them";
      throw new RuntimeError({ code: "TOKENIZER", path: "chat_template", message: `messages were given but ${why}; pass only document and query` });
    }
    // Only what the tokenizer puts before text (BOS); never an EOS at the end of a prompt.
    const answer = input.answerPrefix ? `\n${input.answerPrefix}` : "";
    return { prefix: [...tokenizer.specialPrefixIds], document: plain(input.document), query: plain(DOCUMENT_QUERY_SEPARATOR + input.query + answer) };
  }
  // Sentinels mark the document inside the rendered chat, so the template's own handling of the
  // content (e.g. `| trim`) applies to the whole message yet the document's bounds stay known.
  const tag = randomBytes(8).toString("hex");
  const [start, end] = [`[[apb-document-start-${tag}]]`, `[[apb-document-end-${tag}]]`];
  const content = `${start}${input.document}${end}${DOCUMENT_QUERY_SEPARATOR}${input.query}`;
  const rendered = tokenizer.renderChat([...(input.messages ?? []), { role: "user", content }], { addGenerationPrompt: true });
  const [startAt, endAt] = [once(rendered, start), once(rendered, end)];
  if (startAt < 0 || endAt < startAt) {
    throw new RuntimeError({
      code: "TOKENIZER",
      path: "chat_template",
      message: "the chat template does not reproduce the user message once and verbatim, so the document cannot be located in the prompt",
    });
  }
  // The rendered text carries BOS as text (e.g. "<|begin_of_text|>"), which encodes to its id;
  // adding special tokens here would repeat it (transformers tokenizes chats the same way).
  return {
    prefix: plain(rendered.slice(0, startAt)),
    document: plain(rendered.slice(startAt + start.length, endAt)),
    query: plain(rendered.slice(endAt + end.length) + (input.answerPrefix ?? "")),
  };
}
