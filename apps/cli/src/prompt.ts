// The document a command reads: a file, or standard input for "-" (as `cat doc | apb run
// --prompt-file -`).
import { readFile } from "node:fs/promises";
import { UsageError } from "./errors.js";

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export async function readPrompt(flag: string, file: string): Promise<string> {
  try {
    return file === "-" ? await readStdin() : await readFile(file, "utf8");
  } catch (e) {
    throw new UsageError(`${flag}: cannot read ${file === "-" ? "standard input" : file}: ${(e as Error).message}`);
  }
}
