// Where the document and the question come from. APB spreads the document over the hosts and
// gives every host the question (in its anchor), so it needs them apart. A stock OpenAI
// client sends one text: the question is its last paragraph (after the last blank line), the
// document everything before. `apb.document` and `apb.query` give them explicitly instead.
import type { ChatMessage } from "@apb/runtime";
import { ServerError } from "./errors.js";
import type { ApbOptions, ChatRequest, CompletionRequest } from "./schema.js";

export interface PromptParts {
  document: string;
  query: string;
  /** Turns before the user's (system prompt, earlier turns); chat only. */
  messages: ChatMessage[];
  /** false for completions: the text as written, no chat template. */
  chatTemplate: boolean;
  /** The request fields the document and the query came from, for errors to name. */
  fields: { document: string; query: string };
}

/** The text before the last blank line and the text after it, or null when there is none. */
export function splitLastParagraph(text: string): { document: string; query: string } | null {
  const trimmed = text.trimEnd();
  const breaks = [...trimmed.matchAll(/\n[ \t]*\n\s*/g)];
  const last = breaks.at(-1);
  if (!last) return null;
  const document = trimmed.slice(0, last.index);
  const query = trimmed.slice(last.index + last[0].length);
  return document.trim() === "" || query === "" ? null : { document, query };
}

function onlyOneParagraph(path: string): ServerError {
  return new ServerError({
    code: "INVALID_INPUT",
    path,
    message:
      `${path} has no document before its question: apb reads the question from the last paragraph ` +
      "(after the last blank line) and spreads the text before it over the hosts. Put the document first and a blank line " +
      "before the question, or give apb.document and apb.query",
  });
}

/** Document and query from `text`, unless the apb object gives them (both, or neither). */
function documentAndQuery(text: string | null, path: string, apb: ApbOptions | undefined): { document: string; query: string; fields: PromptParts["fields"] } {
  if ((apb?.document === undefined) !== (apb?.query === undefined)) {
    const missing = apb?.document === undefined ? "apb.document" : "apb.query";
    throw new ServerError({ code: "MISSING_FIELD", path: missing, message: `${missing} is required when ${missing === "apb.document" ? "apb.query" : "apb.document"} is given: give both or neither` });
  }
  if (apb?.document !== undefined && apb.query !== undefined) return { document: apb.document, query: apb.query, fields: { document: "apb.document", query: "apb.query" } };
  if (text === null) throw new ServerError({ code: "MISSING_FIELD", path, message: `${path} is required: it holds the document and the question` });
  const split = splitLastParagraph(text);
  if (!split) throw onlyOneParagraph(path);
  return { ...split, fields: { document: path, query: path } };
}

const textOf = (content: ChatRequest["messages"][number]["content"]): string => (typeof content === "string" ? content : content.map((p) => p.text).join(""));

export function chatPrompt(body: ChatRequest): PromptParts {
  const messages = body.messages;
  let lastUser = messages.length - 1;
  while (lastUser >= 0 && messages[lastUser]!.role !== "user") lastUser--;
  if (lastUser >= 0 && lastUser < messages.length - 1) {
    throw new ServerError({ code: "INVALID_INPUT", path: `messages[${lastUser + 1}]`, message: `messages[${lastUser + 1}] comes after the last user message: the last message must be the user's question` });
  }
  const { document, query, fields } = documentAndQuery(lastUser >= 0 ? textOf(messages[lastUser]!.content) : null, `messages[${Math.max(lastUser, 0)}].content`, body.apb);
  // Earlier turns keep their order; the chat template places them before the user's turn.
  // "developer" is OpenAI's newer name for the system role.
  const before = (lastUser >= 0 ? messages.slice(0, lastUser) : messages).map((m) => ({ role: m.role === "developer" ? "system" : m.role, content: textOf(m.content) }));
  return { document, query, messages: before, chatTemplate: true, fields };
}

export function completionPrompt(body: CompletionRequest): PromptParts {
  const prompt = typeof body.prompt === "string" ? body.prompt : body.prompt[0]!;
  const { document, query, fields } = documentAndQuery(prompt, "prompt", body.apb);
  return { document, query, messages: [], chatTemplate: false, fields };
}
