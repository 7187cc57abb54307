// Reading the small JSON files of a model directory with errors that name the file.
import { open, readFile, stat, type FileHandle } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { RuntimeError } from "./errors.js";

export async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

/** Reads a UTF-8 file; a missing or unreadable one is a MODEL_FILE error (TOKENIZER for tokenizer files). */
export async function readText(file: string, shownName: string, code: "MODEL_FILE" | "TOKENIZER" = "MODEL_FILE"): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (e) {
    const reason = (e as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : `cannot be read (${(e as Error).message})`;
    throw new RuntimeError({ code, path: file, message: `${shownName} ${reason}` });
  }
}

/** Parses JSON; bad JSON is INVALID_JSON naming the file and the parser's complaint. */
export function parseJson(text: string, file: string, shownName: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new RuntimeError({
      code: "INVALID_JSON",
      path: file,
      message: `${shownName} is not valid JSON (${(e as Error).message}); re-download or re-save the file`,
    });
  }
}

export async function readJson(file: string, shownName: string): Promise<unknown> {
  return parseJson(await readText(file, shownName), file, shownName);
}

/** Opens a model file (safetensors, GGUF) to read; a missing or unopenable one is a MODEL_FILE error naming it. */
export async function openModelFile(file: string): Promise<FileHandle> {
  try {
    return await open(file, "r");
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === "ENOENT";
    throw new RuntimeError({ code: "MODEL_FILE", path: file, message: `${basename(file)} ${missing ? `does not exist (in ${dirname(file)})` : `cannot be opened: ${(e as Error).message}`}` });
  }
}
