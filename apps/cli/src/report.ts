// How a failed command reports: one line on stderr ("apb: ... [CODE]"), or with --json one
// JSON object on stderr ({"error": {code, message, path}}), so stdout only ever holds the
// result a script asked for and a failed run leaves it empty.
import type { Command } from "commander";
import { describe } from "./errors.js";

export interface ErrorJson {
  code: string;
  message: string;
  path: string;
}

/** Ctrl-C during a command: it stopped its work and exits as a shell expects (128 + SIGINT). */
export class Interrupted extends Error {
  constructor(readonly what: string) {
    super(`${what} stopped by Ctrl-C (SIGINT)`);
  }
}

export const SIGINT_EXIT = 130;

/** stdout's reader went away (apb run ... | head): the command stopped; nothing to report. */
export class ReaderGone extends Error {
  constructor() {
    super("the reader of stdout went away");
  }
}

export interface Report {
  line: string;
  exitCode: number;
  error: ErrorJson;
}

export function report(error: unknown): Report {
  if (error instanceof Interrupted) {
    return { line: `apb: ${error.message} [CANCELLED]`, exitCode: SIGINT_EXIT, error: { code: "CANCELLED", message: error.message, path: "" } };
  }
  // Each command has already put the library's fields in its own words (words.ts); no
  // table shared by all commands may rename them again.
  const described = describe(error, {});
  return { line: described.line, exitCode: described.exitCode, error: described.error };
}

/** Whether argv asks a command that has --json for JSON (before any "--"). */
export function jsonRequested(program: Command, argv: readonly string[]): boolean {
  const args = argv.slice(2);
  const end = args.indexOf("--");
  const own = end < 0 ? args : args.slice(0, end);
  const name = own.find((a) => !a.startsWith("-"));
  const command = program.commands.find((c) => c.name() === name);
  return own.includes("--json") && command !== undefined && command.options.some((o) => o.long === "--json");
}
