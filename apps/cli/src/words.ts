// The library names request fields ("hosts", "queryTokens"); a command names the flags that
// set them. Each command has its own table, because the same field is a different flag (or
// no flag) in another command: `plan --query-length` sets queryTokens, `run` counts it from
// --query. A field a command has no words for is called a field, never another command's flag.
import { PlannerError } from "@apb/planner";
import { RuntimeError } from "@apb/runtime";

/** Library field -> how this command's user names it (a flag, or words where no flag sets it). */
export type Words = Readonly<Record<string, string>>;

/** The library's camelCase request fields: never prose, so they are replaced anywhere in a
 * message (other camelCase words, such as a file's name, are left as they are). */
const FIELDS = [
  // A switch as the library says to set it ("pass allowLongPrompt: true"), before the bare name.
  "allowLongPrompt: true",
  "allowLongPrompt",
  "contextTokens",
  "queryTokens",
  "prefixTokens",
  "anchorTokens",
  "passingTokens",
  "maxTokens",
  "maxHosts",
  "topP",
  "stopTokenIds",
  "answerPrefix",
];
const FIELD = new RegExp(`\\b(?:${FIELDS.join("|")})\\b`, "g");

function named(field: string, words: Words): string {
  return words[field] ?? `the request's field ${field}`;
}

/** The message and path as this command's user would say them. */
export function inWords(message: string, path: string, words: Words): { message: string; path: string } {
  let head = "";
  let rest = message;
  // The message usually starts with the field it is about ("hosts Too big ..."); a path that
  // is a flag already (the CLI's own checks) is the user's word.
  if (path && !path.startsWith("-") && message.startsWith(path) && !/^[A-Za-z0-9]/.test(message.charAt(path.length))) {
    head = named(path, words);
    rest = message.slice(path.length);
  }
  const flag = words[path];
  return { message: head + rest.replace(FIELD, (field) => named(field, words)), path: flag?.startsWith("--") ? flag : path };
}

/** The same error in this command's words (same class and code, so it reports the same way). */
export function toWords(error: unknown, words: Words): unknown {
  if (!(error instanceof PlannerError) && !(error instanceof RuntimeError)) return error;
  const { message, path } = inWords(error.message, error.path, words);
  if (message === error.message && path === error.path) return error;
  const data = { code: error.code, path, message } as never;
  return error instanceof PlannerError ? new PlannerError(data) : new RuntimeError(data);
}

/** Runs `work`, reporting its errors in this command's words. */
export async function withWords<T>(words: Words, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    throw toWords(e, words);
  }
}
