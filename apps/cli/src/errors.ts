// Turns errors into the CLI's one-line messages, their {code, message, path} data and exit
// statuses. The status is the one list's (@apb/errors, docs/ERRORS.md): 2 when the user can
// fix the cause, 1 otherwise, so a CUDA driver failure exits 1 and a bad flag exits 2.
import { ApbError, carriedErrorData, exitStatusOf, messageOf, type ErrorData } from "@apb/errors";

/** A command line commander accepted but the command cannot use; reported as USAGE. */
export class UsageError extends ApbError<"USAGE"> {
  override readonly name = "UsageError";

  constructor(message: string) {
    super({ code: "USAGE", message });
  }
}

export interface Described {
  /** What the CLI prints: `apb: <message> [<CODE>]`. */
  line: string;
  exitCode: 1 | 2;
  /** The error as data (for --json), naming flags as the line does. */
  error: ErrorData<string>;
}

/**
 * The line, exit status and data for anything a command throws. `flagOf` maps request fields
 * to the flags that set them, so a message about a field names the flag instead; each command
 * has its own (words.ts), since the same field is set by different flags in different commands.
 */
export function describe(error: unknown, flagOf: Readonly<Record<string, string>> = {}): Described {
  if (error instanceof UsageError) {
    // No [USAGE] in the line: it is about the command line itself, as commander's complaints are.
    return { line: `apb: ${error.message}`, exitCode: exitStatusOf(error.code), error: error.toJSON() };
  }
  // Errors that are data (the planner's, the runtime's, the control plane's, a host's) keep their code.
  const raised = carriedErrorData(error);
  if (raised) {
    const data = inFlags(raised, flagOf);
    return { line: `apb: ${data.message} [${data.code}]`, exitCode: exitStatusOf(data.code), error: data };
  }
  const message = messageOf(error);
  return { line: `apb: internal error: ${message}`, exitCode: 1, error: { code: "INTERNAL", message, path: "" } };
}

/** The error as the user typed the request: a field set by a flag is named by the flag, in the message and the path. */
function inFlags(data: ErrorData<string>, flagOf: Readonly<Record<string, string>>): ErrorData<string> {
  const flag = Object.hasOwn(flagOf, data.path) ? flagOf[data.path] : undefined;
  if (!flag) return data;
  const message = data.message.startsWith(data.path) ? flag + data.message.slice(data.path.length) : data.message;
  return { code: data.code, message, path: flag };
}
